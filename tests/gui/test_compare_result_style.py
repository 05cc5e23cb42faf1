"""Bug 1: every result layer of the 耕地比对 panel is drawn in its declared colour (fill 60 % opaque, outline
opaque), not the colour Qt makes of ``"#rrggbb" + "99"`` (#AARRGGBB: 非粮化 magenta)."""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

import pytest
from qgis.core import QgsProject
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtTest import QTest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from compare_support import build_county  # noqa: E402

from huijiao_plugin.gui.docks.dock_compare import HuijiaoCompareDock  # noqa: E402

# the colours as the issue declares them (independent of the product's table): category → (r, g, b)
DECLARED = {
    "candidate": (0x2E, 0x7D, 0x32),
    "nongrain": (0xFB, 0xC0, 0x2D),
    "redline": (0xC6, 0x28, 0x28),
    "added": (0x43, 0xA0, 0x47),
    "removed": (0xE5, 0x39, 0x35),
    "modified": (0xFB, 0x8C, 0x00),
}


@pytest.fixture()
def project_county(qgis_iface, tmp_path):
    layers = build_county(tmp_path / "county.gpkg")
    QgsProject.instance().addMapLayers(list(layers.values()))
    yield layers
    QgsProject.instance().removeAllMapLayers()
    layers.clear()
    gc.collect()


def _run(dock, preset_id):
    dock.preset_combo.setCurrentIndex(dock.preset_combo.findData(preset_id))
    QTest.mouseClick(dock.run_button, Qt.MouseButton.LeftButton)
    end = time.time() + 60
    while dock.task is not None and time.time() < end:
        QCoreApplication.processEvents()
        time.sleep(0.01)
    assert dock.task is None
    assert dock.result_layers, dock.summary_label.text()
    return QgsProject.instance().mapLayer(dock.result_layers[-1])


def test_result_layers_use_declared_colours(qgis_iface, project_county):
    dock = HuijiaoCompareDock(qgis_iface)
    dock.resize(420, 900)
    dock.show()
    seen = set()
    for preset_id in ("hsfnotinpbf", "pbfnongrain", "pbfexitcandidates", "versiondiff"):
        layer = _run(dock, preset_id)
        categories = layer.renderer().categories()
        assert categories, preset_id
        for category in categories:
            value = str(category.value())
            symbol = category.symbol()
            fill = symbol.symbolLayer(0).fillColor()
            stroke = symbol.symbolLayer(0).strokeColor()
            if value in DECLARED:
                expected = DECLARED[value]
                assert (fill.red(), fill.green(), fill.blue(), fill.alpha()) == (*expected, 153), value
                assert (stroke.red(), stroke.green(), stroke.blue(), stroke.alpha()) == (*expected, 255)
                seen.add(value)
    assert {"candidate", "nongrain"} <= seen
    dock.deleteLater()
