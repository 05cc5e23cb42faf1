"""The analyst's day from the 耕地比对 and 变化图斑 panels, driven through their widgets at 1366×768:

run a comparison → turn the result into change patches → mark two more by hand on the map → take patches
through every status transition of the workflow → export the checklist, the atlas and a field package →
import the field results. Outcomes are checked in the patch store and in the files written.
"""

from __future__ import annotations

import gc
import re
import sys
import time
from pathlib import Path

import pytest
from osgeo import ogr
from qgis.core import QgsCoordinateReferenceSystem, QgsPointXY, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QCoreApplication, QEvent, QPoint, Qt, QTimer
from qgis.PyQt.QtGui import QKeyEvent
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QApplication, QDialogButtonBox

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from compare_support import X0, Y0, build_county  # noqa: E402

from huijiao_plugin.core.patches import workflow  # noqa: E402
from huijiao_plugin.core.patches.store import PatchStore  # noqa: E402
from huijiao_plugin.core.session import Session  # noqa: E402
from huijiao_plugin.core.settings import HuijiaoSettings  # noqa: E402
from huijiao_plugin.gui.docks.dock_compare import HuijiaoCompareDock  # noqa: E402
from huijiao_plugin.gui.docks.dock_patches import HuijiaoPatchesDock  # noqa: E402

COUNTY = "610102"
# every move of the workflow table, walked on one patch (each of the 14 allowed moves at least once)
WALK = [
    "in_progress", "pending", "verified", "in_progress", "verified", "returned", "in_progress", "verified",
    "disputed", "in_progress", "verified", "approved", "disputed", "returned", "verified", "approved",
    "disputed", "approved",
]  # fmt: skip


def _type(widget, text):
    for char in text:
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            QApplication.sendEvent(widget, QKeyEvent(kind, 0, Qt.KeyboardModifier.NoModifier, char))


def _choose(combo, label):
    index = combo.findText(label)
    assert index >= 0, (label, [combo.itemText(i) for i in range(combo.count())])
    combo.setCurrentIndex(index)


def _click(widget):
    assert widget.isEnabled() and widget.isVisibleTo(widget.window()), widget.text()
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)
    QCoreApplication.processEvents()


@pytest.fixture()
def day(qgis_iface, tmp_path):
    layers = build_county(tmp_path / "county.gpkg")
    # 一张图 names of the region layers (bug 3: found by their content, not by XZQ/CJDCQ in the name)
    layers["XZQ"].setName("行政区(乡镇级)")
    layers["CJDCQ"].setName("村级调查区")
    QgsProject.instance().addMapLayers(list(layers.values()))
    settings = HuijiaoSettings(region_code=COUNTY, unit_name="县农业农村局分析员", area_unit="mu")
    session = Session(settings, state_dir=tmp_path / "state")
    session.results_folder = str(tmp_path / "results")
    PatchStore.create(tmp_path / "bghtb.gpkg", "EPSG:4545", county_code=COUNTY)
    canvas = qgis_iface.mapCanvas()
    canvas.window().show()  # the QGIS main window of pytest-qgis holds the canvas
    canvas.resize(800, 600)
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4545"))
    canvas.setLayers([layers["CJDCQ"], layers["XZQ"]])
    canvas.setExtent(QgsRectangle(X0, Y0, X0 + 600, Y0 + 400))
    canvas.refresh()
    QCoreApplication.processEvents()
    compare = HuijiaoCompareDock(qgis_iface, session)
    patches = HuijiaoPatchesDock(qgis_iface, session)
    for dock in (compare, patches):
        dock.resize(420, 768 - 190)  # a dock of the default width on a 1366×768 screen
        dock.show()
    yield compare, patches, session, tmp_path, canvas
    if patches.map_tool is not None:
        canvas.unsetMapTool(patches.map_tool)
    for dock in (compare, patches):
        dock.deleteLater()
    QgsProject.instance().removeAllMapLayers()
    layers.clear()
    gc.collect()


def _pixel(canvas, x, y):
    point = canvas.getCoordinateTransform().transform(QgsPointXY(X0 + x, Y0 + y))
    return QPoint(round(point.x()), round(point.y()))


def _draw(canvas, corners, reason):
    """Draw a polygon with mouse clicks; the attribute form is filled and confirmed like a person does."""

    def fill_form():
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            QTimer.singleShot(20, fill_form)
            return
        _type(dialog.reason_edit, reason)
        buttons = dialog.findChild(QDialogButtonBox)
        QTest.mouseClick(buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)

    for x, y in corners:
        pos = _pixel(canvas, x, y)
        QTest.mouseMove(canvas.viewport(), pos)
        QTest.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
    QTimer.singleShot(20, fill_form)
    pos = _pixel(canvas, *corners[0])
    QTest.mouseClick(canvas.viewport(), Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, pos)
    QCoreApplication.processEvents()


