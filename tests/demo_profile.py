"""Deploy the plugin into an isolated QGIS profile and start QGIS on the demo county (make deploy, run).

    python -m tests.demo_profile deploy --profiles DIR
    python -m tests.demo_profile run --profiles DIR --demo DEMO_DIR [--as zrzy|nync] [--screenshot PNG]
                                     [--timeout S] [--no-server] [--panel HuijiaoSubmitDock]

The profile is ``DIR/profiles/huijiao-demo`` (never the user's default profile): the plugin enabled, the
Chinese UI (``zh-Hans``, which QGIS ships), and no version-check, news-feed or plugin-update nags.
``run`` writes ``DEMO_DIR/demo.qgz`` (the 一张图 of ``DEMO_DIR/county.gpkg`` as the 共享图层 panel loads
it: recognised, styled, grouped 基础/农业农村/自然资源, project CRS of the data's zone), starts the
reference exchange server on http://127.0.0.1:8765 if the ``exchange_server`` package exists (data in
``DEMO_DIR/server``, the demo accounts of both departments created once with ``exchange_server
demo-accounts``), and starts QGIS with a startup script that shows the four 汇交联动 panels.
``--screenshot PNG`` waits until the window is shown and the project drawn, saves the main window to PNG
plus a JSON report (``PNG`` with suffix ``.json``: panels, titles, layers, locale, account) and quits QGIS.

Accounts (demo profile only). ``--as zrzy`` (default) works as the 自然资源 submitter
``demo_zrzy_submitter`` — the 成果汇交 panel submits with one click; ``--as nync`` works as the 农业农村
reader ``demo_nync_reader`` — its 共享图层 panel (tab 服务器共享数据) lists, downloads and loads what
自然资源 shared and notifies new data. The profile's plugin settings (``huijiao/server/url``,
``huijiao/server/authcfg``, ``huijiao/user/department``, ``region_code``, ``unit_name``) point at the chosen
account. Its credentials live only in the QGIS authentication database of the demo profile, as a Basic
configuration (ids ``hjzrzy1`` and ``hjnync1``) created idempotently by the startup script. QGIS
encrypts that database with a master password; in this demo profile **only** the startup script sets
the documented demo master password :data:`DEMO_MASTER_PASSWORD` (``huijiao-demo-master``) with
``QgsApplication.authManager().setMasterPassword(pw, True)`` before the plugin reads the account, so
nobody is asked for it. Both passwords are public demo values of the local reference server
(:data:`DEMO_SERVER_PASSWORD` is the server's ``demo-accounts`` default); no real password is ever
stored here. A real installation uses the user's own master password and account.

QGIS needs a display: run under ``xvfb-run -a`` on a headless machine. With ``DISPLAY`` set the
platform is forced to ``xcb`` (the Makefile exports ``QT_QPA_PLATFORM=offscreen`` for the tests).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "huijiao_plugin"
PROFILE = "huijiao-demo"
SERVER_PORT = 8765
DOCK_NAMES = ("HuijiaoSharedLayersDock", "HuijiaoCompareDock", "HuijiaoPatchesDock", "HuijiaoSubmitDock")


def profile_dir(profiles: Path) -> Path:
    return Path(profiles).resolve() / "profiles" / PROFILE


def ini_path(profiles: Path) -> Path:
    return profile_dir(profiles) / "QGIS" / "QGIS3.ini"


# --- deploy ---------------------------------------------------------------------------------------
def deploy(profiles: Path) -> Path:
    """Copy the plugin (with metadata.txt, LICENSE and the .qm) into the demo profile."""
    from tests.package_check import stage

    target = profile_dir(profiles) / "python" / "plugins" / PLUGIN
    with tempfile.TemporaryDirectory() as tmp:  # the same staging as `make package`
        staged = stage(Path(tmp)).parent / PLUGIN
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(staged, target)
    ext_libs = Path(__file__).resolve().parent.parent / "build" / "ext-libs"
    if ext_libs.is_dir():  # `make ext-libs`: shapely 2 for a QGIS Python without one (see compat.py)
        shutil.copytree(ext_libs, target / "ext-libs")
    write_profile_settings(profiles)
    # qgis_process has no --profile option: with QGIS_CUSTOM_CONFIG_PATH=PROFILES it reads the profile
    # "default", so that name points at the demo profile (still inside PROFILES, never the user's own).
    default = Path(profiles).resolve() / "profiles" / "default"
    if not default.exists() and not default.is_symlink():
        default.symlink_to(PROFILE)
    print(f"deployed {PLUGIN} into {target}")
    return target


def write_profile_settings(profiles: Path, extra: dict[str, object] | None = None) -> Path:
    """Enable the plugin, the zh-Hans UI and switch off start-up nags in the profile's QGIS3.ini."""
    from qgis.PyQt.QtCore import QSettings

    path = ini_path(profiles)
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = QSettings(str(path), QSettings.Format.IniFormat)
    values: dict[str, object] = {
        f"PythonPlugins/{PLUGIN}": True,
        "locale/overrideFlag": True,
        "locale/userLocale": "zh-Hans",
        "qgis/checkVersion": False,
        "qgis/allowVersionCheck": False,
        "core/NewsFeed/httpsfeedqgisorg/disabled": True,
        "app/plugin_installer/checkOnStart": False,
        "app/plugin_installer/checkOnStartLastDate": time.strftime("%Y-%m-%d"),
        "qgis/showTips": False,
        "qgis/askToSaveProjectChanges": False,
        "qgis/warnOldProjectVersion": False,
        "qgis/enableMacros": "Never",
        "UI/showWelcomePage": False,
    }
    values.update(extra or {})
    for key, value in values.items():
        settings.setValue(key, value)
    # QGIS disables a plugin whose loading was interrupted (watchDog); a fresh deploy starts clean.
    settings.remove(f"PythonPlugins/watchDog/{PLUGIN}")
    settings.sync()
    return path


