"""The plugin's ext-libs folder (``make ext-libs``): QGIS's own Python without shapely takes the vectorised
path from it; a Python that has a shapely of its own never gets a second one."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import shapely
from qgis.core import Qgis, QgsVectorLayer

from huijiao_plugin.core.compare import provenance

ROOT = Path(__file__).resolve().parents[2]
QGIS_PYTHON = "/usr/bin/python3"  # what QGIS and qgis_process run on Debian
QGIS_GEOS = (Qgis.geosVersionMajor(), Qgis.geosVersionMinor())
# Debian 12's QGIS Python has no shapely; Debian 13's and sid's have one, hidden in the probe there
QGIS_PYTHON_HAS_SHAPELY = (
    subprocess.run([QGIS_PYTHON, "-c", "import shapely"], capture_output=True).returncode == 0
)

PROBE = textwrap.dedent(
    """
    import json, logging, sys
    sys.path.insert(0, {root!r})
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    ext = {ext!r}

    if {hide!r}:
        # QGIS's Python as Debian 12 ships it, where this one has a shapely of its own (Debian 13, sid): each
        # sys.path folder holding a shapely is replaced by a view of that folder without it
        import os, tempfile
        for i, folder in enumerate(list(sys.path)):
            if folder and os.path.isdir(os.path.join(folder, "shapely")):
                view = tempfile.mkdtemp()
                for entry in os.listdir(folder):
                    if not entry.startswith("shapely"):
                        os.symlink(os.path.join(folder, entry), os.path.join(view, entry))
                sys.path[i] = view
    from huijiao_plugin import compat
    compat.EXT_LIBS = ext
    found, np = compat.vectorised_shapely()
    geos = list(getattr(found, "geos_version", ()))
    in_path = compat.EXT_LIBS in sys.path
    print(json.dumps({{"file": getattr(found, "__file__", None), "geos": geos, "in_path": in_path}}))
    """
)


def probe(python: str, ext: Path, hide_own_shapely: bool = False) -> tuple[dict, str]:
    proc = subprocess.run(
        [python, "-c", PROBE.format(root=str(ROOT), ext=str(ext), hide=hide_own_shapely)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def copy_shapely(target: Path) -> None:
    """This venv's shapely 2 wheel (the pinned one) as ``make ext-libs`` installs it."""
    source = Path(shapely.__file__).parent
    shutil.copytree(source, target / "shapely")
    libs = source.parent / "shapely.libs"
    if libs.is_dir():
        shutil.copytree(libs, target / "shapely.libs")


def test_qgis_python_without_shapely_takes_the_ext_libs_shapely_with_its_own_geos(tmp_path):
    """Taken whatever GEOS QGIS links (3.11 on Debian 12, the wheel's is 3.13): it runs on its own."""
    ext = tmp_path / "ext-libs"
    copy_shapely(ext)
    found, log = probe(QGIS_PYTHON, ext, hide_own_shapely=QGIS_PYTHON_HAS_SHAPELY)
    assert found["file"] == str(ext / "shapely" / "__init__.py")
    assert found["geos"] == list(shapely.geos_version)
    assert found["in_path"] and "from the plugin's ext-libs folder" in log


def test_qgis_process_runs_the_ext_libs_shapely_on_its_own_geos(tmp_path):
    """The real qgis_process program links QGIS's GEOS itself, where a plain Python does not: there a wheel
    bound to the wrong GEOS crashes. With the ext-libs folder in the installed plugin, a preset runs, its
    provenance names the engine that computed it, and it gives the rows of the run in this process."""
    from huijiao_plugin.core.compare.engine import CountyOverlay
    from huijiao_plugin.core.compare.presets import run_preset
    from tests.datagen import COMPARE_ROLES
    from tests.datagen.__main__ import main
    from tests.qgis_process_support import install_plugin, run_algorithm

    args = ["--out", str(tmp_path), "--size", "1500", "--seed", "3", "--formats", "gpkg", "--quiet"]
    assert main(args) == 0
    county = tmp_path / "county.gpkg"
    env = install_plugin(tmp_path / "config")
    plugin_dir = tmp_path / "config" / "profiles" / "default" / "python" / "plugins" / "huijiao_plugin"
    copy_shapely(plugin_dir / "ext-libs")
    params = {role: f"{county}|layername={COMPARE_ROLES[role]}" for role in ("PBF", "DLTB", "XZQ", "CJDCQ")}
    out = tmp_path / "out.gpkg"
    results = run_algorithm(env, "huijiao:pbfnongrain", {**params, "OUTPUT": str(out)})

    [record] = provenance.read_gpkg(str(out), "out")
    if QGIS_PYTHON_HAS_SHAPELY:  # Debian 13, sid: QGIS's Python has its own, never the folder's
        assert "(whole arrays)" in record["engine"]
    else:
        wheel = f"shapely {shapely.__version__}, GEOS {shapely.geos_version_string} (whole arrays)"
        assert record["engine"].startswith(wheel)
        assert f"GEOS {Qgis.geosVersion()}" in record["engine"]  # QGIS's own, beside it
    layers = {role: QgsVectorLayer(uri, role, "ogr") for role, uri in params.items()}
    here = run_preset("pbfnongrain", CountyOverlay(layers))
    assert results["COUNT"] == len(here.pieces) > 0
    assert results["AREA_M2"] == pytest.approx(sum(p.area_m2 for p in here.pieces), abs=0.01)


def test_no_ext_libs_folder_leaves_the_path_alone(tmp_path):
    found, _log = probe(QGIS_PYTHON, tmp_path / "missing", hide_own_shapely=QGIS_PYTHON_HAS_SHAPELY)
    assert found == {"file": None, "geos": [], "in_path": False}


def test_a_python_with_its_own_shapely_does_not_get_the_ext_libs_one(tmp_path):
    ext = tmp_path / "ext-libs"
    (ext / "shapely").mkdir(parents=True)
    (ext / "shapely" / "__init__.py").write_text("raise ImportError('the ext-libs copy was imported')\n")
    venv_python = str(ROOT / ".venv" / "bin" / "python")
    found, _log = probe(venv_python, ext)
    assert found["file"] == shapely.__file__ and not found["in_path"]
