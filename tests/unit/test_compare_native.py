"""Every preset against an independent chain of QGIS native algorithms on a generated county.

Independent computation: native:extractbyexpression / intersection / difference / dissolve / buffer /
multiparttosingleparts / detectvectorchanges, exact (no tolerance). A category of ours, with what the default
tolerances moved from it to ``within_tolerance``, must cover the native chain's result: ellipsoidal areas
(CGCS2000 / GRS80 with pyproj, on the union of the native output so that overlapping inputs count once) agree
within 1e-6 relative.
"""

from __future__ import annotations

import pytest
from compare_support import geod_area, random_county, release, shape

from huijiao_plugin.compat import vectorised_shapely
from huijiao_plugin.core.compare import vectorized
from huijiao_plugin.core.compare.engine import CountyOverlay
from huijiao_plugin.core.compare.presets import CompareOptions, run_preset
from tests.conftest import GEOS_PATHS, use_geos_path

if vectorised_shapely()[0] is None:  # the independent expectations are computed with shapely 2
    from tests.conftest import VECTORISED_MISSING

    pytest.skip(VECTORISED_MISSING, allow_module_level=True)

import shapely  # noqa: E402

FARM = "DLBM IN ('0101','0102','0103')"
CONSTRUCTION = (
    "left(DLBM,2) IN ('05','06','07','08','09','10') AND left(DLBM,4) <> '1006' AND left(DLBM,4) <> '1202'"
)


@pytest.fixture(scope="module")
def county(qgis_processing, tmp_path_factory):
    layers = random_county(tmp_path_factory.mktemp("rand") / "county.gpkg")
    layers["A"], layers["B"] = layers["PBF"], layers["DLTB"]
    yield layers
    release(layers)


@pytest.fixture(scope="module", params=GEOS_PATHS)
def suite(county, request):
    """All presets on one shared overlay (as the panel's suite does), on both paths of the engine."""
    use_geos_path(request.param)
    try:
        return _run_all(CountyOverlay(county))
    finally:
        vectorized.enabled(True)


def _run_all(ov):
    return {
        pid: run_preset(pid, ov)
        for pid in (
            "versiondiff",
            "pbfnongrain",
            "pbfexitcandidates",
            "hsfcoverage",
            "hsfnotinpbf",
            "farmlandnonagri",
            "contiguity",
            "boundarycompare",
        )
    }


def run(alg, **params):
    import processing

    params.setdefault("OUTPUT", "memory:")
    return processing.run(alg, params)["OUTPUT"]


def fixed(layer):
    return run("native:fixgeometries", INPUT=layer)


def extract(layer, expression):
    return run("native:extractbyexpression", INPUT=fixed(layer), EXPRESSION=expression)


def intersection(a, b):
    return run("native:intersection", INPUT=fixed(a), OVERLAY=fixed(b))


def difference(a, b):
    return run("native:difference", INPUT=fixed(a), OVERLAY=fixed(b))


def dissolve(layer):
    return run("native:dissolve", INPUT=fixed(layer))


def native_union(layer):
    return shapely.union_all([shape(f.geometry()) for f in layer.getFeatures()])


def assert_same(result, category, native_layer, nonempty=True):
    """Our ``category`` (with what the tolerances moved from it) against the native chain's output."""
    mine = [
        shape(p.geom)
        for p in result.pieces
        if p.category == category or p.attrs.get("tolerance_of") == category
    ]
    ours, theirs = geod_area(mine), geod_area(native_union(native_layer))
    if nonempty:
        assert theirs > 0
    assert abs(ours - theirs) <= 1e-6 * max(theirs, 1.0), (category, ours, theirs)


def of(result, *categories):
    return [p for p in result.pieces if p.category in categories]


def test_hsfnotinpbf_vs_native(county, suite):
    chain = difference(intersection(county["HSF"], extract(county["DLTB"], FARM)), county["PBF"])
    assert_same(suite["hsfnotinpbf"], "candidate", chain)


def test_pbfnongrain_vs_native(county, suite):
    ng = extract(county["DLTB"], f"({FARM} AND ZZSXDM IN ('FLS','WG'))")
    occ = extract(county["DLTB"], f"NOT ({FARM})")
    result = suite["pbfnongrain"]
    assert_same(result, "nongrain", intersection(county["PBF"], ng))
    assert_same(result, "occupied", intersection(county["PBF"], occ))


def test_pbf_noise_only_gives_no_occupied_slivers(county, suite):
    """The generated PBF sits on farmland with 1 m noise plus a few exact PBF on non-farmland. The noise is
    judged on the union of the category: every connected part of 'occupied' passes the sliver rule (checked
    here with shapely: area ≥ 0.5 m², mean width ≥ 0.1 m, not thinner than 1 m everywhere); what the rule
    rejects is within tolerance."""
    occupied = [shape(p.geom) for p in of(suite["pbfnongrain"], "occupied")]
    assert any(g.area > 2000 for g in occupied)
    for part in shapely.get_parts(shapely.union_all(occupied)):
        assert part.area >= 0.5 and part.area / part.length >= 0.1
        assert shapely.buffer(part, -0.5, quad_segs=4).area > 0.01
    lone = [p for p in suite["pbfnongrain"].pieces if p.attrs.get("tolerance_of") == "occupied"]
    assert lone and all(p.geom.area() < 2000 for p in lone)


