"""The 变化图斑 panel: table, filters, sorting, totals, bulk status change, detail view, zoom-to."""

from __future__ import annotations

import datetime

import pytest
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsGeometry,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QDate, Qt
from qgis.PyQt.QtTest import QTest

from huijiao_plugin.core.patches import schema
from huijiao_plugin.core.patches.store import NewPatch, PatchStore
from huijiao_plugin.gui.docks.dock_patches import COLUMNS, UUID_ROLE, HuijiaoPatchesDock
from tests.unit.test_patches_helpers import COUNTY, X0, Y0, rel_rect


@pytest.fixture()
def dock_store(tmp_path, qgis_iface, qgis_new_project):
    store = PatchStore.create(tmp_path / "bghtb.gpkg", "EPSG:4545", county_code=COUNTY)
    sizes = [(100, 100), (200, 50), (40, 40), (300, 100)]
    types = [schema.TYPE_NONGRAIN, schema.TYPE_NONGRAIN, schema.TYPE_NONAGRI, schema.TYPE_NONGRAIN]
    ids = store.add_patches(
        [
            NewPatch(QgsGeometry.fromWkt(rel_rect(400 * i, 0, 400 * i + w, h)), patch_type=t, year=2025)
            for i, ((w, h), t) in enumerate(zip(sizes, types))
        ]
    )
    store.update(ids[0], {"status": "verified", "result": "true"}, user="核查员")
    dock = HuijiaoPatchesDock(qgis_iface)
    dock.resize(420, 900)
    dock.show()
    assert dock.set_store(store.path)
    yield dock, store, ids
    dock.deleteLater()


def test_table_totals_match_the_data(dock_store):
    dock, store, ids = dock_store
    assert dock.objectName() == "HuijiaoPatchesDock"
    assert dock.table.rowCount() == 4
    rounded = {k: (c, round(m2 * 0.0015, 2)) for k, (c, m2) in dock.totals().items()}
    assert rounded == {k: (c, round(m, 2)) for k, (c, m) in store.totals().items()}
    assert rounded[(schema.TYPE_NONGRAIN, "pending")][0] == 2
    root = dock.totals_tree.topLevelItem(0)
    assert root.text(1) == "4"
    assert float(root.text(2).replace(",", "")) == pytest.approx(
        sum(m for _c, m in store.totals().values()), abs=0.01
    )
    assert dock.totals_tree.headerItem().text(2) == "面积（亩）"
    # 比例 filled: the fixture's squares are 10,000 + 10,000 + 30,000 m² 非粮化 and 1,600 m² 非农化
    assert dock.totals_tree.headerItem().text(3) == "比例（%）" and root.text(3) == "100.00"
    shares = {root.child(i).text(0): root.child(i).text(3) for i in range(root.childCount())}
    assert shares == {"非粮化": f"{100 * 50000 / 51600:.2f}", "非农化": f"{100 * 1600 / 51600:.2f}"}


def test_filters_and_sorting(dock_store):
    dock, store, ids = dock_store
    dock.type_filter.setCurrentIndex(dock.type_filter.findData(schema.TYPE_NONAGRI))
    assert dock.filtered_uuids() == [ids[2]]
    assert dock.table.rowCount() == 1
    dock.type_filter.setCurrentIndex(0)
    dock.status_filter.setCurrentIndex(dock.status_filter.findData("verified"))
    assert dock.filtered_uuids() == [ids[0]]
    dock.status_filter.setCurrentIndex(0)
    dock.area_min.setValue(10.0)  # 亩: 100x100 m = 15 亩, 200x50 = 15, 300x100 = 45, 40x40 = 2.4
    assert set(dock.filtered_uuids()) == {ids[0], ids[1], ids[3]}
    dock.area_max.setValue(20.0)
    assert set(dock.filtered_uuids()) == {ids[0], ids[1]}
    dock.area_min.setValue(0.0)
    dock.area_max.setValue(0.0)
    dock.region_filter.setText("999")
    assert dock.filtered_uuids() == []
    dock.region_filter.setText(COUNTY)
    assert len(dock.filtered_uuids()) == 4
    area_column = [key for key, _label in COLUMNS].index("area_m2")
    dock.table.sortItems(area_column, Qt.SortOrder.DescendingOrder)
    values = [
        float(dock.table.item(r, area_column).text().replace(",", "")) for r in range(dock.table.rowCount())
    ]
    assert values == sorted(values, reverse=True) and values[0] == pytest.approx(45.0, abs=0.05)


