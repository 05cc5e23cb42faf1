"""Patches from a comparison output: merge adjacent pieces, drop small ones, number, idempotent re-runs."""

from __future__ import annotations

import json

import pytest
from qgis.core import QgsVectorLayer

from huijiao_plugin.core.patches import schema
from huijiao_plugin.core.patches.from_comparison import patch_type_for_rule, patches_from_comparison
from huijiao_plugin.core.patches.geometry import RegionLookup
from huijiao_plugin.core.patches.store import PatchStore
from tests.unit.test_patches_helpers import COUNTY, make_comparison, make_regions


@pytest.fixture()
def setup(tmp_path, qgis_app):
    store = PatchStore.create(tmp_path / "bghtb.gpkg", "EPSG:4545")
    xzq, cjdcq = make_regions(tmp_path / "regions.gpkg")
    regions = RegionLookup(
        store.crs, QgsVectorLayer(xzq, "XZQ", "ogr"), QgsVectorLayer(cjdcq, "CJDCQ", "ogr")
    )
    comparison = QgsVectorLayer(make_comparison(tmp_path / "cmp.gpkg"), "cmp", "ogr")
    assert comparison.isValid()
    return store, regions, comparison


def test_rule_to_type_mapping():
    assert patch_type_for_rule("pbfnongrain") == schema.TYPE_NONGRAIN
    assert patch_type_for_rule("farmland_nonagri") == schema.TYPE_NONAGRI
    assert patch_type_for_rule("pbf_fragile_exclude") == schema.TYPE_EXCLUDE
    assert patch_type_for_rule("hbf_not_pbf") == schema.TYPE_INCLUDE
    assert patch_type_for_rule("huijiao:pbfnongrain") == schema.TYPE_NONGRAIN
    assert patch_type_for_rule("huijiao:farmlandnonagri") == schema.TYPE_NONAGRI
    assert patch_type_for_rule("huijiao:pbfexitcandidates") == schema.TYPE_EXCLUDE
    assert patch_type_for_rule("huijiao:hsfnotinpbf") == schema.TYPE_INCLUDE
    assert patch_type_for_rule("huijiao:versiondiff") == schema.TYPE_VERSION
    assert patch_type_for_rule("huijiao:boundarycompare") == schema.TYPE_BOUNDARY
    assert patch_type_for_rule("custom") is None
    assert patch_type_for_rule("custom", default=schema.TYPE_OTHER) == schema.TYPE_OTHER
    assert patch_type_for_rule("custom", {"custom": schema.TYPE_BOUNDARY}) == schema.TYPE_BOUNDARY


def test_merge_drop_number(setup):
    store, regions, comparison = setup
    result = patches_from_comparison(store, comparison, regions=regions, year=2025, user="分析员")
    assert result.pieces == 5
    assert (
        result.dropped_small == 1
    )  # the 10x10 m sliver (< 400 m² for 非粮化); 20x20 m 非农化 ≥ 200 m² stays
    assert len(result.created) == 3
    rows = store.patches()
    by_type = {}
    for row in rows:
        by_type.setdefault(row["patch_type"], []).append(row)
    nongrain = sorted(by_type[schema.TYPE_NONGRAIN], key=lambda r: r["area_m2"])
    assert [round(r["area_m2"]) for r in nongrain] == [800, 900]
    assert [round(r["area_m2"]) for r in by_type[schema.TYPE_NONAGRI]] == [400]
    merged = nongrain[0]
    assert merged["reason"] == "FLS；WG"  # unknown category codes are kept as they are
    assert json.loads(merged["rule_params"]) == {"nongrain_codes": ["FLS", "WG"]}
    assert json.loads(merged["inputs"]) == {"DLTB": "2023", "YJJBNTBHTB": "2022"}
    assert merged["source"] == schema.SOURCE_COMPARISON and merged["rule_id"] == "pbfnongrain"
    assert merged["village_code"] == "610423100201"
    numbers = sorted(r["number"] for r in rows)
    assert numbers == [f"{COUNTY}2025{n:04d}" for n in range(1, len(rows) + 1)]


def test_min_area_is_configurable(setup):
    store, regions, comparison = setup
    result = patches_from_comparison(store, comparison, regions=regions, min_area_override=0.0)
    assert result.dropped_small == 0
    assert {r["patch_type"] for r in store.patches()} == {schema.TYPE_NONGRAIN, schema.TYPE_NONAGRI}
    assert store.count() == 4


def test_rerun_creates_no_duplicates_and_keeps_identity(setup):
    store, regions, comparison = setup
    first = patches_from_comparison(store, comparison, regions=regions, year=2025)
    before = {r["uuid"]: r["number"] for r in store.patches()}
    store.update(first.created[0], {"status": "in_progress"}, user="核查员")
    second = patches_from_comparison(store, comparison, regions=regions, year=2025)
    assert second.created == []
    assert sorted(second.matched) == sorted(first.created)
    after = {r["uuid"]: r["number"] for r in store.patches()}
    assert after == before
    assert store.get(first.created[0])["status"] == "in_progress"


def test_missing_rule_field_needs_a_type(tmp_path, qgis_app):
    from osgeo import ogr

    from tests.unit.test_patches_helpers import rel_rect, write_layer

    store = PatchStore.create(tmp_path / "bghtb.gpkg", "EPSG:4545", county_code=COUNTY)
    uri = write_layer(
        tmp_path / "plain.gpkg", "plain", {"name": ogr.OFTString}, [(rel_rect(0, 0, 50, 50), {})]
    )
    layer = QgsVectorLayer(uri, "plain", "ogr")
    with pytest.raises(ValueError, match="rule_id"):
        patches_from_comparison(store, layer)
    result = patches_from_comparison(store, layer, default_type=schema.TYPE_BOUNDARY)
    assert len(result.created) == 1
    assert store.get(result.created[0])["patch_type"] == schema.TYPE_BOUNDARY
