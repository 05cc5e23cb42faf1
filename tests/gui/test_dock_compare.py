"""The 耕地比对 panel: inputs pre-filled from the project, a preset run as a QgsTask, styled result layer,
statistics table, xlsx export, cancel."""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import QCoreApplication, Qt

from huijiao_plugin.compat import FieldType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from compare_support import T1, build_county, random_county  # noqa: E402

from huijiao_plugin.gui.docks.dock_compare import HuijiaoCompareDock, guess_roles  # noqa: E402


@pytest.fixture()
def project_county(qgis_iface, tmp_path):
    layers = build_county(tmp_path / "county.gpkg")
    project = QgsProject.instance()
    for layer in layers.values():
        project.addMapLayer(layer)
    yield layers
    project.removeAllMapLayers()
    layers.clear()
    gc.collect()


def wait_for(dock, timeout=60.0):
    """Until the dock has handled the end of its task (the task manager deletes finished tasks)."""
    end = time.time() + timeout
    while dock.task is not None and time.time() < end:
        QCoreApplication.processEvents()
        time.sleep(0.01)
    assert dock.task is None


def select(dock, preset_id):
    dock.preset_combo.setCurrentIndex(dock.preset_combo.findData(preset_id))


def test_roles_prefilled_from_project(qgis_iface, project_county):
    dock = HuijiaoCompareDock(qgis_iface)
    assert dock.objectName() == "HuijiaoCompareDock"
    for role in ("DLTB", "DLTB_N1", "PBF", "HSF", "STBHHX", "YZGHQ", "TRHJZL", "JCTB", "XZQ", "CJDCQ"):
        assert dock.role_combos[role].currentLayer() is project_county[role], role
    assert dock.role_combos["A"].currentLayer() is project_county["PBF"]
    select(dock, "versiondiff")
    assert dock.role_combos["DLTB_N1"].isVisibleTo(dock) and not dock.role_combos["HSF"].isVisibleTo(dock)
    select(dock, "pbfnongrain")
    editors = dock.params_widget.editors
    assert editors["NONGRAIN_CODES"].placeholderText() == "FLS,WG"
    assert editors["MIN_AREA"].value() == 0.5 and editors["MIN_WIDTH"].value() == 0.1
    dock.deleteLater()


def test_inputs_follow_layers_added_later(qgis_iface, tmp_path):
    """QGIS starts the plugin before a project is opened: inputs fill when the layers arrive, a choice
    already made stays, and unload stops following the project."""
    QgsProject.instance().removeAllMapLayers()
    dock = HuijiaoCompareDock(qgis_iface)
    assert dock.role_combos["DLTB"].currentLayer() is None
    layers = build_county(tmp_path / "later.gpkg")
    QgsProject.instance().addMapLayer(layers["PBF"])
    assert dock.role_combos["PBF"].currentLayer() is layers["PBF"]
    dock.role_combos["HSF"].setLayer(layers["PBF"])  # the analyst's own choice
    QgsProject.instance().addMapLayers([v for k, v in layers.items() if k != "PBF"])
    assert dock.role_combos["DLTB"].currentLayer() is layers["DLTB"]
    assert dock.role_combos["HSF"].currentLayer() is layers["PBF"]
    dock.unload()
    dock.role_combos["DLTB"].setLayer(None)
    extra = build_county(tmp_path / "again.gpkg")
    QgsProject.instance().addMapLayer(extra["DLTB"])
    assert dock.role_combos["DLTB"].currentLayer() is None
    QgsProject.instance().removeAllMapLayers()
    dock.deleteLater()


def test_run_preset_as_task(qgis_iface, project_county, tmp_path):
    from openpyxl import load_workbook

    dock = HuijiaoCompareDock(qgis_iface)
    select(dock, "hsfnotinpbf")
    task = dock.start()
    assert task is not None and not dock.run_button.isEnabled()
    wait_for(dock)
    assert dock.run_button.isEnabled()
    assert dock.progress.value() == 100
    assert dock.summary_label.text() == "Candidates to bring into PBF: 5 pieces, 51.9 mu"
    layer = QgsProject.instance().mapLayer(dock.result_layers[-1])
    assert layer.featureCount() == 5
    assert layer.renderer().type() == "categorizedSymbol"
    from huijiao_plugin.core.compare import provenance

    record = provenance.read_metadata(layer)  # once, in the layer's metadata
    assert record["preset"] == "hsfnotinpbf" and set(record["inputs"]) >= {"DLTB", "HSF", "PBF"}
    assert QgsProject.instance().layerTreeRoot().findGroup("Farmland comparison").findLayer(layer.id())
    # statistics table: one row per township × category, sortable by area
    assert dock.table.rowCount() == 2
    dock.table.sortItems(7, Qt.SortOrder.DescendingOrder)
    assert dock.table.item(0, 7).data(Qt.ItemDataRole.DisplayRole) >= dock.table.item(1, 7).data(
        Qt.ItemDataRole.DisplayRole
    )
    codes = {dock.table.item(r, 1).text() for r in range(2)}
    assert T1 in codes
    written = dock.export_xlsx(tmp_path / "stats.xlsx")
    sheet = load_workbook(written)["比对统计"]
    assert sum(row[6].value for row in sheet.iter_rows(min_row=2)) == 5
    dock.deleteLater()


def test_missing_input_is_reported_not_run(qgis_iface, project_county):
    dock = HuijiaoCompareDock(qgis_iface)
    select(dock, "versiondiff")
    dock.role_combos["DLTB_N1"].setLayer(None)
    assert dock.start() is None
    assert dock.task is None and dock.run_button.isEnabled()
    dock.deleteLater()


def test_cancel(qgis_iface, tmp_path):
    layers = random_county(tmp_path / "big.gpkg", nx=60, ny=40)
    project = QgsProject.instance()
    for layer in layers.values():
        project.addMapLayer(layer)
    try:
        dock = HuijiaoCompareDock(qgis_iface)
        select(dock, "boundarycompare")
        count = len(dock.result_layers)
        task = dock.start()
        ended = []
        task.taskTerminated.connect(lambda: ended.append("terminated"))
        task.cancel()
        wait_for(dock)
        assert ended == ["terminated"]
        assert dock.summary_label.text() == "Canceled."
        assert len(dock.result_layers) == count and dock.run_button.isEnabled()
        dock.deleteLater()
    finally:
        QgsApplication.taskManager().cancelAll()
        project.removeAllMapLayers()
        layers.clear()
        gc.collect()


def test_guess_roles_by_name_when_unrecognised(qgis_app, tmp_path):
    from compare_support import rect, write_layer

    a = write_layer(
        tmp_path / "x.gpkg", "dltb_2023", [("SJNF", FieldType.Int)], [(rect(0, 0, 1, 1), {"SJNF": 2023})]
    )
    b = write_layer(
        tmp_path / "x.gpkg", "dltb_2024", [("SJNF", FieldType.Int)], [(rect(0, 0, 1, 1), {"SJNF": 2024})]
    )
    roles = guess_roles([b, a])
    assert roles["DLTB"] is a and roles["DLTB_N1"] is b
