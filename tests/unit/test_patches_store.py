"""Change-patch store: schema, identity (UUID, number), derived attributes, workflow, history."""

from __future__ import annotations

import sqlite3

import pytest
from qgis.core import QgsGeometry, QgsVectorLayer

from huijiao_plugin.core.patches import schema, workflow
from huijiao_plugin.core.patches.geometry import RegionLookup
from huijiao_plugin.core.patches.store import NewPatch, PatchStore, PatchStoreError
from tests.unit.test_patches_helpers import COUNTY, make_regions, rel_rect


@pytest.fixture()
def store(tmp_path, qgis_app):
    return PatchStore.create(tmp_path / "bghtb.gpkg", "EPSG:4545", county_code=COUNTY)


@pytest.fixture()
def regions(tmp_path, qgis_app, store):
    xzq, cjdcq = make_regions(tmp_path / "regions.gpkg")
    return RegionLookup(store.crs, QgsVectorLayer(xzq, "XZQ", "ogr"), QgsVectorLayer(cjdcq, "CJDCQ", "ogr"))


def test_schema_layer_tables_and_crs(store):
    con = sqlite3.connect(store.path)
    tables = {r[0] for r in con.execute("SELECT table_name FROM gpkg_contents")}
    assert {schema.PATCH_LAYER, *schema.ATTRIBUTE_TABLES} <= tables
    triggers = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    assert {"bghtb_history_insert", "bghtb_history_update", "bghtb_history_delete"} <= triggers
    con.close()
    assert store.crs.authid() == "EPSG:4545"
    layer = store.qgs_layer()
    assert layer.isValid()
    assert [f.name() for f in layer.fields()][1:] == list(schema.FIELD_NAMES)


def test_create_refuses_geographic_crs_and_existing_file(tmp_path, qgis_app, store):
    with pytest.raises(PatchStoreError):
        PatchStore.create(tmp_path / "geo.gpkg", "EPSG:4490")
    with pytest.raises(PatchStoreError):
        PatchStore.create(store.path, "EPSG:4545")


def test_identity_number_and_derived_attributes(store, regions):
    ids = store.add_patches(
        [
            NewPatch(QgsGeometry.fromWkt(rel_rect(100, 100, 200, 200)), year=2025),
            NewPatch(QgsGeometry.fromWkt(rel_rect(1100, 100, 1200, 200)), year=2025),
            NewPatch(QgsGeometry.fromWkt(rel_rect(300, 300, 400, 400)), year=2026),
        ],
        user="张三",
        regions=regions,
    )
    assert len(set(ids)) == 3
    rows = {r["uuid"]: r for r in store.patches()}
    first, second, third = (rows[i] for i in ids)
    assert first["number"] == "61042320250001"
    assert second["number"] == "61042320250002"
    assert third["number"] == "61042320260001"
    assert first["township_code"] == "610423100"
    assert first["village_code"] == "610423100201"
    assert second["township_code"] == "610423101"
    assert second["village_code"] == "610423101201"
    assert first["county_code"] == COUNTY
    # 100 m square near the CM: ellipsoidal area slightly below 10000 (domain.md §5.3 scale: 0.99984)
    assert first["area_m2"] == pytest.approx(9998.4, abs=0.1)
    assert first["area_mu"] == pytest.approx(first["area_m2"] * 0.0015, abs=0.01)
    assert first["gk_x"] == pytest.approx(3800150.0)  # X = northing
    assert first["gk_y"] == pytest.approx(580150.0)  # Y = easting
    assert 108.8 < first["lon"] < 108.9 and 34.3 < first["lat"] < 34.4
    assert first["status"] == workflow.STATUS_PENDING
    assert first["created_by"] == "张三"