def _choose(combo, label):
    index = combo.findText(label)
    assert index >= 0, (label, [combo.itemText(i) for i in range(combo.count())])
    combo.setCurrentIndex(index)


def _type(widget, text):
    """Type ``text`` key by key (QTest.keyClicks takes Latin-1 only)."""
    from qgis.PyQt.QtCore import QEvent
    from qgis.PyQt.QtGui import QKeyEvent
    from qgis.PyQt.QtWidgets import QApplication

    for char in text:
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            QApplication.sendEvent(widget, QKeyEvent(kind, 0, Qt.KeyboardModifier.NoModifier, char))


def _offered(widget):
    return [widget.status_combo.itemText(i) for i in range(widget.status_combo.count())]


def test_bulk_status_detail_and_zoom(dock_store, qgis_iface):
    dock, store, ids = dock_store
    widget = dock.status_widget
    dock.select_uuids([ids[0], ids[1]])
    assert set(dock.selected_uuids()) == {ids[0], ids[1]}
    # 已核查 → {审核通过, 退回, 异议, 核查中} and 待核查 → {核查中, 已核查}: only 核查中 is common to both
    assert _offered(widget) == ["核查中"]
    dock.select_uuids([ids[0]])
    _choose(widget.status_combo, "审核通过")
    widget.reviewer_edit.setText("审核员")
    QTest.mouseClick(widget.apply_button, Qt.MouseButton.LeftButton)
    assert store.get(ids[0])["status"] == "approved" and store.get(ids[0])["reviewer"] == "审核员"
    assert store.get(ids[1])["status"] == "pending"
    assert "1" in widget.message.text()

    dock.select_uuids([ids[0]])
    assert "审核通过" in dock.detail.toPlainText()
    assert store.get(ids[0])["number"] in dock.detail.toPlainText()
    fields = [dock.history_table.item(r, 3).text() for r in range(dock.history_table.rowCount())]
    # times in local time, minutes, never raw ISO UTC
    import re

    times = [dock.history_table.item(r, 0).text() for r in range(dock.history_table.rowCount())]
    assert times and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", t) for t in times)
    updated = [key for key, _label in COLUMNS].index("updated_at")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", dock.table.item(0, updated).text())
    assert fields.count("状态") == 2 and "核查结果" in fields

    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4545"))
    canvas.setExtent(QgsRectangle(0, 0, 10, 10))
    dock.zoom_to_selected()
    assert canvas.extent().contains(QgsRectangle(X0, Y0, X0 + 100, Y0 + 100))
    assert canvas.extent().width() < 1000


def test_photos_listed(dock_store, tmp_path):
    dock, store, ids = dock_store
    photo = tmp_path / "p.png"
    from qgis.PyQt.QtGui import QImage

    image = QImage(8, 8, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.red)
    assert image.save(str(photo))
    store.add_attachment(ids[3], photo, taken_at="2025-06-01T08:00:00", direction=90, lon=108.9, lat=34.3)
    dock.select_uuids([ids[3]])
    assert dock.photos.count() == 1
    assert "90" in dock.photos.item(0).text()
    assert "108.900000°E 34.300000°N" in dock.photos.item(0).toolTip()


def test_bad_store_is_reported(qgis_iface, tmp_path, qgis_new_project):
    dock = HuijiaoPatchesDock(qgis_iface)
    (tmp_path / "x.gpkg").write_bytes(b"not a geopackage")
    assert not dock.set_store(tmp_path / "x.gpkg")
    assert dock.store is None and dock.table.rowCount() == 0
    assert dock.status_label.text()


def test_merge_from_the_panel_keeps_the_first_identity(dock_store):
    dock, store, ids = dock_store
    before = {r["uuid"]: r for r in store.patches()}
    dock.select_uuids([ids[1], ids[2]])
    dock.merge_selected()
    layer = dock.patch_layer()
    assert layer.isEditable() and layer.featureCount() == 3
    dock.save_edits()
    after = {r["uuid"]: r for r in store.patches()}
    assert set(after) == {ids[0], ids[1], ids[3]}
    assert after[ids[1]]["number"] == before[ids[1]]["number"]
    assert after[ids[1]]["area_m2"] == pytest.approx(
        before[ids[1]]["area_m2"] + before[ids[2]]["area_m2"], abs=0.5
    )
    assert [h["field"] for h in store.history(ids[2])][-1] == "deleted"
    assert dock.table.rowCount() == 3


