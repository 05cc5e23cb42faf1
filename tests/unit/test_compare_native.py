"""Every preset against an independent chain of QGIS native algorithms on a generated county.

Independent computation: native:extractbyexpression / intersection / difference / dissolve / buffer /
multiparttosingleparts / detectvectorchanges. Both sides apply the same sliver rule to single parts; total
areas
(三调 ellipsoidal) must agree within 1e-6 relative and piece counts must be equal.
"""

from __future__ import annotations

import pytest
from compare_support import random_county, release

from huijiao_plugin.core.compare import vectorized
from huijiao_plugin.core.compare.engine import CountyOverlay, kept_parts, single_parts
from huijiao_plugin.core.compare.presets import CompareOptions, run_preset
from huijiao_plugin.core.ellipsoidal_area import EllipsoidalAreaCalculator
from tests.conftest import GEOS_PATHS, use_geos_path

THR = (0.5, 0.1, 1.0)  # the profile defaults: min area m², min width m, noise width m
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


def native_pieces(layer):
    singles = run("native:multiparttosingleparts", INPUT=layer)
    return [g for f in singles.getFeatures() for g in kept_parts(f.geometry(), *THR)]


def native_rows(layer):
    """Per feature (one row per patch): the kept parts, rows without any dropped."""
    rows = []
    for f in layer.getFeatures():
        parts = kept_parts(f.geometry(), *THR)
        if parts:
            rows.append(parts)
    return rows


def area(geoms, crs):
    return sum(EllipsoidalAreaCalculator(crs).areas(geoms))


def assert_same(mine, native_geoms, crs, nonempty=True):
    assert len(mine) == len(native_geoms)
    ours = sum(p.area_m2 for p in mine)
    theirs = area(native_geoms, crs)
    if not nonempty and not native_geoms:
        return
    assert theirs > 0
    assert abs(ours - theirs) <= 1e-6 * theirs, (ours, theirs)


def of(result, *categories):
    return [p for p in result.pieces if p.category in categories]


def test_hsfnotinpbf_vs_native(county, suite):
    chain = difference(intersection(county["HSF"], extract(county["DLTB"], FARM)), county["PBF"])
    assert_same(suite["hsfnotinpbf"].pieces, native_pieces(chain), county["DLTB"].crs())


def test_pbfnongrain_vs_native(county, suite):
    ng = extract(county["DLTB"], f"({FARM} AND ZZSXDM IN ('FLS','WG'))")
    occ = extract(county["DLTB"], f"NOT ({FARM})")
    result = suite["pbfnongrain"]
    crs = county["DLTB"].crs()
    assert_same(of(result, "nongrain"), native_pieces(intersection(county["PBF"], ng)), crs)
    assert_same(of(result, "occupied"), native_pieces(intersection(county["PBF"], occ)), crs)


def test_pbf_noise_only_gives_no_occupied_slivers(county, suite):
    """The generated PBF sits on farmland with 1 m noise plus a few exact PBF on non-farmland: every
    'occupied'
    piece is one whole non-farmland patch, not a sliver of a noisy farmland PBF."""
    occupied = of(suite["pbfnongrain"], "occupied")
    assert occupied
    pbf_ids = {p.attrs["PBF_ID"] for p in occupied}
    assert len(pbf_ids) == len(occupied)
    assert min(p.geom.area() for p in occupied) > 2000


def test_farmlandnonagri_vs_native(county, suite):
    farm = extract(county["DLTB"], FARM)
    constr = extract(county["DLTB_N1"], CONSTRUCTION)
    jctb = extract(county["JCTB"], "TBLX IN ('20','YH','DL1','DL2','DL3','TL','SJ','CK','GF','JC')")
    result = suite["farmlandnonagri"]
    crs = county["DLTB"].crs()
    assert_same(of(result, "to_construction"), native_pieces(intersection(farm, constr)), crs)
    assert_same(of(result, "monitoring"), native_pieces(intersection(farm, jctb)), crs)


def test_hsfcoverage_vs_native(county, suite):
    result = suite["hsfcoverage"]
    crs = county["DLTB"].crs()
    covered = native_pieces(intersection(county["PBF"], dissolve(county["HSF"])))
    assert_same(of(result, "covered"), covered, crs)
    assert_same(of(result, "not_covered"), native_pieces(difference(county["PBF"], county["HSF"])), crs)
    nonfarm = native_pieces(intersection(county["HSF"], extract(county["DLTB"], f"NOT ({FARM})")))
    assert_same(of(result, "hsf_nonfarmland"), nonfarm, crs)


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
    rows = native_rows(intersection(county["PBF"], dissolve(zone)))
    mine = of(suite["pbfexitcandidates"], reason)
    assert len(mine) == len(rows) > 0
    assert sum(len(single_parts(p.geom)) for p in mine) == sum(len(r) for r in rows)
    assert_same_area = area([g for r in rows for g in r], county["DLTB"].crs())
    assert abs(sum(p.area_m2 for p in mine) - assert_same_area) <= 1e-6 * assert_same_area


def test_contiguity_vs_native(county, suite):
    tolerance = 0.5
    blocks = run(
        "native:multiparttosingleparts",
        INPUT=dissolve(run("native:buffer", INPUT=fixed(county["PBF"]), DISTANCE=tolerance / 2)),
    )
    result = suite["contiguity"]
    assert len(result.pieces) == blocks.featureCount()
    union = [f.geometry() for f in dissolve(county["PBF"]).getFeatures()]
    total = area(union, county["DLTB"].crs())
    assert abs(sum(p.area_m2 for p in result.pieces) - total) <= 1e-6 * total
    assert sum(p.attrs["members"] for p in result.pieces) == county["PBF"].featureCount()


def test_fragments_are_the_small_blocks(county, suite):
    limit = 2000.0 / 3.0  # 1 亩
    small = [p for p in suite["contiguity"].pieces if p.area_m2 < limit]
    fragments = of(suite["pbfexitcandidates"], "fragment")
    assert len(fragments) == sum(p.attrs["members"] for p in small)


def test_boundarycompare_vs_native(county, suite):
    result = suite["boundarycompare"]
    crs = county["DLTB"].crs()
    # PBF lies on DLTB up to 1 m noise at the county edge: nothing only in A, on both sides
    assert_same(
        of(result, "only_a"), native_pieces(difference(county["A"], county["B"])), crs, nonempty=False
    )
    assert_same(of(result, "only_b"), native_pieces(difference(county["B"], county["A"])), crs)
    assert_same(of(result, "both"), native_pieces(intersection(county["A"], county["B"])), crs)


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
