"""QGIS 4 / Qt 6 readiness, checked the way plugins.qgis.org checks an upload (pyqgis4-checker).

Every Qt name the plugin uses is resolved against PyQt6 from PyPI, installed by `make venv` in a throwaway
venv (.venv-qt6: PyQt6 and nothing else, no QGIS), and every QGIS enum member is read through its enum.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.tools import qgis_enum_names

ROOT = Path(__file__).resolve().parents[2]
QT6_PYTHON = ROOT / ".venv-qt6" / "bin" / "python"
CHECKED = ["huijiao_plugin", "exchange_server", "tests", "benchmarks"]


def _run_qt6_check(*paths: str) -> subprocess.CompletedProcess:
    assert QT6_PYTHON.exists(), "the PyQt6 check venv is missing: run `make venv`"
    return subprocess.run(
        [str(QT6_PYTHON), str(ROOT / "tests" / "tools" / "qt6_names.py"), *paths],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_every_qt_name_exists_in_pyqt6():
    result = _run_qt6_check(*CHECKED)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert result.stdout.strip().endswith("file(s)") and result.stdout.startswith("0 Qt 5-only use(s)")


def test_qt6_check_catches_qt5_names(tmp_path):
    """The check itself can fail: unscoped enums, exec_(), QRegExp, PyQt5 imports and resources_rc."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from PyQt5.QtCore import QRegExp\n"
        "from qgis.PyQt.QtCore import Qt, QVariant\n"
        "from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox\n"
        "from huijiao_plugin import resources_rc\n"
        "a = Qt.AlignLeft\n"
        "b = QDialogButtonBox.Ok | QDialogButtonBox.StandardButton.Cancel\n"
        "c = QVariant.String\n"
        "d = QDialog().exec_() == QDialog.Accepted\n",
        encoding="utf-8",
    )
    out = _run_qt6_check(str(sample)).stdout
    assert "Qt.AlignLeft: unscoped enum (Qt 5 only) -> Qt.AlignmentFlag.AlignLeft" in out
    assert "QDialogButtonBox.Ok: unscoped enum (Qt 5 only) -> QDialogButtonBox.StandardButton.Ok" in out
    assert "QDialog.Accepted: unscoped enum (Qt 5 only) -> QDialog.DialogCode.Accepted" in out
    assert "QVariant.String does not exist in PyQt6" in out
    assert "Qt 5-only method -> exec" in out
    assert "QRegExp does not exist in PyQt6" in out
    assert "import through qgis.PyQt, not PyQt5" in out
    assert "compiled resources are gone in Qt 6" in out
    assert "StandardButton.Cancel:" not in out
    assert out.strip().endswith("8 Qt 5-only use(s) in 1 file(s)")


def test_qgis_enums_are_scoped(capsys):
    assert qgis_enum_names.main([str(ROOT / p) for p in CHECKED]) == 0, capsys.readouterr().out[-4000:]


def test_qgis_enum_check_catches_unscoped(tmp_path, capsys):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from qgis.core import Qgis, QgsWkbTypes\n"
        "x = (QgsWkbTypes.PolygonGeometry, Qgis.Info, Qgis.MessageLevel.Info)\n",
        encoding="utf-8",
    )
    assert qgis_enum_names.main([str(sample)]) == 1
    out = capsys.readouterr().out
    assert (
        "QgsWkbTypes.PolygonGeometry: unscoped QGIS enum -> QgsWkbTypes.GeometryType.PolygonGeometry" in out
    )
    assert "Qgis.Info: unscoped QGIS enum -> Qgis.MessageLevel.Info" in out
    assert "2 unscoped QGIS enum use(s)" in out


def test_metadata_says_qgis4_ready():
    text = (ROOT / "metadata.txt").read_text(encoding="utf-8")
    assert "qgisMaximumVersion=4.99" in text.splitlines()
    assert "supportsQt6" not in text
    assert sys.version_info >= (3, 9)
