"""The partition invariant of every preset on a generated county with overlapping HSF / PBF and HSF / PBF past
the county edge: the categories (``within_tolerance`` included) add up to the documented union of the inputs,
at tolerance 0 and at the profile's default tolerances, and each category is the documented set.

Expected sets and areas are computed here with shapely (set operations) and pyproj (ellipsoidal area on
CGCS2000 / GRS80), never with the product's overlay or area code.
"""

from __future__ import annotations

import pytest

from huijiao_plugin.compat import vectorised_shapely

if vectorised_shapely()[0] is None:  # the independent expectations are computed with shapely 2
    from tests.conftest import VECTORISED_MISSING

    pytest.skip(VECTORISED_MISSING, allow_module_level=True)

import shapely  # noqa: E402
from compare_support import geod_area, layer_shapes, random_county, release, shape  # noqa: E402

from huijiao_plugin.core.compare.engine import CountyOverlay  # noqa: E402
from huijiao_plugin.core.compare.presets import PRESETS, CompareOptions, run_preset  # noqa: E402

FARM = {"0101", "0102", "0103"}
CONSTRUCTION = ("05", "06", "07", "08", "09", "10")
MONITORING = {"20", "YH", "DL1", "DL2", "DL3", "TL", "SJ", "CK", "GF", "JC"}
EXACT = CompareOptions(min_area=0.0, min_width=0.0, noise_width=0.0)
# The issue's bound: two exact computations in different operation orders (per feature in the product, whole
# layers in shapely here) agree to 1e-9 of the area, measured on the ellipsoid (compare_support.geod_area).
REL = 1e-9


def union(geoms):  # noqa: ANN001, ANN201
    return shapely.union_all(geoms) if geoms else shapely.Polygon()


@pytest.fixture(scope="module")
def county(qgis_processing, tmp_path_factory):
    layers = random_county(tmp_path_factory.mktemp("part") / "county.gpkg", overlaps=True, outside=True)
    layers["A"], layers["B"] = layers["PBF"], layers["DLTB"]
    yield layers
    release(layers)


@pytest.fixture(scope="module")
def sets(county):
    """The documented sets of each preset, computed with shapely from the layers."""
    dltb = {f["BSM"]: f for f in county["DLTB"].getFeatures()}
    farm = union([shape(f.geometry()) for f in dltb.values() if f["DLBM"] in FARM])
    nonfarm = union([shape(f.geometry()) for f in dltb.values() if f["DLBM"] not in FARM])
    nongrain_dltb = union(
        [shape(f.geometry()) for f in dltb.values() if f["DLBM"] in FARM and f["ZZSXDM"] in ("FLS", "WG")]
    )
    constr = union(
        layer_shapes(county["DLTB_N1"], lambda f: f["DLBM"][:2] in CONSTRUCTION and f["DLBM"][:4] != "1006")
    )
    jctb = union(layer_shapes(county["JCTB"], lambda f: f["TBLX"] in MONITORING))
    pbf, hsf = union(layer_shapes(county["PBF"])), union(layer_shapes(county["HSF"]))
    a, b = pbf, farm  # B is a DLTB layer: by default its farmland is compared
    to_constr = farm.intersection(constr)
    return {
        "boundarycompare": {"only_a": a.difference(b), "only_b": b.difference(a), "both": a.intersection(b)},
        "hsfcoverage": {
            "covered": pbf.intersection(hsf),
            "not_covered": pbf.difference(hsf),
            "hsf_nonfarmland": hsf.difference(farm).difference(pbf),
        },
        "hsfnotinpbf": {"candidate": hsf.intersection(farm).difference(pbf)},
        "pbfnongrain": {"nongrain": pbf.intersection(nongrain_dltb), "occupied": pbf.intersection(nonfarm)},
        "farmlandnonagri": {
            "to_construction": to_constr,
            "monitoring": farm.intersection(jctb).difference(to_constr),
        },
        "contiguity": {"block": pbf},
        "pbfexitcandidates": {
            "redline": pbf.intersection(union(layer_shapes(county["STBHHX"]))),
            "drought": pbf.intersection(union(layer_shapes(county["YZGHQ"]))),
        },
    }


@pytest.fixture(scope="module", params=["tolerance 0", "default tolerances"])
def results(county, request):
    ov = CountyOverlay(county)
    options = EXACT if request.param == "tolerance 0" else CompareOptions()
    return {pid: run_preset(pid, ov, options) for pid in PRESETS if PRESETS[pid].partition}


def category_shapes(result, category):  # noqa: ANN001, ANN201
    """The pieces of ``category`` and what the tolerances took from it (``within_tolerance``)."""
    return [
        shape(p.geom)
        for p in result.pieces
        if p.category == category or p.attrs.get("tolerance_of") == category
    ]