def test_numbers_never_reused_after_delete(store):
    ids = store.add_patches([NewPatch(QgsGeometry.fromWkt(rel_rect(0, 0, 50, 50)), year=2025)] * 2)
    con = sqlite3.connect(store.path)
    con.execute(f"DELETE FROM {schema.PATCH_LAYER} WHERE uuid = ?", (ids[1],))
    con.execute("DELETE FROM rtree_BGHTB_geom")  # plain sqlite has no ST_ functions for the rtree triggers
    con.commit()
    con.close()
    new = store.add_patches([NewPatch(QgsGeometry.fromWkt(rel_rect(0, 0, 50, 50)), year=2025)])
    assert store.get(new[0])["number"] == "61042320250003"
    assert store.meta("seq:610423:2025") == "3"
    assert new[0] not in ids


def test_missing_county_code_is_refused(tmp_path, qgis_app):
    bare = PatchStore.create(tmp_path / "bare.gpkg", "EPSG:4545")
    with pytest.raises(PatchStoreError, match="county"):
        bare.add_patches([NewPatch(QgsGeometry.fromWkt(rel_rect(0, 0, 50, 50)))])
    assert bare.count() == 0


def test_invalid_geometry_is_repaired_or_refused(store):
    bowtie = QgsGeometry.fromWkt(
        "POLYGON((580000 3800000,580100 3800100,580100 3800000,580000 3800100,580000 3800000))"
    )
    ids = store.add_patches([NewPatch(bowtie)])
    geom = store.get(ids[0])["geometry"]
    assert geom.isGeosValid() and geom.isMultipart()
    with pytest.raises(PatchStoreError):
        store.add_patches([NewPatch(QgsGeometry.fromWkt("LINESTRING(580000 3800000, 580010 3800010)"))])


def test_workflow_transitions_allowed_and_refused():
    ok = [
        ("pending", "in_progress", None),
        ("pending", "verified", "true"),
        ("in_progress", "verified", "属实"),
        ("verified", "approved", "true"),
        ("verified", "returned", "true"),
        ("returned", "in_progress", None),
        ("approved", "disputed", "true"),
        ("disputed", "in_progress", None),
        ("待核查", "核查中", None),
    ]
    for old, new, result in ok:
        assert workflow.check_transition(old, new, result) == workflow.normalize_status(new)
    refused = [
        ("pending", "approved", "true"),  # never approve what nobody checked
        ("approved", "pending", None),
        ("returned", "approved", "true"),
        ("in_progress", "verified", None),  # 已核查 needs a result
        ("verified", "pending", "true"),
    ]
    for old, new, result in refused:
        with pytest.raises(workflow.WorkflowError):
            workflow.check_transition(old, new, result)
    with pytest.raises(workflow.WorkflowError):
        workflow.normalize_status("done")
    assert workflow.normalize_result("存疑") == workflow.RESULT_DOUBTFUL
    assert workflow.allowed_targets("verified") == ["in_progress", "approved", "returned", "disputed"]


def test_update_records_history_and_refuses_bad_transitions(store):
    (patch_uuid,) = store.add_patches([NewPatch(QgsGeometry.fromWkt(rel_rect(0, 0, 50, 50)))], user="a")
    store.update(patch_uuid, {"status": "in_progress", "verifier": "李四"}, user="b")
    with pytest.raises(workflow.WorkflowError):
        store.update(patch_uuid, {"status": "approved"}, user="c")
    store.update(patch_uuid, {"status": "已核查", "result": "属实"}, user="b")
    with pytest.raises(PatchStoreError):
        store.update(patch_uuid, {"number": "61042320259999"}, user="x")
    row = store.get(patch_uuid)
    assert row["status"] == "verified" and row["result"] == "true" and row["updated_by"] == "b"
    history = [
        (h["field"], h["old_value"], h["new_value"], h["changed_by"]) for h in store.history(patch_uuid)
    ]
    assert history[0][0] == "created"
    assert ("status", "pending", "in_progress", "b") in history
    assert ("verifier", None, "李四", "b") in history
    assert ("status", "in_progress", "verified", "b") in history
    assert ("result", None, "true", "b") in history
    assert not any(h[0] == "status" and h[2] == "approved" for h in history)


