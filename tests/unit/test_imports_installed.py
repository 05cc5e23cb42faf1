"""Every import of the plugin and the server is installed by the project's own set-up (make system / venv).

Each module is imported in a fresh interpreter (nothing imported by other tests can hide a missing
package): the whole plugin and server in the venv, the plugin alone in QGIS's own Python (the base
interpreter of the venv, without the pip dev pins), and everything again with the optional components
blocked, which a module must survive at import time. Every third-party name imported anywhere (also
inside functions) must be declared below with the Debian package or pip pin that installs it.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("huijiao_plugin", "exchange_server")

# import name -> what installs it: "apt:<Makefile APT_PACKAGES entry>" or "pip:<pyproject dev pin>".
INSTALLED_BY = {
    "qgis": "apt:python3-qgis",
    "processing": "apt:python3-qgis",  # QGIS's own Processing plugin (python3-qgis-common)
    "numpy": "apt:python3-numpy",
    "osgeo": "apt:python3-gdal",
    "requests": "apt:python3-requests",
    "cryptography": "apt:python3-cryptography",
    "openpyxl": "pip:openpyxl",
    "shapely": "pip:shapely",
    "fastapi": "pip:fastapi",
    "pydantic": "pip:fastapi",  # fastapi's own dependencies, resolved with it
    "starlette": "pip:fastapi",
    "sqlalchemy": "pip:sqlalchemy",
    "uvicorn": "pip:uvicorn",
    "certifi": "apt:python3-requests",  # requests' own CA bundle (python3-certifi, a dependency)
    "matplotlib": "apt:python3-matplotlib",
    "pyproj": "apt:python3-pyproj",  # the server's CRS check where GDAL's OSR is missing
    "dask": "pip:dask",
    "distributed": "pip:dask",  # dask[distributed]
}
# Optional components: every module must import without them (the feature falls back).
OPTIONAL = ("shapely", "psycopg", "uvloop", "openpyxl", "dask", "distributed", "pyproj")

_IMPORT_ALL = r"""
import importlib, json, pkgutil, sys, traceback
blocked = set(sys.argv[2].split(",")) - {""}
for name in blocked:
    sys.modules[name] = None  # "import name" now raises ImportError, as when it is not installed
from qgis.core import QgsApplication
sys.path.append(QgsApplication.pkgDataPath() + "/python/plugins")  # where QGIS finds "processing"
failed, count = {}, 0
for pkg in sys.argv[1].split(","):
    for info in pkgutil.walk_packages(importlib.import_module(pkg).__path__, pkg + "."):
        count += 1
        try:
            importlib.import_module(info.name)
        except BaseException:
            failed[info.name] = traceback.format_exc(limit=-2)
print(json.dumps({"count": count, "failed": failed}))
"""


def _module_files() -> list[Path]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    return [p for p in files if p.name != "resources_rc.py"]


def _import_all(python: str, packages: tuple[str, ...], blocked: tuple[str, ...] = ()) -> dict:
    out = subprocess.run(
        [python, "-c", _IMPORT_ALL, ",".join(packages), ",".join(blocked)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _expected_module_count(packages: tuple[str, ...]) -> int:
    # walk_packages lists every sub-package and module, but not the top package itself
    return sum(1 for p in _module_files() if p.relative_to(ROOT).parts[0] in packages) - len(packages)


def test_every_module_imports_in_the_venv():
    result = _import_all(sys.executable, PACKAGES)
    assert result["failed"] == {}
    assert result["count"] == _expected_module_count(PACKAGES) > 60


def test_plugin_imports_in_qgis_own_python():
    # QGIS runs the plugin in the system Python: only Debian packages there, no pip dev pins.
    base = getattr(sys, "_base_executable", sys.executable)
    result = _import_all(base, ("huijiao_plugin",))
    assert result["failed"] == {}
    assert result["count"] == _expected_module_count(("huijiao_plugin",))


def test_optional_components_missing_do_not_break_imports():
    result = _import_all(sys.executable, PACKAGES, blocked=OPTIONAL)
    assert result["failed"] == {}
    assert result["count"] == _expected_module_count(PACKAGES)


def _third_party_imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in _module_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in (*PACKAGES, "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_declared_and_installed_by_the_setup():
    found = _third_party_imports()
    undeclared = {name: sorted(files) for name, files in found.items() if name not in INSTALLED_BY}
    assert undeclared == {}, "declare the package that installs each of these in INSTALLED_BY"
    assert {"qgis", "cryptography", "fastapi"} <= found.keys()  # the scan does see imports

    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    apt_block = re.search(r"^APT_PACKAGES := ((?:.*\\\n)*.*)$", makefile, re.MULTILINE)
    assert apt_block is not None
    apt = set(apt_block.group(1).replace("\\\n", " ").split())
    with (ROOT / "pyproject.toml").open("rb") as f:
        dev = tomllib.load(f)["project"]["optional-dependencies"]["dev"]
    pins = {re.split(r"[\[=<>]", spec)[0].lower() for spec in dev}
    for name in found:
        kind, package = INSTALLED_BY[name].split(":")
        assert package in (apt if kind == "apt" else pins), f"{name}: {package} not installed by make {kind}"
