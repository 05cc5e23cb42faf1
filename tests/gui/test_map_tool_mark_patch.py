"""The marking map tool on a real QgsMapCanvas: mouse events draw a snapped patch; pick, split, merge."""

from __future__ import annotations

import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRectangle,
    QgsSnappingConfig,
    QgsTolerance,
    QgsVectorLayer,
)
from qgis.gui import QgsMapCanvas, QgsMapCanvasSnappingUtils
from qgis.PyQt.QtCore import QPoint, Qt
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QApplication

from huijiao_plugin.core.patches import schema
from huijiao_plugin.core.patches.store import PatchStore
from huijiao_plugin.gui.map_tools.map_tool_mark_patch import MODE_PICK, MODE_SPLIT, HuijiaoMarkPatchMapTool
from tests.unit.test_patches_helpers import COUNTY, X0, Y0, make_regions, rel_rect


@pytest.fixture()
def setup(tmp_path, qgis_app, qgis_new_project):
    store = PatchStore.create(tmp_path / "bghtb.gpkg", "EPSG:4545", county_code=COUNTY)
    xzq_uri, cjdcq_uri = make_regions(tmp_path / "regions.gpkg")
    xzq = QgsVectorLayer(xzq_uri, "XZQ", "ogr")
    cjdcq = QgsVectorLayer(cjdcq_uri, "CJDCQ", "ogr")
    patches = store.qgs_layer("变化图斑")
    QgsProject.instance().addMapLayers([patches, cjdcq, xzq])
    canvas = QgsMapCanvas()
    canvas.setFixedSize(600, 600)
    canvas.show()
    QApplication.processEvents()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4545"))
    canvas.setLayers([patches, cjdcq, xzq])
    canvas.setExtent(QgsRectangle(X0, Y0, X0 + 1000, Y0 + 1000))
    canvas.refresh()
    QApplication.processEvents()
    assert canvas.mapSettings().outputSize().width() > 500
    utils = QgsMapCanvasSnappingUtils(canvas, canvas)
    config = QgsSnappingConfig(QgsProject.instance())
    config.setEnabled(True)
    config.setMode(QgsSnappingConfig.SnappingMode.AllLayers)
    config.setTypeFlag(QgsSnappingConfig.SnappingTypes.VertexFlag)
    config.setTolerance(12)
    config.setUnits(QgsTolerance.UnitType.Pixels)
    utils.setConfig(config)
    canvas.setSnappingUtils(utils)
    tool = HuijiaoMarkPatchMapTool(canvas)
    tool.ask_attributes = False
    tool.set_store(store, patches)
    canvas.setMapTool(tool)
    yield store, patches, canvas, tool
    if patches.isEditable():
        patches.rollBack()
    canvas.unsetMapTool(tool)
    canvas.hide()
    canvas.deleteLater()


def _pixel(canvas, x: float, y: float) -> QPoint:
    point = canvas.getCoordinateTransform().transform(QgsPointXY(X0 + x, Y0 + y))
    return QPoint(round(point.x()), round(point.y()))


def _click(canvas, pos: QPoint, button=Qt.MouseButton.LeftButton) -> None:
    QTest.mouseMove(canvas.viewport(), pos)
    QTest.mouseClick(canvas.viewport(), button, Qt.KeyboardModifier.NoModifier, pos)
    QApplication.processEvents()


def test_draw_polygon_with_mouse_events_snaps_fills_and_undoes(setup):
    store, patches, canvas, tool = setup
    # a vertex of the village layer is at (500, 0)/(500, 1000): click 3 px off, expect an exact snap
    near_vertex = _pixel(canvas, 500, 1000) + QPoint(3, 2)
    for pos in (_pixel(canvas, 400, 600), _pixel(canvas, 480, 600), near_vertex, _pixel(canvas, 400, 700)):
        _click(canvas, pos)
    assert len(tool.points) == 4
    assert tool.points[2] == QgsPointXY(X0 + 500, Y0 + 1000)
    _click(canvas, _pixel(canvas, 420, 650), Qt.MouseButton.RightButton)
    assert patches.isEditable()
    (feature,) = list(patches.getFeatures())
    assert feature.geometry().isGeosValid()
    assert feature["number"] == f"{COUNTY}{feature['year']}0001"
    assert feature["village_code"] == "610423100201" and feature["township_code"] == "610423100"
    assert feature["area_m2"] > 8000 and feature["area_mu"] == pytest.approx(
        feature["area_m2"] * 0.0015, abs=0.01
    )
    assert feature["gk_y"] > X0 + 400 and feature["status"] == "pending"
    # undo through the layer's undo stack removes it, redo brings it back
    patches.undoStack().undo()
    assert patches.featureCount() == 0
    patches.undoStack().redo()
    assert patches.featureCount() == 1
    assert tool.save()
    (row,) = store.patches()
    assert row["uuid"] == feature["uuid"] and row["created_at"]
    assert store.history(row["uuid"])[0]["field"] == "created"