def test_analyst_day(day, huijiao_provider):
    import processing
    from openpyxl import load_workbook

    compare, patches, session, tmp_path, canvas = day
    store_path = tmp_path / "bghtb.gpkg"

    # open the county's patch store in the 变化图斑 panel
    patches.file_widget.setFilePath(str(store_path))
    assert session.patch_store_path == str(store_path)
    store = patches.store

    # 1. a comparison from the 耕地比对 panel
    compare.preset_combo.setCurrentIndex(compare.preset_combo.findData("hsfnotinpbf"))
    _click(compare.run_button)
    end = time.time() + 60
    while compare.task is not None and time.time() < end:
        QCoreApplication.processEvents()
        time.sleep(0.01)
    assert compare.task is None and compare.progress.value() == 100
    result = QgsProject.instance().mapLayer(compare.result_layers[-1])
    assert (
        result.providerType() == "ogr" and Path(result.source().split("|")[0]).parent == tmp_path / "results"
    )
    assert compare.table.item(compare.table.rowCount() - 1, 0).text() == "合计"

    # 2. the result becomes change patches (twice: nothing is duplicated)
    _click(compare.runs_widget.patches_button)
    from_comparison = store.patches(with_geometry=False)
    assert from_comparison and all(r["rule_id"] == "huijiao:hsfnotinpbf" for r in from_comparison)
    assert all(r["township_code"] in ("610102001", "610102002") for r in from_comparison)
    _click(compare.runs_widget.patches_button)
    assert store.count() == len(from_comparison)
    assert patches.table.rowCount() == len(from_comparison)

    # 3. two patches marked by hand on the map, then saved (the panel's Edit page)
    bar = patches.tabs.tabBar()
    QTest.mouseClick(
        bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(patches.tabs.indexOf(patches.edit_page)).center()
    )
    _click(patches.mark_button)
    assert canvas.mapTool() is patches.map_tool
    _draw(canvas, [(410, 310), (480, 310), (480, 380), (410, 380)], "群众举报")
    _draw(canvas, [(20, 20), (80, 20), (80, 70)], "卫片发现")
    _click(patches.save_button)
    manual = [r for r in store.patches(with_geometry=False) if r["source"] == "manual"]
    assert sorted(r["reason"] for r in manual) == ["卫片发现", "群众举报"]
    by_reason = {r["reason"]: r for r in manual}
    assert by_reason["群众举报"]["township_code"] == "610102002"
    assert by_reason["群众举报"]["village_code"] == "610102002001"
    assert by_reason["卫片发现"]["township_code"] == "610102001"
    assert all(r["created_by"] == "县农业农村局分析员" for r in manual)
    assert store.count() == len(from_comparison) + 2

    # 4. every status transition, from the status editor of the panel
    walker = by_reason["群众举报"]["uuid"]
    editor = patches.status_widget
    QTest.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(patches.tabs.indexOf(editor)).center())
    assert patches.tabs.currentWidget() is editor
    previous = "pending"
    for target in WALK:
        patches.select_uuids([walker])
        offered = [editor.status_combo.itemData(i) for i in range(editor.status_combo.count())]
        assert offered == workflow.allowed_targets(previous), previous
        _choose(editor.status_combo, workflow.status_label(target))
        if target == "verified":
            _choose(editor.result_combo, "属实")
            editor.verifier_edit.clear()
            _type(editor.verifier_edit, "李四")
        _click(editor.apply_button)
        assert store.get(walker)["status"] == target, (previous, target)
        previous = target
    moves = [(h["old_value"], h["new_value"]) for h in store.history(walker) if h["field"] == "status"]
    assert moves == list(zip(["pending", *WALK[:-1]], WALK))
    edges = {(a, b) for a, targets in workflow.TRANSITIONS.items() for b in targets}
    assert set(moves) == edges  # every move the workflow allows was made from the panel

    # a bulk move of all comparison patches to 核查中, undone, then done again
    patches.select_uuids([r["uuid"] for r in from_comparison])
    _choose(editor.status_combo, "核查中")
    _click(editor.apply_button)
    assert {store.get(r["uuid"])["status"] for r in from_comparison} == {"in_progress"}
    _click(editor.undo_button)
    assert {store.get(r["uuid"])["status"] for r in from_comparison} == {"pending"}
    patches.select_uuids([r["uuid"] for r in from_comparison])
    _choose(editor.status_combo, "核查中")
    _click(editor.apply_button)

    # 5. checklist, atlas and field package of the comparison patches (the panel's preset parameters)
    patches.select_uuids([r["uuid"] for r in from_comparison])
    checklist = processing.run(
        "huijiao:patchchecklist",
        dict(patches.algorithm_parameters("patchchecklist"), OUTPUT=str(tmp_path / "清单.xlsx")),
    )["OUTPUT"]
    sheet = load_workbook(checklist)["核查清单"]
    assert sheet.max_row == len(from_comparison) + 1 and "面积（亩）" in [c.value for c in sheet[1]]
    atlas = processing.run(
        "huijiao:patchatlas",
        dict(patches.algorithm_parameters("patchatlas"), DPI=72, OUTPUT=str(tmp_path / "图册.pdf")),
    )["OUTPUT"]
    pdf = Path(atlas).read_bytes()
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == len(from_comparison)  # one page per patch
    package = processing.run(
        "huijiao:fieldpackage",
        dict(patches.algorithm_parameters("fieldpackage"), OUTPUT=str(tmp_path / "外业包")),
    )
    assert package["COUNT"] == len(from_comparison) and Path(package["GPKG"]).is_file()

    # 6. the field crew verifies one patch in the package; its results come back through the panel
    target = from_comparison[0]
    ds = ogr.Open(package["GPKG"], update=1)
    layer = ds.GetLayerByName("BGHTB")
    for feature in layer:
        if feature.GetField("uuid") == target["uuid"]:
            feature.SetField("status", "已核查")
            feature.SetField("result", "不属实")
            feature.SetField("verifier", "外业员王五")
            feature.SetField("field_notes", "现场为水浇地")
            layer.SetFeature(feature)
    ds = None
    processing.run(
        "huijiao:importfieldresults",
        dict(patches.algorithm_parameters("importfieldresults"), PACKAGE=package["GPKG"]),
    )
    patches.refresh()
    row = store.get(target["uuid"])
    assert (row["status"], row["result"], row["verifier"]) == ("verified", "false", "外业员王五")
    assert row["field_notes"] == "现场为水浇地"
    shown = {
        patches.table.item(r, 0).text(): patches.table.item(r, 2).text()
        for r in range(patches.table.rowCount())
    }
    assert shown[row["number"]] == "已核查"