def test_farmlandnonagri_vs_native(county, suite):
    farm = extract(county["DLTB"], FARM)
    constr = extract(county["DLTB_N1"], CONSTRUCTION)
    jctb = extract(county["JCTB"], "TBLX IN ('20','YH','DL1','DL2','DL3','TL','SJ','CK','GF','JC')")
    result = suite["farmlandnonagri"]
    assert_same(result, "to_construction", intersection(farm, constr))
    # the categories exclude each other: what is already construction land is not counted again
    assert_same(result, "monitoring", difference(intersection(farm, jctb), constr))


def test_hsfcoverage_vs_native(county, suite):
    result = suite["hsfcoverage"]
    assert_same(result, "covered", intersection(county["PBF"], dissolve(county["HSF"])))
    assert_same(result, "not_covered", difference(county["PBF"], county["HSF"]))
    # HSF off farmland: on non-farmland patches or outside every patch, and not on PBF
    off_farm = difference(difference(county["HSF"], extract(county["DLTB"], FARM)), county["PBF"])
    assert_same(result, "hsf_nonfarmland", off_farm)


@pytest.mark.parametrize(
    ("reason", "role", "expression"),
    [
        ("redline", "STBHHX", None),
        ("drought", "YZGHQ", None),
        ("soil_strict", "TRHJZL", "LB = '严格管控类'"),
        (
            "fragile",
            "DLTB",
            "TBXHDM IN ('HDGD','HQGD','LQGD','MQGD','SHGD','SMGD','YJGD') OR (GDPDJB = '5' AND GDLX = 'PD')",
        ),
        ("enclave", "DLTB", "FRDBS = '1'"),
    ],
)
def test_pbfexitcandidates_vs_native(county, suite, reason, role, expression):
    zone = county[role] if expression is None else extract(county[role], expression)
    native = intersection(county["PBF"], dissolve(zone))
    assert of(suite["pbfexitcandidates"], reason)
    assert_same(suite["pbfexitcandidates"], reason, native)


def test_contiguity_vs_native(county, suite):
    tolerance = 0.5
    blocks = run(
        "native:multiparttosingleparts",
        INPUT=dissolve(run("native:buffer", INPUT=fixed(county["PBF"]), DISTANCE=tolerance / 2)),
    )
    result = suite["contiguity"]
    assert len(of(result, "block")) == blocks.featureCount()
    assert_same(result, "block", county["PBF"])
    assert sum(p.attrs["members"] for p in result.pieces) == county["PBF"].featureCount()


def test_fragments_are_the_small_blocks(county, suite):
    limit = 2000.0 / 3.0  # 1 亩
    small = [p for p in suite["contiguity"].pieces if p.area_m2 < limit]
    fragments = of(suite["pbfexitcandidates"], "fragment")
    assert len(fragments) == sum(p.attrs["members"] for p in small)


def test_boundarycompare_vs_native(county, suite):
    result = suite["boundarycompare"]
    farm = extract(county["B"], FARM)  # B is a DLTB layer: its farmland by default; A (PBF) whole
    assert_same(result, "only_a", difference(county["A"], farm))
    assert_same(result, "only_b", difference(farm, county["A"]))
    assert_same(result, "both", intersection(county["A"], farm))


def test_versiondiff_vs_detectvectorchanges(county, suite):
    """Attribute-only changes with new BSM everywhere: detectvectorchanges (compare DLBM, ZZSXDM) finds
    exactly the
    patches our spatial matching reports as modified; it cannot pair them (every changed patch is
    deleted+added)."""
    import processing

    out = processing.run(
        "native:detectvectorchanges",
        {
            "ORIGINAL": county["DLTB"],
            "REVISED": county["DLTB_N1"],
            "COMPARE_ATTRIBUTES": ["DLBM", "ZZSXDM"],
            "MATCH_TYPE": 1,
            "UNCHANGED": "memory:",
            "ADDED": "memory:",
            "DELETED": "memory:",
        },
    )
    result = suite["versiondiff"]
    modified = of(result, "modified")
    assert out["DELETED_COUNT"] == out["ADDED_COUNT"] == len(modified) > 0
    assert not of(result, "added", "removed")
    assert {p.attrs["changed_fields"] for p in modified} == {"DLBM,ZZSXDM"}
    deleted = sorted(f["BSM"] for f in out["DELETED"].getFeatures())
    assert deleted == sorted(p.attrs["OLD_ID"] for p in modified)


def test_two_threads_same_answer_as_one(county, suite):
    one = run_preset("hsfcoverage", CountyOverlay(county, workers=1), CompareOptions())
    assert sorted(p.area_m2 for p in one.pieces) == sorted(p.area_m2 for p in suite["hsfcoverage"].pieces)
