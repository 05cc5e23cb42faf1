"""The 耕地比对 panel keeps its results and turns them into change patches:

* each run is written into the project GeoPackage as "<preset>_<date>_<n>" (no temporary layer, no name
  twice), earlier runs are listed and load again;
* "Make change patches" puts the result into the county's patch store (rule, input versions, numbers) and
  the change-patch panel shows them; pressing it again creates nothing twice.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import sys
import time
from pathlib import Path

import pytest
from qgis.core import QgsProject
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtTest import QTest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from compare_support import build_county  # noqa: E402

from huijiao_plugin.core.patches.store import PatchStore  # noqa: E402
from huijiao_plugin.core.session import Session  # noqa: E402
from huijiao_plugin.core.settings import HuijiaoSettings  # noqa: E402
from huijiao_plugin.gui.docks.dock_compare import HuijiaoCompareDock  # noqa: E402
from huijiao_plugin.gui.docks.dock_patches import HuijiaoPatchesDock  # noqa: E402


@pytest.fixture()
def panels(qgis_iface, tmp_path):
    layers = build_county(tmp_path / "county.gpkg")
    QgsProject.instance().addMapLayers(list(layers.values()))
    session = Session(HuijiaoSettings(region_code="610102", unit_name="分析员"), state_dir=tmp_path / "state")
    session.results_folder = str(tmp_path / "results")
    store = PatchStore.create(tmp_path / "bghtb.gpkg", "EPSG:4545", county_code="610102")
    patches = HuijiaoPatchesDock(qgis_iface, session)
    compare = HuijiaoCompareDock(qgis_iface, session)
    for dock in (patches, compare):
        dock.resize(420, 900)
        dock.show()
    assert patches.set_store(store.path)
    yield compare, patches, store, session
    for dock in (patches, compare):
        dock.deleteLater()
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
    return QgsProject.instance().mapLayer(dock.result_layers[-1])


def test_runs_saved_named_listed_and_reloadable(panels, tmp_path):
    compare, _patches, _store, _session = panels
    gpkg = tmp_path / "results" / "huijiao_results.gpkg"
    today = dt.date.today().isoformat()
    first = _run(compare, "hsfnotinpbf")
    second = _run(compare, "hsfnotinpbf")
    for n, layer in ((1, first), (2, second)):
        assert layer.providerType() == "ogr" and layer.source().split("|")[0] == str(gpkg)
        assert layer.name().endswith(f"_{today}_{n}") and layer.featureCount() == 5
    assert first.name() != second.name()
    # nothing temporary: QGIS would warn on exit about memory layers
    assert not [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.providerType() == "memory"]
    combo = compare.runs_widget.runs_combo
    assert [combo.itemText(i) for i in range(combo.count())] == [second.name(), first.name()]
    combo.setCurrentIndex(1)
    QTest.mouseClick(compare.runs_widget.load_button, Qt.MouseButton.LeftButton)
    loaded = QgsProject.instance().mapLayer(compare.result_layers[-1])
    assert loaded.id() not in (first.id(), second.id()) and loaded.name() == first.name()
    assert loaded.featureCount() == 5 and loaded.renderer().type() == "categorizedSymbol"


def test_result_to_change_patches_without_duplicates(panels):
    compare, patches, store, _session = panels
    layer = _run(compare, "hsfnotinpbf")
    button = compare.runs_widget.patches_button
    assert button.isEnabled()
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    rows = store.patches()
    assert rows and compare.runs_widget.last_import.created
    assert len(rows) == len(compare.runs_widget.last_import.created)
    expected_inputs = json.loads(layer.metadata().keywords("huijiao:provenance")[0])["inputs"]  # once per run
    assert expected_inputs and set(expected_inputs) >= {"DLTB", "HSF", "PBF"}
    for row in rows:
        assert row["patch_type"] == "include_candidate" and row["rule_id"] == "huijiao:hsfnotinpbf"
        assert json.loads(row["inputs"]) == expected_inputs
        assert row["number"].startswith(f"610102{row['year']}") and row["created_by"] == "分析员"
    assert patches.table.rowCount() == len(rows)  # the change-patch panel follows
    # again (e.g. after re-running the same comparison): all matched, nothing new
    second = _run(compare, "hsfnotinpbf")
    assert second.featureCount() == layer.featureCount()
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    assert store.count() == len(rows)
    assert compare.runs_widget.last_import.created == []
    # only the selected pieces
    compare.runs_widget.selected_only.setChecked(True)
    second.selectByIds([next(second.getFeatures()).id()])
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    assert compare.runs_widget.last_import.pieces == 1  # one piece read, not the whole result
