"""Field package round trip: export, edit outside the plugin with plain OGR, import (history, photos, checksum
guard, conflict report), identity kept."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import pytest
from osgeo import ogr
from qgis.core import QgsGeometry, QgsProject, QgsVectorLayer

from huijiao_plugin.core.patches import schema
from huijiao_plugin.core.patches.field_package import (
    PHOTOS_LAYER,
    AlreadyImportedError,
    FieldPackageError,
    export_field_package,
    import_field_package,
)
from huijiao_plugin.core.patches.store import NewPatch, PatchStore
from tests.unit.test_patches_helpers import COUNTY, make_regions, rel_rect


@pytest.fixture()
def exported(tmp_path, qgis_app):
    store = PatchStore.create(tmp_path / "desk" / "bghtb.gpkg", "EPSG:4545", county_code=COUNTY)
    ids = store.add_patches(
        [
            NewPatch(QgsGeometry.fromWkt(rel_rect(100 + 200 * i, 100, 180 + 200 * i, 180)), year=2025)
            for i in range(4)
        ],
        user="分析员",
    )
    xzq, cjdcq = make_regions(tmp_path / "ctx.gpkg")
    context = [QgsVectorLayer(xzq, "XZQ", "ogr"), QgsVectorLayer(cjdcq, "CJDCQ", "ogr")]
    result = export_field_package(
        store,
        tmp_path / "pkg",
        ids[:3],
        context_layers=context,
        name="waiye_test",
        buffer_m=50,
        user="分析员",
    )
    return store, ids, result


def _field_edit(gpkg, number, **values):
    ds = ogr.Open(str(gpkg), update=1)
    layer = ds.GetLayerByName(schema.PATCH_LAYER)
    layer.SetAttributeFilter(f"number = '{number}'")
    feature = layer.GetNextFeature()
    for key, value in values.items():
        feature.SetField(key, value)
    layer.SetFeature(feature)
    ds = None


def _add_photo(folder, gpkg, patch_uuid, name, direction):
    (folder / "DCIM" / name).write_bytes(b"\xff\xd8\xff\xe0" + name.encode() * 10)
    ds = ogr.Open(str(gpkg), update=1)
    layer = ds.GetLayerByName(PHOTOS_LAYER)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetField("photo_uuid", name)
    feature.SetField("patch_uuid", patch_uuid)
    feature.SetField("photo", f"DCIM/{name}")
    feature.SetField("taken_at", "2025/06/02 09:30:00")
    feature.SetField("direction", direction)
    feature.SetField("taken_by", "外业员")
    feature.SetGeometry(ogr.CreateGeometryFromWkt("POINT(580140 3800140)"))
    layer.CreateFeature(feature)
    ds = None


def test_export_contents(exported):
    store, ids, result = exported
    assert result.patch_count == 3
    ds = ogr.Open(str(result.gpkg))
    layers = {ds.GetLayer(i).GetName(): ds.GetLayer(i).GetFeatureCount() for i in range(ds.GetLayerCount())}
    ds = None
    assert layers[schema.PATCH_LAYER] == 3
    assert layers[PHOTOS_LAYER] == 0
    # context clipped to the area of interest: only the first township/villages are within 50 m of the patches
    assert layers["XZQ"] == 1 and layers["CJDCQ"] == 2
    xzq = QgsVectorLayer(f"{result.gpkg}|layername=XZQ", "x", "ogr")
    assert next(xzq.getFeatures()).geometry().area() < 1000 * 1000 * 0.5
    exported_uuids = {
        f["uuid"] for f in QgsVectorLayer(f"{result.gpkg}|layername=BGHTB", "p", "ogr").getFeatures()
    }
    assert exported_uuids == set(ids[:3])
    assert (result.folder / "DCIM").is_dir()


def test_project_has_forms_and_opens_in_qgis(exported):
    _store, _ids, result = exported
    text = result.project.read_text(encoding="utf-8")
    assert "./waiye_test.gpkg" in text  # relative paths: the folder can move to a phone
    root = ET.fromstring(text)
    widgets = {
        (layer.findtext("layername"), field.get("name")): field.find("editWidget").get("type")
        for layer in root.iter("maplayer")
        for field in layer.iter("field")
        if field.find("editWidget") is not None
    }
    assert widgets[("变化图斑", "status")] == "ValueMap"
    assert widgets[("变化图斑", "result")] == "ValueMap"
    assert widgets[("变化图斑", "verify_date")] == "DateTime"
    assert widgets[("核查照片", "photo")] == "ExternalResource"
    project = QgsProject()
    assert project.read(str(result.project))
    patches = project.mapLayersByName("变化图斑")[0]
    assert patches.isValid() and patches.featureCount() == 3
    setup = patches.editorWidgetSetup(patches.fields().indexOf("status"))
    labels = [next(iter(d)) for d in setup.config()["map"]]
    assert "待核查" in labels and "已核查" in labels
    assert patches.editFormConfig().readOnly(patches.fields().indexOf("number"))
    assert not patches.editFormConfig().readOnly(patches.fields().indexOf("result"))
    relations = project.relationManager().relations()
    assert len(relations) == 1 and next(iter(relations.values())).isValid()


def test_round_trip_with_plain_ogr_history_photos_guard_and_conflict(exported, tmp_path):
    store, ids, result = exported
    numbers = {store.get(i)["number"]: i for i in ids}
    n1, n2, n3 = sorted(numbers)[:3]
    # the crew edits with a tool outside the plugin (plain OGR), using Chinese labels as typed on site
    _field_edit(
        result.gpkg,
        n1,
        status="已核查",
        result="属实",
        verifier="外业员",
        verify_date="2025-06-02",
        field_notes="已种植苗木",
    )
    _field_edit(result.gpkg, n2, result="不属实", verifier="外业员")
    _field_edit(result.gpkg, n3, status="核查中", field_notes="无法进入")
    _add_photo(result.folder, result.gpkg, numbers[n1], "IMG_0001.jpg", 135.0)
    # meanwhile at the desk the third patch is changed too -> conflict
    store.update(numbers[n3], {"status": "in_progress", "verifier": "内业员"}, user="内业员")
    desk_before = store.get(numbers[n3])

    report = import_field_package(store, result.folder, user="分析员", report_path=tmp_path / "report.json")
    assert {a["number"] for a in report.applied} == {n1, n2}
    assert [c["number"] for c in report.conflicts] == [n3]
    assert report.photos_added == 1 and report.photos_missing == []
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["conflicts"][0]["number"] == n3

    first = store.get(numbers[n1])
    assert (first["status"], first["result"], first["verifier"]) == ("verified", "true", "外业员")
    assert first["field_notes"] == "已种植苗木" and first["verify_date"] == "2025-06-02"
    second = store.get(numbers[n2])
    assert (second["status"], second["result"]) == ("verified", "false")  # a result moves it to 已核查
    # conflict: desk values kept, field values kept aside, nothing overwritten
    third = store.get(numbers[n3])
    assert third["verifier"] == "内业员" and third["field_notes"] is None
    assert third["updated_at"] == desk_before["updated_at"]
    (conflict,) = store.table_rows(schema.CONFLICTS_TABLE)
    assert conflict["patch_uuid"] == numbers[n3]
    assert json.loads(conflict["field_json"])["field_notes"] == "无法进入"
    # history says who did what, from the field
    history = store.history(numbers[n1])
    assert ("status", "pending", "verified", "外业员", "field") in [
        (h["field"], h["old_value"], h["new_value"], h["changed_by"], h["edit_source"]) for h in history
    ]
    (photo,) = store.attachments(numbers[n1])
    assert photo["direction"] == 135.0 and photo["taken_by"] == "外业员"
    assert photo["lon"] == pytest.approx(108.8701, abs=1e-3)
    assert store.attachment_path(photo).is_file()
    # identity: same UUIDs and numbers as before the trip
    assert {store.get(i)["number"]: i for i in ids} == numbers

    # the same package again is refused and changes nothing
    count_history = len(store.table_rows(schema.HISTORY_TABLE))
    with pytest.raises(AlreadyImportedError):
        import_field_package(store, result.folder, user="分析员")
    assert len(store.table_rows(schema.HISTORY_TABLE)) == count_history
    # a copy of it (zipped, moved) is the same content: refused as well
    archive = shutil.make_archive(str(tmp_path / "returned"), "zip", result.folder)
    with pytest.raises(AlreadyImportedError):
        import_field_package(store, archive, user="分析员")

    # the crew continues on the same package: only the new change is applied, nothing re-reported
    _field_edit(result.gpkg, n1, field_notes="已种植苗木，复核")
    again = import_field_package(store, result.folder, user="分析员")
    assert [a["number"] for a in again.applied] == [n1]
    assert again.rejected == [] and [c["number"] for c in again.conflicts] == [n3]  # n3 still unresolved
    assert len(store.table_rows(schema.CONFLICTS_TABLE)) == 1  # updated, not duplicated
    assert store.get(numbers[n1])["field_notes"] == "已种植苗木，复核"
    assert again.photos_added == 0


def test_refused_field_transition_is_reported_not_applied(exported):
    store, ids, result = exported
    number = store.get(ids[0])["number"]
    _field_edit(result.gpkg, number, status="审核通过")  # the field cannot approve
    report = import_field_package(store, result.folder)
    assert [r["number"] for r in report.rejected] == [number]
    assert store.get(ids[0])["status"] == "pending"
    assert len(store.table_rows(schema.CONFLICTS_TABLE)) == 1


def test_patch_drawn_in_the_field_becomes_a_new_patch(exported):
    store, ids, result = exported
    ds = ogr.Open(str(result.gpkg), update=1)
    layer = ds.GetLayerByName(schema.PATCH_LAYER)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetField("field_notes", "新发现")
    feature.SetGeometry(ogr.CreateGeometryFromWkt(f"MULTIPOLYGON((({rel_rect(700, 700, 760, 760)[9:-1]})))"))
    layer.CreateFeature(feature)
    ds = None
    report = import_field_package(store, result.folder)
    assert len(report.new_patches) == 1
    new = store.get(report.new_patches[0])
    assert new["number"] == f"{COUNTY}20{new['number'][8:10]}{new['seq']:04d}"
    assert new["field_notes"] == "新发现" and new["source"] == "field"


def test_bad_inputs(exported, tmp_path):
    store, ids, _result = exported
    with pytest.raises(FieldPackageError):
        export_field_package(store, tmp_path / "empty", [])
    with pytest.raises(FieldPackageError):
        import_field_package(store, tmp_path / "nowhere")
    (tmp_path / "notpkg").mkdir()
    with pytest.raises(FieldPackageError):
        import_field_package(store, tmp_path / "notpkg")


def test_mbtiles_basemap_from_a_raster(exported, tmp_path):
    import numpy as np
    from osgeo import gdal, osr
    from qgis.core import QgsRasterLayer

    store, ids, _result = exported
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4545)
    tif = tmp_path / "ortho.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(tif), 200, 200, 3, gdal.GDT_Byte)
    ds.SetProjection(srs.ExportToWkt())
    ds.SetGeoTransform((580000.0, 5.0, 0.0, 3801000.0, 0.0, -5.0))
    for band in range(1, 4):
        ds.GetRasterBand(band).WriteArray(np.full((200, 200), 60 * band, dtype=np.uint8))
    ds = None
    raster = QgsRasterLayer(str(tif), "ortho", "gdal")
    result = export_field_package(store, tmp_path / "with_basemap", ids[:1], basemap=raster, buffer_m=100)
    assert result.basemap is not None and result.basemap.name == "basemap.mbtiles"
    tiles = gdal.Open(str(result.basemap))
    assert tiles is not None and tiles.GetDriver().ShortName == "MBTiles" and tiles.RasterXSize > 0
    tiles = None
    assert "basemap.mbtiles" in result.project.read_text(encoding="utf-8")


def test_conflicts_are_resolved_by_the_analyst(exported):
    from huijiao_plugin.core.patches.field_package import open_conflicts, resolve_conflict

    store, ids, result = exported
    first, second = (store.get(i)["number"] for i in ids[:2])
    _field_edit(result.gpkg, first, result="属实", verifier="外业员", field_notes="外业")
    _field_edit(result.gpkg, second, result="存疑", verifier="外业员")
    store.update(ids[0], {"verifier": "内业员"}, user="内业员")
    store.update(ids[1], {"status": "in_progress"}, user="内业员")
    report = import_field_package(store, result.folder)
    assert sorted(c["number"] for c in report.conflicts) == sorted([first, second])
    conflicts = {c["number"]: c for c in open_conflicts(store)}
    assert (
        conflicts[first]["field"]["field_notes"] == "外业"
        and conflicts[first]["desk"]["verifier"] == "内业员"
    )

    taken = resolve_conflict(store, conflicts[first]["fid"], take_field=True, user="分析员")
    assert (taken["status"], taken["result"], taken["verifier"]) == ("verified", "true", "外业员")
    kept = resolve_conflict(store, conflicts[second]["fid"], take_field=False, user="分析员")
    assert kept["status"] == "in_progress" and kept["result"] is None
    assert open_conflicts(store) == []
    with pytest.raises(FieldPackageError):
        resolve_conflict(store, conflicts[first]["fid"], take_field=True)
    # the crew keeps working on the same package: resolved values do not come back as conflicts
    _field_edit(result.gpkg, first, field_notes="外业复核")
    again = import_field_package(store, result.folder)
    assert again.conflicts == [] and [a["number"] for a in again.applied] == [first]
    assert store.get(ids[0])["field_notes"] == "外业复核"


def test_geometry_reshaped_in_the_field_is_applied_or_kept_in_a_conflict(exported):
    from huijiao_plugin.core.patches.field_package import open_conflicts, resolve_conflict

    store, ids, result = exported
    first, second = (store.get(i) for i in ids[:2])
    ds = ogr.Open(str(result.gpkg), update=1)
    layer = ds.GetLayerByName(schema.PATCH_LAYER)
    for feature in layer:
        if feature.GetField("uuid") in (first["uuid"], second["uuid"]):
            x1, x2, y1, y2 = feature.GetGeometryRef().GetEnvelope()
            wkt = f"MULTIPOLYGON((({x1} {y1},{x2} {y1},{x2} {(y1 + y2) / 2},{x1} {(y1 + y2) / 2},{x1} {y1})))"
            feature.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
            layer.SetFeature(feature)
    ds = None
    store.update(second["uuid"], {"notes": "内业修改"}, user="内业员")  # changed at the desk too -> conflict
    store.update(second["uuid"], {"verifier": "内业员"}, user="内业员")
    report = import_field_package(store, result.folder)
    assert [a["number"] for a in report.applied] == [first["number"]]
    reshaped = store.get(first["uuid"])
    assert reshaped["area_m2"] == pytest.approx(first["area_m2"] / 2, abs=0.5)
    assert reshaped["uuid"] == first["uuid"] and reshaped["number"] == first["number"]
    assert [h for h in store.history(first["uuid"]) if h["field"] == "geometry"][0]["edit_source"] == "field"
    # the second patch was also changed at the desk: its field geometry waits in the conflict table
    (conflict,) = open_conflicts(store)
    assert conflict["patch_uuid"] == second["uuid"] and conflict["field"]["geometry_wkt"].startswith(
        "MultiPolygon"
    )
    assert store.get(second["uuid"])["area_m2"] == second["area_m2"]
    resolved = resolve_conflict(store, conflict["fid"], take_field=True, user="分析员")
    assert resolved["area_m2"] == pytest.approx(second["area_m2"] / 2, abs=0.5)


def test_context_layers_styled_named_and_aliased(exported):
    """The field project shows the context layers as people know them: the dataset's Chinese name and
    style, and Chinese field aliases (行政区名称, not XZQMC)."""
    from qgis.core import QgsProject

    _store, _ids, result = exported
    project = QgsProject()
    assert project.read(str(result.project))
    by_name = {layer.name(): layer for layer in project.mapLayers().values()}
    xzq = by_name["行政区(乡镇级)"]
    assert "村级调查区" in by_name
    assert xzq.customProperty("huijiao/dataset_id") == "xzq"
    assert xzq.attributeDisplayName(xzq.fields().indexOf("XZQMC")) == "行政区名称"
    assert xzq.source().endswith("layername=XZQ")  # the data stays where the package wrote it