def test_escape_and_backspace(setup):
    _store, patches, canvas, tool = setup
    _click(canvas, _pixel(canvas, 100, 100))
    _click(canvas, _pixel(canvas, 200, 100))
    QTest.keyClick(canvas, Qt.Key.Key_Backspace)
    assert len(tool.points) == 1
    QTest.keyClick(canvas, Qt.Key.Key_Escape)
    assert tool.points == []
    _click(canvas, _pixel(canvas, 100, 100), Qt.MouseButton.RightButton)
    assert patches.featureCount() == 0


def test_pick_split_merge(setup):
    store, patches, canvas, tool = setup
    tool.set_mode(MODE_PICK)
    _click(canvas, _pixel(canvas, 700, 500))  # the second village (500..1000 x 0..1000)
    (picked,) = list(patches.getFeatures())
    assert picked["source"] == schema.SOURCE_FEATURE and picked["source_ref"].startswith("CJDCQ:")
    assert picked["area_m2"] == pytest.approx(499920, rel=1e-3)

    tool.set_mode(MODE_SPLIT)
    _click(canvas, _pixel(canvas, 700, -50))
    _click(canvas, _pixel(canvas, 700, 1050))
    _click(canvas, _pixel(canvas, 700, 1050), Qt.MouseButton.RightButton)
    features = sorted(patches.getFeatures(), key=lambda f: f["number"])
    assert len(features) == 2
    assert len({f["uuid"] for f in features}) == 2 and len({f["number"] for f in features}) == 2
    assert sum(f["area_m2"] for f in features) == pytest.approx(picked["area_m2"], abs=1.0)
    assert features[0]["uuid"] == picked["uuid"]

    patches.selectByIds([f.id() for f in features])
    kept = tool.merge_selected()
    (merged,) = list(patches.getFeatures())
    assert merged.id() == kept and merged["uuid"] == picked["uuid"]
    assert merged["area_m2"] == pytest.approx(picked["area_m2"], abs=1.0)
    assert tool.save()
    assert [r["uuid"] for r in store.patches()] == [picked["uuid"]]
    assert QgsGeometry(store.patches()[0]["geometry"]).area() == pytest.approx(500 * 1000, rel=1e-6)


def test_snaps_to_visible_layers_when_project_snapping_is_off(setup):
    _store, patches, canvas, tool = setup
    config = canvas.snappingUtils().config()
    config.setEnabled(False)
    canvas.snappingUtils().setConfig(config)
    _click(canvas, _pixel(canvas, 1000, 1000) + QPoint(-3, 3))  # near the XZQ/CJDCQ corner (1000, 1000)
    assert tool.points[-1] == QgsPointXY(X0 + 1000, Y0 + 1000)
    tool.snap_to_visible_layers = False
    _click(canvas, _pixel(canvas, 1000, 1000) + QPoint(-3, 3))
    assert tool.points[-1] != QgsPointXY(X0 + 1000, Y0 + 1000)


def test_form_asks_only_type_reason_notes(qgis_app):
    from huijiao_plugin.gui.map_tools.map_tool_mark_patch import HuijiaoPatchAttributesDialog

    dialog = HuijiaoPatchAttributesDialog(
        {"number": "61042320250009", "area_mu": 1.5, "township_code": "610423100", "patch_type": "nonagri"}
    )
    assert dialog.type_combo.currentData() == schema.TYPE_NONAGRI
    dialog.type_combo.setCurrentIndex(dialog.type_combo.findData(schema.TYPE_EXCLUDE))
    dialog.reason_edit.setText("25度以上坡耕地")
    assert dialog.values() == {"patch_type": schema.TYPE_EXCLUDE, "reason": "25度以上坡耕地", "notes": None}
    dialog.deleteLater()