# --- demo project ---------------------------------------------------------------------------------
def demo_region_code(gpkg: Path) -> str | None:
    """The 6-digit county code of the demo data (XZQ.XZQDM), to preset the user's region."""
    from osgeo import ogr

    dataset = ogr.Open(str(gpkg))
    layer = dataset.GetLayerByName("XZQ") if dataset else None
    if layer is None or layer.GetLayerDefn().GetFieldIndex("XZQDM") < 0:
        return None
    for feature in layer:
        code = str(feature.GetField("XZQDM") or "")
        if len(code) >= 6 and code[:6].isdigit():
            return code[:6]
    return None


def write_project(demo_dir: Path) -> Path:
    """Write DEMO_DIR/demo.qgz: the 一张图 of DEMO_DIR/county.gpkg, exactly as the 共享图层 panel loads it.

    Recognition, names, groups (自然资源/农业农村/基础), draw order, styles, visibility and the project CRS
    (the data's Gauss-Krüger zone, EPSG:4545 for the demo county) all come from the plugin's core
    (``huijiao_plugin.core.one_map.load_one_map``); layers the catalog cannot place are left out, as the
    panel leaves them out of its 一张图.
    """
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from qgis.core import QgsApplication, QgsProject, QgsReferencedRectangle

    demo_dir = Path(demo_dir).resolve()
    gpkg = demo_dir / "county.gpkg"
    if not gpkg.exists():
        raise SystemExit(f"{gpkg} not found: run `make demo-data` first")
    global _QGIS_APP
    if QgsApplication.instance() is None:
        # kept for the process: QGIS >= 3.40 crashes when the application object is deleted on return
        _QGIS_APP = QgsApplication([], False)
        _QGIS_APP.initQgis()
    from huijiao_plugin.core.catalog import get_catalog
    from huijiao_plugin.core.one_map import combined_extent, load_one_map
    from huijiao_plugin.core.recognition import recognize_path

    catalog = get_catalog()  # the shipped catalog: the demo profile has no override file
    recognitions = recognize_path(gpkg, catalog)
    project = QgsProject()
    project.setTitle("汇交联动 演示县")
    result = load_one_map(project, recognitions, catalog)
    for dataset_id, source in result.errors:
        print(f"skipping {dataset_id}: cannot open {source}")
    unplaced = sorted(r.layer_name for r in recognitions if r.dataset_id is None)
    if unplaced:
        print("not in the catalog (left out):", ", ".join(unplaced))
    if not result.layers:
        raise SystemExit(f"no catalog dataset recognised in {gpkg}")
    extent = combined_extent(project, result.layers)
    if not extent.isEmpty():
        extent.scale(1.05)
        project.viewSettings().setDefaultViewExtent(QgsReferencedRectangle(extent, project.crs()))
    path = demo_dir / "demo.qgz"
    if not project.write(str(path)):
        raise SystemExit(f"cannot write {path}: {project.error()}")
    print(f"wrote {path} ({len(result.layers)} layers, project CRS {project.crs().authid()})")
    project.clear()
    return path