def test_geometry_update_recomputes_area_and_is_recorded(store):
    (patch_uuid,) = store.add_patches([NewPatch(QgsGeometry.fromWkt(rel_rect(0, 0, 100, 100)))])
    store.update(patch_uuid, {"geometry": QgsGeometry.fromWkt(rel_rect(0, 0, 100, 50))}, user="u")
    row = store.get(patch_uuid)
    assert row["area_m2"] == pytest.approx(4999.2, abs=0.1)
    assert row["number"].endswith("0001")
    geometry_rows = [h for h in store.history(patch_uuid) if h["field"] == "geometry"]
    assert len(geometry_rows) == 1 and float(geometry_rows[0]["new_value"]) == pytest.approx(row["area_m2"])


def test_edits_made_in_qgis_are_recorded_by_triggers(store):
    (patch_uuid,) = store.add_patches([NewPatch(QgsGeometry.fromWkt(rel_rect(0, 0, 100, 100)))])
    layer = store.qgs_layer()
    feature = next(layer.getFeatures())
    layer.startEditing()
    layer.changeAttributeValue(feature.id(), layer.fields().indexOf("notes"), "在QGIS中编辑")
    layer.changeAttributeValue(feature.id(), layer.fields().indexOf("updated_by"), "王五")
    assert layer.commitChanges()
    history = store.history(patch_uuid)
    assert ("notes", "在QGIS中编辑", "王五") in [
        (h["field"], h["new_value"], h["changed_by"]) for h in history
    ]


def test_bulk_status_and_totals(store):
    ids = store.add_patches(
        [
            NewPatch(QgsGeometry.fromWkt(rel_rect(0, 0, 100, 100)), patch_type=schema.TYPE_NONGRAIN),
            NewPatch(QgsGeometry.fromWkt(rel_rect(200, 0, 300, 100)), patch_type=schema.TYPE_NONGRAIN),
            NewPatch(QgsGeometry.fromWkt(rel_rect(400, 0, 500, 100)), patch_type=schema.TYPE_NONAGRI),
        ]
    )
    store.update(ids[1], {"status": "verified", "result": "true"})
    done, refused = store.set_status(ids, "approved", user="审核员")
    assert done == [ids[1]]
    assert set(refused) == {ids[0], ids[2]}
    totals = store.totals()
    assert totals[(schema.TYPE_NONGRAIN, "pending")][0] == 1
    assert totals[(schema.TYPE_NONGRAIN, "approved")][0] == 1
    assert totals[(schema.TYPE_NONAGRI, "pending")] == (1, pytest.approx(15.0, abs=0.01))


def test_attachments_copied_and_deduplicated(store, tmp_path):
    (patch_uuid,) = store.add_patches([NewPatch(QgsGeometry.fromWkt(rel_rect(0, 0, 100, 100)))])
    photo = tmp_path / "IMG_0001.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 fake jpeg body")
    row = store.add_attachment(
        patch_uuid, photo, taken_at="2025-06-01T10:00:00", lon=108.9, lat=34.3, direction=45
    )
    assert row is not None and store.attachment_path(row).read_bytes() == photo.read_bytes()
    assert store.add_attachment(patch_uuid, photo) is None
    (stored,) = store.attachments(patch_uuid)
    assert stored["direction"] == 45 and stored["taken_at"] == "2025-06-01T10:00:00"


def test_not_a_patch_store(tmp_path, qgis_app):
    with pytest.raises(PatchStoreError):
        PatchStore(tmp_path / "missing.gpkg")
    from tests.unit.test_patches_helpers import make_regions as regions_only

    regions_only(tmp_path / "other.gpkg")
    with pytest.raises(PatchStoreError, match="BGHTB"):
        PatchStore(tmp_path / "other.gpkg")


def test_gdal_exception_mode_is_left_as_found(store):
    from osgeo import gdal, ogr, osr

    def modes():
        return ogr.GetUseExceptions(), gdal.GetUseExceptions(), osr.GetUseExceptions()

    before = modes()
    store.add_patches([NewPatch(QgsGeometry.fromWkt(rel_rect(0, 0, 50, 50)))])
    assert store.count() == 1
    assert modes() == before
    with pytest.raises(PatchStoreError):
        PatchStore(store.path.with_name("missing.gpkg"))
    assert modes() == before
