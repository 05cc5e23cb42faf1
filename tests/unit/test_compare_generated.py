"""Presets on a county from the synthetic generator (tests.datagen): ground truth and native chains.

* versiondiff finds exactly the generator's GENERATOR_CHANGES (old and new patches), matched spatially;
* PBF = farmland patches with vertices moved ≤ 1 m + a few non-farmland patches: 非粮化 reports exactly the
PBF on
  FLS/WG farmland and on non-farmland, one whole patch each — the noise adds only slivers;
* hsfnotinpbf / hsfcoverage / farmlandnonagri agree with native:intersection/difference chains.
"""

from __future__ import annotations

import gc

import pytest
from qgis.core import QgsVectorLayer
from test_compare_native import (
    CONSTRUCTION,
    FARM,
    assert_same,
    difference,
    extract,
    intersection,
    of,
)

from huijiao_plugin.core.compare.engine import CountyOverlay
from huijiao_plugin.core.compare.presets import run_preset
from tests.datagen import COMPARE_ROLES


@pytest.fixture(scope="module")
def gen(qgis_processing, tmp_path_factory):
    from tests.datagen.__main__ import main

    out = tmp_path_factory.mktemp("gen")
    assert main(["--out", str(out), "--size", "1500", "--seed", "11", "--formats", "gpkg", "--quiet"]) == 0
    path = out / "county.gpkg"
    layers = {
        role: QgsVectorLayer(f"{path}|layername={name}", name, "ogr") for role, name in COMPARE_ROLES.items()
    }
    layers["CHANGES"] = QgsVectorLayer(f"{path}|layername=GENERATOR_CHANGES", "changes", "ogr")
    assert all(layer.isValid() for layer in layers.values())
    layers["overlay"] = CountyOverlay({k: v for k, v in layers.items() if k in COMPARE_ROLES})
    yield layers
    layers.clear()
    gc.collect()


def split(value):
    return {v for v in str(value or "").split(",") if v}


def test_versiondiff_finds_exactly_the_generator_changes(gen):
    old_truth, new_truth = set(), set()
    kinds = set()
    for change in gen["CHANGES"].getFeatures():
        kinds.add(change["CHANGE_TYPE"])
        old_truth |= split(change["OLD_BSM"])
        new_truth |= split(change["NEW_BSM"])
    assert len(kinds) >= 3 and "attribute_change" in kinds  # splits, merges, class changes … by seed
    result = run_preset("versiondiff", gen["overlay"])
    old_found = {p.attrs["OLD_ID"] for p in result.pieces if p.attrs["OLD_ID"]}
    new_found = {p.attrs["NEW_ID"] for p in result.pieces if p.attrs["NEW_ID"]}
    assert old_found == old_truth
    assert new_found == new_truth
    # attribute changes keep the geometry: reported as modified with old and new values side by side
    for change in gen["CHANGES"].getFeatures():
        if change["CHANGE_TYPE"] == "attribute_change":
            row = next(p for p in result.pieces if p.attrs["OLD_ID"] == change["OLD_BSM"])
            assert row.category == "modified" and "GEOMETRY" not in row.attrs["changed_fields"]
            assert (row.attrs["OLD_ZZSXDM"], row.attrs["NEW_ZZSXDM"]) == (
                change["OLD_ZZSXDM"],
                change["NEW_ZZSXDM"],
            )


def test_nongrain_is_exactly_the_pbf_on_nongrain_or_nonfarmland(gen):
    """PBF copies the DLTB attributes of its patch: the expected answer is known per PBF feature."""
    prof = gen["overlay"].profile
    expected = {"nongrain": 0, "occupied": 0}
    for f in gen["PBF"].getFeatures():
        if prof.is_farmland(f["DLBM"]):
            expected["nongrain"] += f["ZZSXDM"] in ("FLS", "WG")
        else:
            expected["occupied"] += 1
    assert expected["occupied"] >= 3
    result = run_preset("pbfnongrain", gen["overlay"])
    # one whole patch per PBF; the noise of neighbouring PBF either joins it (the same connected part of the
    # category's union, a few m² each) or is within tolerance
    for category in ("nongrain", "occupied"):
        whole = [p for p in of(result, category) if p.area_m2 > 100]
        assert len(whole) == len({p.attrs["PBF_ID"] for p in whole}) == expected[category]
        assert all(p.area_m2 < 100 for p in of(result, category) if p not in whole)


def test_generated_hsf_and_nonagri_vs_native(gen):
    ov = gen["overlay"]
    farm = extract(gen["DLTB"], FARM)
    chain = difference(intersection(gen["HSF"], farm), gen["PBF"])
    assert_same(run_preset("hsfnotinpbf", ov), "candidate", chain)
    coverage = run_preset("hsfcoverage", ov)
    assert_same(coverage, "not_covered", difference(gen["PBF"], gen["HSF"]))
    constr = extract(gen["DLTB_N1"], CONSTRUCTION)
    nonagri = run_preset("farmlandnonagri", ov)
    assert_same(nonagri, "to_construction", intersection(farm, constr))