def test_the_county_has_what_the_issue_describes(county, sets):
    hsf = layer_shapes(county["HSF"])
    assert sum(g.area for g in hsf) > union(hsf).area + 1000  # overlapping plots
    outside = union(hsf).difference(union(layer_shapes(county["DLTB"])))
    assert outside.area > 1000  # HSF past the county edge
    assert sets["hsfcoverage"]["hsf_nonfarmland"].area > outside.area


@pytest.mark.parametrize("preset_id", ["boundarycompare", "hsfcoverage", "hsfnotinpbf", "pbfnongrain",
                                       "farmlandnonagri", "contiguity"])  # fmt: skip
def test_categories_partition_the_documented_union(results, sets, preset_id):
    result = results[preset_id]
    expected = sets[preset_id]
    documented = union(list(expected.values()))
    assert documented.area > 0
    pieces = [shape(p.geom) for p in result.pieces]
    total = geod_area(pieces)  # the sum over pieces: an area counted twice would show here
    want = geod_area(documented)
    assert abs(total - want) <= REL * want, (total, want)
    assert {p.category for p in result.pieces} <= {*expected, "within_tolerance"}
    for category, geom in expected.items():
        mine = category_shapes(result, category)
        got, exp = geod_area(mine), geod_area(geom)
        assert abs(got - exp) <= REL * max(exp, 1.0), (category, got, exp)
    # the product's own areas agree with the independent ones
    assert abs(sum(p.area_m2 for p in result.pieces) - want) <= 1e-6 * want


@pytest.mark.parametrize("reason", ["redline", "drought"])
def test_exit_reasons_each_keep_their_area(results, sets, reason):
    """Exit reasons may overlap (one piece, two reasons): each reason on its own adds up."""
    mine = category_shapes(results["pbfexitcandidates"], reason)
    exp = geod_area(sets["pbfexitcandidates"][reason])
    assert exp > 0
    assert abs(geod_area(mine) - exp) <= REL * exp


def test_default_tolerances_move_noise_to_within_tolerance(county):
    """At the defaults the 1 m digitising noise between PBF and DLTB is not dropped: it is within
    tolerance, in the same output, and the categories still add up (see above)."""
    result = run_preset("boundarycompare", CountyOverlay(county))
    within = [p for p in result.pieces if p.category == "within_tolerance"]
    assert within and all(p.attrs["tolerance_of"] in ("only_a", "only_b", "both") for p in within)
    exact = run_preset("boundarycompare", CountyOverlay(county), EXACT)
    assert not [p for p in exact.pieces if p.category == "within_tolerance"]


def test_overlapping_plots_listed_with_the_shared_area(county, results):
    pieces = results["hsfnotinpbf"].pieces
    shared = [p for p in pieces if p.attrs.get("shared_m2")]
    assert shared  # the later of two overlapping plots lists only what the earlier did not cover
    shapes = [shape(p.geom) for p in pieces if p.category == "candidate"]
    assert geod_area(shapes) == pytest.approx(geod_area(union(shapes)), rel=REL)  # no area twice


@pytest.mark.parametrize(
    ("preset_id", "key", "value"),
    [
        ("hsfnotinpbf", "min_area_m2", 1e9),
        ("hsfnotinpbf", "min_width_m", 1e6),
        ("boundarycompare", "noise_width_m", 0.0),
        ("contiguity", "contiguity_tolerance_m", 150.0),
    ],
)
def test_thresholds_come_from_the_rule_profile(county, preset_id, key, value):
    """With no run value, each threshold is the active profile's: changing it in the profile changes the
    output (and is recorded with the rule parameters)."""
    ov = CountyOverlay(county)
    before = run_preset(preset_id, ov)
    ov.profile = ov.profile.with_overrides({key: value})
    after = run_preset(preset_id, ov)
    assert after.rule_params[key] == value != before.rule_params[key]

    def summary(result):  # noqa: ANN001, ANN202
        return sorted((p.category, round(p.area_m2, 3)) for p in result.pieces)

    assert summary(after) != summary(before)
    if key in ("min_area_m2", "min_width_m"):  # nothing passes: all of it is within tolerance, none lost
        assert {p.category for p in after.pieces} == {"within_tolerance"}
        # the geometries hold the same area; AREA_M2 is rounded to 0.01 m² per row, and rows are merged
        planar = sum(p.geom.area() for p in before.pieces)
        assert sum(p.geom.area() for p in after.pieces) == pytest.approx(planar, rel=1e-9)
        rounding = 0.005 * (len(before.pieces) + len(after.pieces))
        total = sum(p.area_m2 for p in before.pieces)
        assert sum(p.area_m2 for p in after.pieces) == pytest.approx(total, abs=rounding)