_QGIS_APP = None  # the QgsApplication of write_project, when this process started one


# --- exchange server hook -------------------------------------------------------------------------
#: the reference server's documented demo password of every ``demo-accounts`` account (public, demo only)
DEMO_SERVER_PASSWORD = "huijiao-demo-2025"
#: the QGIS auth master password of the demo profile only (public; a real profile uses the user's own)
DEMO_MASTER_PASSWORD = "huijiao-demo-master"


@dataclass(frozen=True)
class DemoAccount:
    side: str  # zrzy | nync: the department the demo user works for
    username: str  # account created by ``exchange_server demo-accounts``
    authcfg: str  # id of the Basic configuration in the demo profile's QGIS auth database
    title: str
    unit: str


DEMO_ACCOUNTS = {
    "zrzy": DemoAccount(
        "zrzy", "demo_zrzy_submitter", "hjzrzy1", "汇交演示 自然资源 提交员", "演示县自然资源局"
    ),
    "nync": DemoAccount(
        "nync", "demo_nync_reader", "hjnync1", "汇交演示 农业农村 查阅员", "演示县农业农村局"
    ),
}


def seed_demo_accounts(data: Path, region: str) -> bool:
    """Create the demo accounts of both departments on the local server (existing accounts are kept)."""
    result = subprocess.run(
        [sys.executable, "-m", "exchange_server", "demo-accounts", "--data", str(data), "--region", region,
         "--password", DEMO_SERVER_PASSWORD],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        print(f"note: could not create the demo accounts: {(result.stderr or result.stdout).strip()[-300:]}")
        return False
    for account in DEMO_ACCOUNTS.values():
        print(f"demo server account {account.username} ({account.title}, region {region})")
    return True


def account_settings(account: DemoAccount, region: str | None) -> dict[str, object]:
    """The plugin settings of the demo profile for ``account`` (the password is in the auth database)."""
    values: dict[str, object] = {
        "huijiao/server/url": f"http://127.0.0.1:{SERVER_PORT}",
        # the demo server is plain HTTP on loopback: its receipt key may be trusted on first use
        "huijiao/server/allow_unencrypted": True,
        "huijiao/server/authcfg": account.authcfg,
        "huijiao/user/department": account.side,
        "huijiao/user/unit_name": account.unit,
    }
    if region:
        values["huijiao/user/region_code"] = region
    return values


def auth_setup(account: DemoAccount) -> dict[str, object]:
    """What the startup script stores in the demo profile's auth database (both demo accounts)."""
    return {
        "master": DEMO_MASTER_PASSWORD,
        "active": account.authcfg,
        "configs": [
            {"id": a.authcfg, "name": a.title, "username": a.username, "password": DEMO_SERVER_PASSWORD}
            for a in DEMO_ACCOUNTS.values()
        ],
    }


def start_exchange_server(demo_dir: Path, region: str | None = None) -> subprocess.Popen | None:
    """Start the reference exchange server on 127.0.0.1:8765 if the ``exchange_server`` package exists."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if (
        importlib.util.find_spec("exchange_server") is None
        or not (ROOT / "exchange_server" / "__main__.py").exists()
    ):
        print("note: exchange_server is not available; starting QGIS without the exchange server")
        return None
    data = Path(demo_dir).resolve() / "server"
    data.mkdir(parents=True, exist_ok=True)
    seed_demo_accounts(data, region or "610000")
    log_file = open(data / "server.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
    process = subprocess.Popen(
        [sys.executable, "-m", "exchange_server", "serve", "--data", str(data), "--host", "127.0.0.1",
         "--port", str(SERVER_PORT)],
        cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
    )  # fmt: skip
    time.sleep(1.5)
    if process.poll() is not None:
        print(
            f"note: the exchange server exited at once (code {process.returncode}); see {data / 'server.log'}"
        )
        return None
    print(f"exchange server running on http://127.0.0.1:{SERVER_PORT} (pid {process.pid}, data {data})")
    return process


# --- QGIS start-up script -------------------------------------------------------------------------
STARTUP_SCRIPT = r"""
# Generated by tests/demo_profile.py: show the 汇交联动 panels; in screenshot mode grab the window and quit.
import json as _hj_json
import time as _hj_time
import traceback as _hj_traceback

from qgis.core import QgsProject as _HjProject, QgsSettings as _HjSettings
from qgis.PyQt.QtCore import QTimer as _HjTimer
from qgis.PyQt.QtWidgets import QApplication as _HjApp, QDockWidget as _HjDock, QMenu as _HjMenu
from qgis.utils import iface as _hj_iface, plugins as _hj_plugins

_HJ_SCREENSHOT = {screenshot!r}
_HJ_REPORT = {report!r}
_HJ_PROJECT = {project!r}
_HJ_DOCKS = {docks!r}
_HJ_TIMEOUT = {timeout!r}
_HJ_RAISE = {raise_dock!r}
_HJ_AUTH = {auth!r}
_HJ_SERVER_TAB = {server_tab!r}
_HJ_START = _hj_time.time()
_HJ_AUTH_ERROR = None


def _hj_demo_auth():
    # DEMO PROFILE ONLY: the documented demo master password (tests/demo_profile.py DEMO_MASTER_PASSWORD)
    # unlocks this profile's auth database without a prompt; the demo accounts of the local reference
    # server are stored once as Basic configurations (an unchanged configuration is left as it is).
    if not _HJ_AUTH:
        return None
    from qgis.core import QgsApplication as _HjQgsApp, QgsAuthMethodConfig as _HjAuthConfig

    manager = _HjQgsApp.authManager()
    if not manager.masterPasswordIsSet() and not manager.setMasterPassword(_HJ_AUTH["master"], True):
        return "the auth database of this profile has another master password than the demo one"
    for entry in _HJ_AUTH["configs"]:
        existing = _HjAuthConfig()
        if (
            entry["id"] in manager.configIds()
            and manager.loadAuthenticationConfig(entry["id"], existing, True)[0]
            and existing.method() == "Basic"
            and existing.config("username") == entry["username"]
            and existing.config("password") == entry["password"]
        ):
            continue
        config = _HjAuthConfig("Basic")
        config.setId(entry["id"])
        config.setName(entry["name"])
        config.setConfig("username", entry["username"])
        config.setConfig("password", entry["password"])
        if not manager.storeAuthenticationConfig(config, True)[0]:
            return "cannot store the demo authentication configuration " + entry["id"]
    return None


def _hj_account():
    from qgis.core import QgsApplication as _HjQgsApp, QgsAuthMethodConfig as _HjAuthConfig

    settings = _HjSettings()
    authcfg = settings.value("huijiao/server/authcfg", "", type=str)
    config = _HjAuthConfig()
    loaded = bool(authcfg) and _HjQgsApp.authManager().loadAuthenticationConfig(authcfg, config, True)[0]
    return {{
        "authcfg": authcfg,
        "username": config.config("username") if loaded else "",
        "department": settings.value("huijiao/user/department", "", type=str),
        "region_code": settings.value("huijiao/user/region_code", "", type=str),
        "server_url": settings.value("huijiao/server/url", "", type=str),
        "error": _HJ_AUTH_ERROR,
    }}


def _hj_show_docks():
    # the panels as tabs of one dock area (a fresh profile's default window state stacks them)
    window = _hj_iface.mainWindow()
    docks = [d for d in (window.findChild(_HjDock, name) for name in _HJ_DOCKS) if d is not None]
    for dock in docks:
        dock.show()
    for dock in docks[1:]:
        if dock not in window.tabifiedDockWidgets(docks[0]):
            window.tabifyDockWidget(docks[0], dock)
    front = [d for d in docks if d.objectName() == _HJ_RAISE] or docks[:1]
    for dock in front:
        dock.raise_()


def _hj_fit_screen():
    window = _hj_iface.mainWindow()
    screen = window.screen() if hasattr(window, "screen") else _HjApp.primaryScreen()
    window.setGeometry(screen.availableGeometry())
    window.showMaximized()


def _hj_report(error=None):
    window = _hj_iface.mainWindow()
    docks = []
    for dock in window.findChildren(_HjDock):
        if dock.objectName().startswith("Huijiao"):
            docks.append({{"objectName": dock.objectName(), "title": dock.windowTitle(),
                          "visible": not dock.isHidden(), "area": int(window.dockWidgetArea(dock))}})
    project = _HjProject.instance()
    menus = [m.title() for m in window.findChildren(_HjMenu) if m.objectName() == "HuijiaoMenu"]
    data = {{
        "plugin_loaded": "huijiao_plugin" in _hj_plugins,
        "docks": docks,
        "menus": menus,
        "project": project.fileName(),
        "crs": project.crs().authid(),
        "layers": sorted(layer.name() for layer in project.mapLayers().values()),
        "groups": [g.name() for g in project.layerTreeRoot().children()],
        "locale": _HjSettings().value("locale/userLocale", "", type=str),
        "window_size": [window.width(), window.height()],
        "seconds": round(_hj_time.time() - _HJ_START, 1),
        "account": _hj_account(),
        "error": error,
    }}
    with open(_HJ_REPORT, "w", encoding="utf-8") as handle:
        _hj_json.dump(data, handle, ensure_ascii=False, indent=2)


def _hj_zoom_if_empty():
    canvas = _hj_iface.mapCanvas()
    if _HjProject.instance().mapLayers() and (canvas.extent().isEmpty() or canvas.scale() < 2):
        canvas.zoomToFullExtent()
        canvas.refresh()


def _hj_shared_dock():
    return _hj_iface.mainWindow().findChild(_HjDock, "HuijiaoSharedLayersDock")


def _hj_open_server_tab():
    # the 农业农村 side: the 服务器共享数据 tab (it lists the shared data) and a feed check at once
    from qgis.PyQt.QtWidgets import QTabWidget as _HjTabs

    dock = _hj_shared_dock()
    if dock is None:
        return
    tabs = dock.findChild(_HjTabs, "HuijiaoSharedLayersTabs")
    if tabs is not None:
        tabs.setCurrentIndex(tabs.count() - 1)
    dock.poll_feed(0.0)


def _hj_server_idle():
    dock = _hj_shared_dock()
    if not _HJ_SERVER_TAB or dock is None or not hasattr(dock, "server_busy"):
        return True
    return not dock.server_busy() and not dock.feed_busy() and _hj_time.time() - _HJ_START > 6


def _hj_ready():
    window = _hj_iface.mainWindow()
    project = _HjProject.instance()
    return (
        _hj_server_idle()
        and window.isVisible()
        and project.fileName() == _HJ_PROJECT
        and len(project.mapLayers()) > 0
        and not _hj_iface.mapCanvas().isDrawing()
        and _hj_time.time() - _HJ_START > 3
    )


def _hj_poll():
    try:
        _hj_zoom_if_empty()
        if not _hj_ready() and _hj_time.time() - _HJ_START < _HJ_TIMEOUT:
            _HjTimer.singleShot(500, _hj_poll)
            return
        _hj_show_docks()
        _HjApp.processEvents()
        _hj_iface.mainWindow().grab().save(_HJ_SCREENSHOT)
        _hj_report()
    except Exception:
        _hj_report(_hj_traceback.format_exc())
    # clear first: layers under /tmp count as "temporary" and would make QGIS ask before quitting
    _HjProject.instance().clear()
    _HjTimer.singleShot(300, _hj_iface.actionExit().trigger)
    _HjTimer.singleShot(5000, _hj_still_running)


def _hj_still_running():
    # QGIS has not quit 5 s after File > Exit: name what holds it (a dialog?) in the log, then retry
    from qgis.core import QgsApplication as _HjQgsApp

    widgets = [w for w in _HjApp.topLevelWidgets() if w.isVisible()]
    tasks = _HjQgsApp.taskManager().countActiveTasks()
    print("huijiao demo: still running after exit; active tasks:", tasks, flush=True)
    for w in widgets:
        text = w.text() if hasattr(w, "text") else ""
        print("huijiao demo: visible", type(w).__name__, repr(w.windowTitle()), repr(text), flush=True)
    _HjTimer.singleShot(5000, _hj_still_running)


try:
    _HJ_AUTH_ERROR = _hj_demo_auth()
    if _HJ_AUTH_ERROR:
        print("huijiao demo:", _HJ_AUTH_ERROR)
    _hj_show_docks()
    _hj_fit_screen()
    _HjTimer.singleShot(500, _hj_zoom_if_empty)
    if _HJ_SERVER_TAB:
        _HjTimer.singleShot(1500, _hj_open_server_tab)
    if _HJ_SCREENSHOT:
        _HjTimer.singleShot(1000, _hj_poll)
except Exception:
    if _HJ_REPORT:
        _hj_report(_hj_traceback.format_exc())
    raise
"""


def write_startup_script(
    profiles: Path,
    project: Path,
    screenshot: Path | None,
    timeout: float,
    panel: str = "",
    account: DemoAccount | None = None,
) -> Path:
    path = profile_dir(profiles) / "huijiao_demo_startup.py"
    report = screenshot.with_suffix(".json") if screenshot else None
    path.write_text(
        STARTUP_SCRIPT.format(
            screenshot=str(screenshot) if screenshot else "",
            report=str(report) if report else "",
            project=str(project),
            docks=list(DOCK_NAMES),
            timeout=max(10.0, timeout - 20.0),
            raise_dock=panel,
            auth=auth_setup(account) if account is not None else None,
            server_tab=account is not None and account.side == "nync",
        ),
        encoding="utf-8",
    )
    return path


# --- run ------------------------------------------------------------------------------------------
def qgis_environment(screenshot: bool) -> dict[str, str]:
    env = dict(os.environ)
    if not env.get("DISPLAY"):  # the qgis binary refuses to start without one, even with offscreen
        hint = "xvfb-run -a python -m tests.demo_profile run ..." if screenshot else "xvfb-run -a make run"
        raise SystemExit(f"No DISPLAY: QGIS needs a display. On a headless machine run `{hint}`.")
    env["QT_QPA_PLATFORM"] = "xcb"
    env.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
    Path(env["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, exist_ok=True)
    return env


def stop(process: subprocess.Popen | None, name: str) -> None:
    """Stop a child we started (by its pid only)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    print(f"stopped {name} (pid {process.pid})")


def run(profiles: Path, demo_dir: Path, screenshot: Path | None = None, timeout: float = 240.0,
        server: bool = True, panel: str = "", side: str = "zrzy") -> int:  # fmt: skip
    profiles = Path(profiles).resolve()
    demo_dir = Path(demo_dir).resolve()
    screenshot = Path(screenshot).resolve() if screenshot else None
    env = qgis_environment(screenshot is not None)
    deploy(profiles)
    project = write_project(demo_dir)
    region = demo_region_code(demo_dir / "county.gpkg")
    account = DEMO_ACCOUNTS[side]
    write_profile_settings(profiles, account_settings(account, region))
    print(
        f"demo account: {account.username} ({account.title}); authentication configuration {account.authcfg}"
    )
    script = write_startup_script(profiles, project, screenshot, timeout, panel, account)
    if screenshot:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        for stale in (screenshot, screenshot.with_suffix(".json")):
            stale.unlink(missing_ok=True)
    qgis = shutil.which("qgis") or "qgis"
    command = [qgis, "--profiles-path", str(profiles), "--profile", PROFILE, "--nologo", "--noversioncheck",
               "--code", str(script), str(project)]  # fmt: skip
    exchange = start_exchange_server(demo_dir, region) if server else None
    log_path = profile_dir(profiles) / "qgis-demo.log"
    print("starting:", " ".join(command))
    try:
        with open(log_path, "wb") as log_file:
            output = log_file if screenshot else None
            process = subprocess.Popen(command, env=env, stdout=output, stderr=output)
            try:
                code = process.wait(timeout=timeout if screenshot else None)
            except subprocess.TimeoutExpired:
                print(f"QGIS did not finish within {timeout:.0f} s; stopping it")
                stop(process, "QGIS")
                code = 124
    finally:
        stop(exchange, "exchange server")
    if code == 124:  # what held QGIS (the start-up script logs it), for the report of the failure
        print(log_path.read_text(encoding="utf-8", errors="replace")[-3000:])
    if code < 0:  # killed by a signal: report it the shell way
        code = 128 - code
    if screenshot:
        report = screenshot.with_suffix(".json")
        if not screenshot.exists() or not report.exists():
            print(f"no screenshot written; QGIS log: {log_path}")
            print(log_path.read_text(encoding="utf-8", errors="replace")[-3000:])
            return code or 1
        data = json.loads(report.read_text(encoding="utf-8"))
        print(f"screenshot {screenshot} ({screenshot.stat().st_size} bytes); report {report}")
        print("panels:", ", ".join(d["title"] for d in data["docks"]) or "none")
        if data.get("error"):
            print(data["error"])
            return 1
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The isolated huijiao-demo QGIS profile")
    sub = parser.add_subparsers(dest="command", required=True)
    p_deploy = sub.add_parser("deploy", help="copy the plugin into PROFILES/profiles/huijiao-demo")
    p_deploy.add_argument("--profiles", type=Path, required=True)
    p_run = sub.add_parser("run", help="deploy, write the demo project and start QGIS")
    p_run.add_argument("--profiles", type=Path, required=True)
    p_run.add_argument("--demo", type=Path, required=True, help="folder holding county.gpkg")
    p_run.add_argument("--screenshot", type=Path, help="save the main window to this PNG and quit")
    p_run.add_argument("--timeout", type=float, default=240.0, help="seconds allowed in screenshot mode")
    p_run.add_argument("--no-server", action="store_true", help="do not start the exchange server")
    p_run.add_argument("--panel", default="", choices=("", *DOCK_NAMES), help="panel to bring to the front")
    p_run.add_argument(
        "--as",
        dest="side",
        default="zrzy",
        choices=tuple(DEMO_ACCOUNTS),
        help="work as the 自然资源 submitter (zrzy, default) or the 农业农村 reader (nync)",
    )
    p_project = sub.add_parser("project", help="only write DEMO/demo.qgz")
    p_project.add_argument("--demo", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "deploy":
        deploy(args.profiles)
        return 0
    if args.command == "project":
        write_project(args.demo)
        return 0
    return run(
        args.profiles, args.demo, args.screenshot, args.timeout, not args.no_server, args.panel, args.side
    )


if __name__ == "__main__":
    status = main()
    # leave without tearing down the QgsApplication of write_project (it crashes on QGIS >= 3.40)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