def test_form_area_in_the_user_unit_with_grouping(qgis_app):
    """The computed line: the area in the session's unit with its decimals and thousands grouped (1 亩 =
    2000/3 m²: 1,234,567 m² = 1,851.85 亩 = 123.4567 公顷), never a fixed 亩 with Python's default text."""
    from qgis.PyQt.QtWidgets import QLineEdit

    from huijiao_plugin.gui.map_tools.map_tool_mark_patch import HuijiaoPatchAttributesDialog

    for unit, expected in (("mu", "1,851.85 亩"), ("ha", "123.4567 公顷"), ("m2", "1,234,567.00 平方米")):
        dialog = HuijiaoPatchAttributesDialog({"number": "1", "area_m2": 1234567.0}, None, unit)
        texts = [edit.text() for edit in dialog.findChildren(QLineEdit)]
        assert any(expected in text for text in texts), texts
        dialog.deleteLater()


def test_region_codes_from_one_map_layer_names(setup):
    """Bug 3: 一张图 names the region layers 行政区(乡镇级) and 村级调查区 (no XZQ/CJDCQ in the name): the
    tool finds them by their recognised dataset and fills the township and village codes."""
    store, patches, canvas, tool = setup
    names = {"XZQ": "行政区(乡镇级)", "CJDCQ": "村级调查区"}
    for layer in QgsProject.instance().mapLayers().values():
        if layer.name() in names:
            layer.setName(names[layer.name()])
    assert {lyr.name() for lyr in QgsProject.instance().mapLayers().values()} >= set(names.values())
    for x, y in ((100, 100), (200, 100), (200, 200), (100, 200)):
        _click(canvas, _pixel(canvas, x, y))
    _click(canvas, _pixel(canvas, 150, 150), Qt.MouseButton.RightButton)
    (feature,) = list(patches.getFeatures())
    # the square 100..200 lies in the village 610423100201 of the township 610423100 (make_regions)
    assert feature["village_code"] == "610423100201" and feature["township_code"] == "610423100"
    assert tool.save()
    (row,) = store.patches()
    assert row["village_code"] == "610423100201" and row["county_code"] == COUNTY


def test_edit_history_records_what_was_done(setup):
    """Bug 8: create, reshape, attribute change and delete, with undo/redo on the way, reach the patch
    history in order with the right before/after values (a reshape shows the old and the new area)."""
    store, patches, canvas, tool = setup
    tool.user = "内业员"
    crs = patches.crs()
    square = QgsGeometry.fromWkt(rel_rect(100, 100, 200, 200))
    other = QgsGeometry.fromWkt(rel_rect(300, 100, 340, 140))
    tool.create_patches([square, other], crs)
    patches.undoStack().undo()  # the second patch is not made after all …
    patches.undoStack().redo()  # … it is
    assert tool.save()
    a, b = sorted(store.patches(), key=lambda r: r["number"])
    area_before = a["area_m2"]

    fid_a = next(f.id() for f in patches.getFeatures() if f["uuid"] == a["uuid"])
    fid_b = next(f.id() for f in patches.getFeatures() if f["uuid"] == b["uuid"])
    reason = patches.fields().indexOf("reason")
    patches.startEditing()
    half = QgsGeometry.fromWkt(rel_rect(100, 100, 200, 150))
    patches.beginEditCommand("reshape")  # as QGIS's vertex tool does
    patches.changeGeometry(fid_a, half)
    patches.endEditCommand()
    for text in ("占用耕地", "写错了"):
        patches.beginEditCommand("attribute")
        patches.changeAttributeValue(fid_a, reason, text)
        patches.endEditCommand()
    patches.undoStack().undo()  # "写错了" is taken back
    patches.beginEditCommand("delete")
    patches.deleteFeature(fid_b)
    patches.endEditCommand()
    assert tool.save() and not patches.isEditable()

    row = store.get(a["uuid"])
    assert row["reason"] == "占用耕地"
    # the half square has half the area (ellipsoidal areas of a 100 m square scale with it to 0.01 m²)
    assert row["area_m2"] == pytest.approx(area_before / 2, abs=0.02)
    history = [
        (h["field"], h["old_value"], h["new_value"], h["changed_by"]) for h in store.history(a["uuid"])
    ]
    assert history == [
        ("created", None, a["number"], "内业员"),
        ("reason", None, "占用耕地", "内业员"),
        ("geometry", f"{area_before:.2f}", f"{row['area_m2']:.2f}", "内业员"),
    ]
    assert store.get(b["uuid"]) is None
    assert [(h["field"], h["old_value"], h["changed_by"]) for h in store.history(b["uuid"])] == [
        ("created", None, "内业员"),
        ("deleted", b["number"], "内业员"),
    ]
    assert [h["new_value"] for h in store.history(b["uuid"])][0] == b["number"]