def test_a_sliver_kept_for_its_neighbour_joins_the_neighbour_row(qgis_processing):
    """A sliver sharing an edge with a real piece of its category is reported in that piece's row
    (not a row of its own); a sliver touching it only at a corner, or far away, is within tolerance.
    Hand-computed areas."""
    from qgis.core import QgsGeometry

    from huijiao_plugin.core.compare.partition import WITHIN, partition
    from huijiao_plugin.core.compare.spec import Piece

    def box(x0: float, y0: float, x1: float, y1: float) -> QgsGeometry:
        return QgsGeometry.fromWkt(f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))")

    pieces = [
        Piece(box(0, 0, 100, 100), "both", {"ID": "real"}),
        Piece(box(0, 100, 100, 100.05), "both", {"ID": "edge sliver"}),  # shares the top edge: 5 m²
        Piece(box(100, 100.05, 200, 100.1), "both", {"ID": "corner sliver"}),  # meets it at (100, 100.05)
        Piece(box(500, 0, 600, 0.05), "both", {"ID": "far sliver"}),
    ]
    out = partition(pieces, ["both"], True, (0.0, 0.2, 0.0))  # width 5 / 200.1 m < 0.2 m: slivers alone
    rows = {p.attrs.get("ID", p.category): p for p in out}
    assert [p.category for p in out].count("both") == 1
    assert rows["real"].geom.area() == pytest.approx(10_005.0, rel=1e-12)
    within = sorted(p.geom.area() for p in out if p.category == WITHIN)
    assert within == pytest.approx([5.0, 5.0], rel=1e-9)


def test_noise_is_one_row_per_category_and_zldwdm(qgis_processing):
    """Slivers judged noise in one 坐落单位 are one ``within_tolerance`` row of their category; another
    坐落单位 keeps its own row. Hand-computed areas (each sliver 100 m × 0.05 m)."""
    from qgis.core import QgsGeometry

    from huijiao_plugin.core.compare.partition import WITHIN, partition
    from huijiao_plugin.core.compare.spec import Piece

    def sliver(x0: float) -> QgsGeometry:
        return QgsGeometry.fromWkt(f"POLYGON(({x0} 0,{x0 + 100} 0,{x0 + 100} 0.05,{x0} 0.05,{x0} 0))")

    village, other = "610102001001", "610102001002"
    pieces = [
        Piece(sliver(0), "both", {}, village),
        Piece(sliver(300), "both", {}, village),
        Piece(sliver(600), "both", {}, other),
        Piece(sliver(900), "only_a", {}, village),
    ]
    out = partition(pieces, ["only_a", "both"], True, (0.0, 0.2, 0.0))
    rows = sorted((p.attrs["tolerance_of"], p.zldwdm, round(p.geom.area(), 6)) for p in out)
    assert {p.category for p in out} == {WITHIN}
    assert rows == [("both", village, 10.0), ("both", other, 5.0), ("only_a", village, 5.0)]


def test_a_pbf_side_is_compared_whole_even_with_dlbm(tmp_path):
    """boundarycompare's default side filter takes the farmland of a DLTB side only: a PBF layer that carries
    DLBM (as delivered 永久基本农田 layers do) is compared parcel by parcel, whatever its DLBM."""
    from compare_support import rect, write_layer

    from huijiao_plugin.compat import FieldType

    path = tmp_path / "sides.gpkg"
    dltb = write_layer(
        path, "DLTB", [("BSM", FieldType.String), ("DLBM", FieldType.String), ("TBMJ", FieldType.Double)],
        [(rect(500000, 3800000, 500100, 3800100), {"BSM": "1", "DLBM": "0101", "TBMJ": 10000.0}),
         (rect(500100, 3800000, 500200, 3800100), {"BSM": "2", "DLBM": "0301", "TBMJ": 10000.0})],
    )  # fmt: skip
    pbf = write_layer(
        path, "PBF",
        [("BSM", FieldType.String), ("DLBM", FieldType.String), ("YJJBNTTBMJ", FieldType.Double)],
        [(rect(500000, 3800000, 500150, 3800100), {"BSM": "9", "DLBM": "0201K", "YJJBNTTBMJ": 15000.0})],
    )  # fmt: skip
    result = run_preset("boundarycompare", CountyOverlay({"A": pbf, "B": dltb}), EXACT)
    only_a = [shape(p.geom) for p in result.pieces if p.category == "only_a"]
    both = [shape(p.geom) for p in result.pieces if p.category == "both"]
    expected_only_a = shape(rect(500100, 3800000, 500150, 3800100))  # PBF on the forest patch
    expected_both = shape(rect(500000, 3800000, 500100, 3800100))
    assert geod_area(only_a) == pytest.approx(geod_area([expected_only_a]), rel=REL)
    assert geod_area(both) == pytest.approx(geod_area([expected_both]), rel=REL)
    release({"A": pbf, "B": dltb})