def test_processing_dialogs_are_preset_with_store_and_selection(dock_store):
    dock, store, ids = dock_store
    assert set(dock.algorithm_buttons) == {
        "fieldpackage",
        "patchatlas",
        "patchchecklist",
        "importfieldresults",
    }
    dock.select_uuids([ids[1], ids[3]])
    params = dock.algorithm_parameters("fieldpackage")
    assert params["STORE"] == str(store.path)
    assert sorted(params["PATCH_IDS"].split(",")) == sorted(store.get(i)["number"] for i in (ids[1], ids[3]))
    assert "PATCH_IDS" not in dock.algorithm_parameters("importfieldresults")


def test_conflicts_tab_resolves(dock_store, tmp_path):
    from osgeo import ogr

    from huijiao_plugin.core.patches.field_package import export_field_package

    dock, store, ids = dock_store
    package = export_field_package(store, tmp_path / "pkg", [ids[1]])
    ds = ogr.Open(str(package.gpkg), update=1)
    layer = ds.GetLayerByName(schema.PATCH_LAYER)
    feature = layer.GetNextFeature()
    feature.SetField("result", "不属实")
    layer.SetFeature(feature)
    ds = None
    store.update(ids[1], {"notes": "x", "verifier": "内业员"}, user="内业员")
    from huijiao_plugin.core.patches.field_package import import_field_package

    assert len(import_field_package(store, package.folder).conflicts) == 1
    dock.refresh()
    assert dock.conflicts_table.rowCount() == 1
    assert "不属实" in dock.conflicts_table.item(0, 2).text()
    assert dock.tabs.tabText(dock.tabs.count() - 1).endswith("(1)")
    dock.conflicts_table.selectRow(0)
    dock.resolve_selected_conflict(True)
    assert dock.conflicts_table.rowCount() == 0
    assert store.get(ids[1])["result"] == "false" and store.get(ids[1])["status"] == "verified"


def test_map_layer_has_desk_form_and_records_the_editor(dock_store):
    dock, store, ids = dock_store
    layer = dock.patch_layer(create=True)
    fields = layer.fields()
    assert layer.editorWidgetSetup(fields.indexOf("status")).type() == "ValueMap"
    assert layer.editFormConfig().readOnly(fields.indexOf("area_m2"))
    assert not layer.editFormConfig().readOnly(fields.indexOf("notes"))
    feature = next(f for f in layer.getFeatures() if f["uuid"] == ids[3])
    layer.startEditing()
    layer.changeAttributeValue(feature.id(), fields.indexOf("notes"), "属性表中修改")
    assert layer.commitChanges()
    (row,) = [h for h in store.history(ids[3]) if h["field"] == "notes"]
    assert row["new_value"] == "属性表中修改" and row["edit_source"] == "desk"
    assert store.get(ids[3])["updated_at"] != store.get(ids[3])["created_at"]  # filled on update by QGIS


def test_patches_from_selected_features_of_another_layer(dock_store, tmp_path):
    from tests.unit.test_patches_helpers import make_regions

    dock, store, ids = dock_store
    _xzq, cjdcq_uri = make_regions(tmp_path / "regions.gpkg")
    villages = QgsVectorLayer(cjdcq_uri, "CJDCQ", "ogr")
    QgsProject.instance().addMapLayer(villages)  # also the source of the village codes
    villages.selectByExpression("\"ZLDWDM\" LIKE '61042310020%'")
    assert villages.selectedFeatureCount() == 2
    dock.map_tool = None
    tool = dock._ensure_tool()
    tool.ask_attributes = False
    added = dock.patches_from_selection(villages)
    assert len(added) == 2
    dock.save_edits()
    new = [r for r in store.patches() if r["source"] == schema.SOURCE_FEATURE]
    assert sorted(r["source_ref"] for r in new) == ["CJDCQ:1", "CJDCQ:2"]
    year = datetime.date.today().year
    assert sorted(r["number"] for r in new) == [f"{COUNTY}{year}{n:04d}" for n in (1, 2)]
    assert all(r["village_code"].startswith("6104231002") for r in new)
    # the table names the villages with their codes in brackets (names of make_regions' CJDCQ layer)
    dock.refresh()
    village = [key for key, _label in COLUMNS].index("village_code")
    texts = {
        dock.table.item(r, 0).text(): dock.table.item(r, village).text() for r in range(dock.table.rowCount())
    }
    assert dock.table.horizontalHeaderItem(village).text() == "村"
    assert all(texts[r["number"]] == "村（{}）".format(r["village_code"]) for r in new), texts
    assert dock.patches_from_selection(dock.patch_layer()) == []  # not from the patch layer itself


