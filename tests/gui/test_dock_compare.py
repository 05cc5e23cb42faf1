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
    assert dock.summary_label.text() == "Candidates to bring into PBF: 5 pieces, 51.90 亩"
    layer = QgsProject.instance().mapLayer(dock.result_layers[-1])
    assert layer.featureCount() == 5
    assert layer.renderer().type() == "categorizedSymbol"
    from huijiao_plugin.core.compare import provenance

    record = provenance.read_metadata(layer)  # once, in the layer's metadata
    assert record["preset"] == "hsfnotinpbf" and set(record["inputs"]) >= {"DLTB", "HSF", "PBF"}
    assert QgsProject.instance().layerTreeRoot().findGroup("Farmland comparison").findLayer(layer.id())
    # statistics table: one row per township × category and the 合计 row, sortable by area, 合计 kept last
    assert dock.table.rowCount() == 3
    headers = [dock.table.horizontalHeaderItem(c).text() for c in range(dock.table.columnCount())]
    assert headers == ["级别", "区域", "规则", "类别", "图斑数", "面积（亩）", "比例（%）"]
    for order in (Qt.SortOrder.DescendingOrder, Qt.SortOrder.AscendingOrder):
        dock.table.sortItems(5, order)
        areas = [float(dock.table.item(r, 5).text().replace(",", "")) for r in range(2)]
        assert areas == sorted(areas, reverse=order == Qt.SortOrder.DescendingOrder)
        assert dock.table.item(2, 0).text() == "合计"
    assert float(dock.table.item(2, 5).text()) == pytest.approx(51.9, abs=0.01)
    assert float(dock.table.item(2, 6).text()) == 100.0
    assert sum(float(dock.table.item(r, 6).text()) for r in range(2)) == pytest.approx(100.0, abs=0.02)
    assert any(T1 in dock.table.item(r, 1).text() for r in range(2))
    written = dock.export_xlsx(tmp_path / "stats.xlsx")
    sheet = load_workbook(written)["比对统计"]
    assert [c.value for c in sheet[1]] == headers and sheet.freeze_panes == "A2"
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert rows[-1][0] == "合计" and rows[-1][4] == 5 and sum(r[4] for r in rows[:-1]) == 5
    assert sheet.cell(row=2, column=6).number_format == "#,##0.00"
    # a styled header band, the 合计 row in bold, the 区域 column wide enough for 名称（代码）
    assert all(c.font.bold and c.fill.fgColor.rgb == "FFD9E1F2" for c in sheet[1])
    assert all(c.font.bold for c in sheet[sheet.max_row]) and not sheet["A2"].font.bold
    assert sheet.column_dimensions["B"].width >= max(len(str(r[1] or "")) for r in rows)
    params = load_workbook(written)["规则参数"]
    words = " ".join(str(c.value) for row in params.iter_rows(min_row=2) for c in row)
    assert "huijiao:" not in words and "{" not in words and "min_area" not in words
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


def test_area_unit_in_panel_summary_and_xlsx(qgis_iface, project_county, tmp_path):
    """Bug 6: 公顷 chosen in the settings: the table, the total, the summary and the xlsx are in 公顷."""
    from openpyxl import load_workbook

    from huijiao_plugin.core.session import Session
    from huijiao_plugin.core.settings import HuijiaoSettings

    session = Session(HuijiaoSettings(area_unit="ha"), state_dir=tmp_path / "state")
    session.results_folder = str(tmp_path / "results")
    dock = HuijiaoCompareDock(qgis_iface, session)
    select(dock, "hsfnotinpbf")
    dock.start()
    wait_for(dock)
    layer = QgsProject.instance().mapLayer(dock.result_layers[-1])
    total_ha = sum(f["area_m2"] for f in layer.getFeatures()) / 10000.0
    assert dock.table.horizontalHeaderItem(5).text() == "面积（公顷）"
    assert float(dock.table.item(dock.table.rowCount() - 1, 5).text()) == pytest.approx(total_ha, abs=1e-4)
    assert dock.summary_label.text().endswith(f"{total_ha:,.4f} 公顷")
    sheet = load_workbook(dock.export_xlsx(tmp_path / "ha.xlsx"))["比对统计"]
    assert sheet.cell(row=1, column=6).value == "面积（公顷）"
    assert sheet.cell(row=sheet.max_row, column=6).value == pytest.approx(total_ha, abs=1e-4)
    assert sheet.cell(row=2, column=6).number_format == "#,##0.0000"
    # changing the unit in the settings changes the shown numbers at once
    session.apply_settings(HuijiaoSettings(area_unit="m2"))
    assert dock.table.horizontalHeaderItem(5).text() == "面积（平方米）"
    shown = float(dock.table.item(dock.table.rowCount() - 1, 5).text().replace(",", ""))
    assert shown == pytest.approx(total_ha * 10000.0, abs=0.01)
    dock.deleteLater()
