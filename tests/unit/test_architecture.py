"""Architecture rules (conventions §3, §5, §8, §9): .ui hygiene, metadata.txt keys, GUI-free core/toolbelt."""

from __future__ import annotations

import ast
import configparser
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.package_check import check_metadata

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = ROOT / "huijiao_plugin"
GUI_FREE_DIRS = ("core", "toolbelt")
BANNED_IMPORTS = (
    "qgis.gui",
    "qgis.utils",
    "qgis.PyQt.QtWidgets",
    "qgis.PyQt.QtGui",
    "PyQt5.QtWidgets",
    "PyQt5.QtGui",
    "huijiao_plugin.gui",
    "huijiao_plugin.processing",
    "huijiao_plugin.plugin",
)


def ui_problems(path: Path) -> list[str]:
    """Violations of the .ui rules: signal <connections>, a .qrc include, a custom-widget header other
    than ``qgis.gui``. An empty ``<connections/>`` (Qt Designer always writes one) is fine."""
    root = ET.parse(path).getroot()
    problems = []
    connections = root.find("connections")
    if connections is not None and len(connections):
        problems.append(f"{path.name}: has <connections> (connect signals in Python)")
    for include in root.iter("include"):
        if (include.get("location") or "").endswith(".qrc") or (include.text or "").strip().endswith(".qrc"):
            problems.append(f"{path.name}: includes a .qrc")
    for widget in root.iter("customwidget"):
        header = (widget.findtext("header") or "").strip()
        if header != "qgis.gui":
            problems.append(f"{path.name}: custom widget {widget.findtext('class')} has header '{header}'")
    return problems


def banned_imports(source: str) -> list[str]:
    """Modules imported by ``source`` that GUI-free code must not import."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if any(name == banned or name.startswith(banned + ".") for banned in BANNED_IMPORTS):
                found.append(name)
                break
    return found


def test_ui_files_follow_the_rules():
    problems = [p for ui in sorted(PLUGIN_DIR.rglob("*.ui")) for p in ui_problems(ui)]
    assert problems == []


def test_ui_checker_catches_violations(tmp_path):
    bad = tmp_path / "dlg_bad.ui"
    bad.write_text(
        """<?xml version="1.0" encoding="UTF-8"?>
<ui version="4.0"><class>Dialog</class><widget class="QDialog" name="Dialog"/>
<customwidgets><customwidget><class>QgsFileWidget</class><extends>QWidget</extends>
<header>qgsfilewidget.h</header></customwidget></customwidgets>
<resources><include location="../../../resources.qrc"/></resources>
<connections><connection><sender>a</sender><signal>clicked()</signal></connection></connections></ui>""",
        encoding="utf-8",
    )
    problems = ui_problems(bad)
    assert len(problems) == 3
    good = tmp_path / "dlg_good.ui"
    good.write_text(
        """<?xml version="1.0" encoding="UTF-8"?>
<ui version="4.0"><class>Dialog</class><widget class="QDialog" name="Dialog"/>
<customwidgets><customwidget><class>QgsFileWidget</class><extends>QWidget</extends>
<header>qgis.gui</header></customwidget></customwidgets><resources/><connections/></ui>""",
        encoding="utf-8",
    )
    assert ui_problems(good) == []


def test_metadata_has_every_required_key():
    text = (ROOT / "metadata.txt").read_text(encoding="utf-8")
    assert check_metadata(text) == []

    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(text)
    general = parser["general"]
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    assert general["category"] == "Web"
    assert (PLUGIN_DIR / general["icon"]).is_file()
    assert general["homepage"].startswith("https://")
    assert general["tags"].isascii()


@pytest.mark.parametrize("package", GUI_FREE_DIRS)
def test_gui_free_packages_import_no_gui(package):
    offenders = {
        str(path.relative_to(ROOT)): banned
        for path in sorted((PLUGIN_DIR / package).rglob("*.py"))
        if (banned := banned_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_import_checker_catches_gui_imports():
    assert banned_imports("from qgis.PyQt.QtWidgets import QLabel") == ["qgis.PyQt.QtWidgets"]
    assert banned_imports("import qgis.gui") == ["qgis.gui"]
    assert banned_imports("from qgis.utils import iface") == ["qgis.utils"]
    assert banned_imports("from qgis import gui") == ["qgis.gui"]
    assert banned_imports("from huijiao_plugin.gui.docks import dock_compare") == ["huijiao_plugin.gui.docks"]
    assert banned_imports("from qgis.core import QgsSettings\nfrom qgis.PyQt.QtCore import QUrl") == []


def test_no_module_imports_compiled_resources():
    """pyrcc is gone in Qt 6: icons and .ui files load by path; resources.qrc only lists the icons."""
    importers = sorted(
        str(path.relative_to(ROOT))
        for path in PLUGIN_DIR.rglob("*.py")
        if path.name != "resources_rc.py" and "resources_rc" in path.read_text(encoding="utf-8")
    )
    assert importers == []