def test_verification_fields_bulk_and_undo(dock_store, tmp_path):
    """Bug 4: the panel offers only the moves the store allows, takes every field a move needs (核查结果,
    核查人, 核查日期, 说明, photo), changes all selected patches at once, and undoes the last change with
    the history keeping both."""
    from qgis.PyQt.QtGui import QImage

    dock, store, ids = dock_store
    widget = dock.status_widget
    dock.select_uuids([ids[1]])
    assert _offered(widget) == ["核查中", "已核查"]  # never 审核通过 from 待核查
    dock.select_uuids([ids[1], ids[2]])
    _choose(widget.status_combo, "已核查")
    for editor in (widget.result_combo, widget.verifier_edit, widget.date_edit, widget.field_notes_edit):
        assert editor.isVisibleTo(dock)
    assert not widget.reviewer_edit.isVisibleTo(dock)
    _choose(widget.result_combo, "不属实")
    widget.verifier_edit.clear()
    _type(widget.verifier_edit, "张三")
    widget.date_edit.setDate(QDate(2025, 6, 3))
    _type(widget.field_notes_edit, "现场为耕地")
    photo = tmp_path / "site.png"
    image = QImage(8, 8, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.green)
    assert image.save(str(photo))
    widget.attachment_widget.setFilePath(str(photo))
    QTest.mouseClick(widget.apply_button, Qt.MouseButton.LeftButton)
    for patch_uuid in (ids[1], ids[2]):
        row = store.get(patch_uuid)
        assert (row["status"], row["result"], row["verifier"]) == ("verified", "false", "张三")
        assert row["verify_date"] == "2025-06-03" and row["field_notes"] == "现场为耕地"
        assert [a["path"].endswith("site.png") for a in store.attachments(patch_uuid)] == [True]
    assert set(dock.selected_uuids()) == {ids[1], ids[2]}
    # the panel now offers the moves of 已核查
    assert _offered(widget) == ["核查中", "审核通过", "退回", "异议"]

    assert widget.undo_button.isEnabled()
    QTest.mouseClick(widget.undo_button, Qt.MouseButton.LeftButton)
    for patch_uuid in (ids[1], ids[2]):
        row = store.get(patch_uuid)
        assert (row["status"], row["result"], row["verifier"], row["verify_date"]) == (
            "pending",
            None,
            None,
            None,
        )
        status_rows = [
            (h["old_value"], h["new_value"]) for h in store.history(patch_uuid) if h["field"] == "status"
        ]
        assert status_rows == [("pending", "verified"), ("verified", "pending")]
    assert not widget.undo_button.isEnabled()
    assert [dock.table.item(r, 2).text() for r in range(dock.table.rowCount())].count("待核查") == 3


@pytest.mark.parametrize(
    ("unit", "header", "per_m2", "decimals"),
    [("ha", "面积（公顷）", 1e-4, 4), ("m2", "面积（平方米）", 1.0, 2)],
)
def test_area_unit_changes_every_area_shown(
    dock_store, qgis_iface, huijiao_provider, tmp_path, unit, header, per_m2, decimals
):
    """Bug 6: the area unit of the settings changes the numbers (table, totals, filter), not only a label."""
    from huijiao_plugin.core.settings import HuijiaoSettings

    dock, store, ids = dock_store
    dock.session.apply_settings(HuijiaoSettings(area_unit=unit))
    area_column = [key for key, _label in COLUMNS].index("area_m2")
    assert dock.table.horizontalHeaderItem(area_column).text() == header
    assert dock.totals_tree.headerItem().text(2) == header
    by_uuid = {r["uuid"]: r["area_m2"] for r in store.patches(with_geometry=False)}
    for r in range(dock.table.rowCount()):
        item = dock.table.item(r, area_column)
        expected = by_uuid[item.data(UUID_ROLE)] * per_m2
        assert item.text() == f"{expected:,.{decimals}f}"
    total = sum(by_uuid.values()) * per_m2
    assert dock.totals_tree.topLevelItem(0).text(2) == f"{total:,.{decimals}f}"
    assert dock.area_min.suffix().strip() == header[3:-1]
    # the filter is in the unit too: only the 300x100 m patch (about 3 ha) is over 2.5 ha
    dock.area_min.setValue(25000 * per_m2)
    assert len(dock.filtered_uuids()) == 1
    # the checklist written from the panel's preset parameters carries the unit too
    import processing
    from openpyxl import load_workbook

    dock.select_uuids([ids[3]])
    params = dict(dock.algorithm_parameters("patchchecklist"), OUTPUT=str(tmp_path / "list.xlsx"))
    sheet = load_workbook(processing.run("huijiao:patchchecklist", params)["OUTPUT"])["核查清单"]
    headers = [c.value for c in sheet[1]]
    column = len(headers) - 1 - headers[::-1].index(header)  # the area in the chosen unit
    assert headers[column - 1] == "面积（平方米）"
    assert sheet.cell(row=2, column=column + 1).value == pytest.approx(
        by_uuid[ids[3]] * per_m2, abs=10**-decimals
    )


def test_patch_layer_styled_by_status_and_selection_visible(dock_store, qgis_iface):
    """The patch layer on the map: one category per verification status with the Chinese name in the legend;
    selections drawn in a colour that is not the yellow of farmland."""
    dock, store, ids = dock_store
    QTest.mouseClick(dock.add_layer_button, Qt.MouseButton.LeftButton)
    layer = dock.patch_layer(create=False)
    renderer = layer.renderer()
    assert renderer.type() == "categorizedSymbol" and renderer.classAttribute() == "status"
    legend = {c.value(): c.label() for c in renderer.categories()}
    assert legend == {
        "pending": "待核查",
        "in_progress": "核查中",
        "verified": "已核查",
        "approved": "审核通过",
        "returned": "退回",
        "disputed": "异议",
    }
    colors = {c.symbol().symbolLayer(0).strokeColor().name() for c in renderer.categories()}
    assert len(colors) == 6  # six different colours
    selection = qgis_iface.mapCanvas().selectionColor()
    assert (selection.red(), selection.green(), selection.blue()) != (255, 255, 0)
    assert selection.blue() > 200 and selection.red() < 50  # cyan, far from yellow
    assert QgsProject.instance().readNumEntry("Gui", "/SelectionColorBluePart")[0] == selection.blue()


def test_detail_in_words_not_codes(dock_store, tmp_path):
    """The 详情 tab and the history: the rule by its name with its parameters in words, the compared data by
    Chinese name and version, regions as 名称（代码）, the source and how an edit was made in Chinese; never
    a rule id, a parameter key, raw JSON or desk/comparison."""
    from tests.unit.test_patches_helpers import make_regions

    dock, store, _ids = dock_store
    xzq, cjdcq = make_regions(tmp_path / "regions.gpkg")
    regions = [QgsVectorLayer(uri, name, "ogr") for uri, name in ((xzq, "XZQ"), (cjdcq, "CJDCQ"))]
    QgsProject.instance().addMapLayers(regions)
    [uuid] = store.add_patches(
        [
            NewPatch(
                QgsGeometry.fromWkt(rel_rect(0, 2000, 100, 2100)),
                patch_type=schema.TYPE_NONGRAIN,
                rule_id="huijiao:pbfnongrain",
                rule_params={"nongrain_codes": ["FLS", "WG"], "min_area_m2": 0.5},
                inputs={"YJJBNTBHTB": {"version": "2022"}, "DLTB": {"version": "2023"}},
                source=schema.SOURCE_COMPARISON,
                year=2025,
                attributes={"township_code": "610423100", "village_code": "610423100201"},
            )
        ]
    )
    store.update(uuid, {"notes": "内业备注"}, user="内业员")
    dock.refresh()
    dock.select_uuids([uuid])
    layer = dock.patch_layer(create=True)
    fields = layer.fields()
    shown = {}
    for name in ("rule_id", "source"):
        index = fields.indexOf(name)
        setup = layer.editorWidgetSetup(index)
        formatter = QgsApplication.fieldFormatterRegistry().fieldFormatter(setup.type())
        value = next(f for f in layer.getFeatures() if f["uuid"] == uuid)[name]
        shown[name] = formatter.representValue(layer, index, setup.config(), None, value)
    # the attribute form and table show the rule and the source in words, not huijiao:pbfnongrain/comparison
    assert shown == {"rule_id": "PBF non-grain use", "source": "比对结果"}
    text = dock.detail.toPlainText()
    assert "PBF non-grain use" in text and "Non-grain ZZSXDM codes：FLS、WG" in text
    assert "永久基本农田保护图斑 2022" in text and "年度国土变更调查地类图斑 2023" in text
    assert "镇（610423100）" in text and "村（610423100201）" in text and "泾阳县（610423）" in text
    assert "比对结果" in text
    for code in ("huijiao:", "nongrain_codes", "{", "YJJBNTBHTB", "comparison", "desk"):
        assert code not in text, code
    ways = {dock.history_table.item(r, 2).text() for r in range(dock.history_table.rowCount())}
    assert "内业" in ways and not ways & {"desk", "comparison", "import", "field"}
    QgsProject.instance().removeMapLayers([layer.id() for layer in regions])
