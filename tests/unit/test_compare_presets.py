"""耕地比对 presets on the hand-made county (compare_support.py): exact expected pieces, areas and
categories."""

from __future__ import annotations

import pytest
from compare_support import T1, T2, X0, Y0, build_county, noisy, rect, release, write_layer

from huijiao_plugin.compat import FieldType
from huijiao_plugin.core.compare.engine import CompareError, CountyOverlay, passes_sliver_rule
from huijiao_plugin.core.compare.presets import CompareOptions, run_preset, run_suite, size_class
from huijiao_plugin.core.ellipsoidal_area import EllipsoidalAreaCalculator

# every test here runs on both paths of the engine (vectorised GEOS and one feature at a time)
pytestmark = pytest.mark.usefixtures("geos_path")


@pytest.fixture(scope="module")
def county(qgis_app, tmp_path_factory):
    layers = build_county(tmp_path_factory.mktemp("hand") / "county.gpkg")
    yield layers
    release(layers)


def overlay(county, **extra):
    layers = dict(county)
    layers.update(extra)
    return CountyOverlay(layers)


def planar(result, category=None):
    return sorted(
        round(p.geom.area(), 2) for p in result.pieces if category is None or p.category == category
    )


def test_hsfnotinpbf_exact(county):
    result = run_preset("hsfnotinpbf", overlay(county))
    # HSF x 250–550, y 100–300 on farmland, minus PBF (x < 400, y < 200 and the 20 m square); (4,2) is forest
    assert planar(result) == [4600.0, 5000.0, 5000.0, 10000.0, 10000.0]
    assert {p.category for p in result.pieces} == {"candidate"}
    assert result.rule_id == "huijiao:hsfnotinpbf"
    calc = EllipsoidalAreaCalculator(county["DLTB"].crs())
    for piece in result.pieces:
        assert piece.area_m2 == calc.area(piece.geom)
        assert piece.attrs["XMBH"] == "6101020011140202001"
        assert piece.attrs["DLBM"] == "0103"
    assert result.rule_params["min_area_m2"] == 0.5 and result.rule_params["min_width_m"] == 0.1
    assert result.inputs["DLTB"]["version"] == "2023"
    assert result.inputs["HSF"]["features"] == 1
    assert result.summary().startswith("Candidates to bring into PBF: 5 pieces, 51.9 mu")


def test_pbfnongrain_exact(county):
    result = run_preset("pbfnongrain", overlay(county))
    cats = sorted(
        (p.category, p.attrs["ZZSXDM"] or p.attrs["DLBM"], round(p.geom.area())) for p in result.pieces
    )
    assert cats == [("nongrain", "FLS", 10000), ("nongrain", "WG", 10000), ("occupied", "JKHF", 10000)]
    # LYFL configured as non-grain changes nothing here; dropping WG removes one piece
    fewer = run_preset("pbfnongrain", overlay(county), overrides={"nongrain_codes": "FLS"})
    assert len(fewer.pieces) == 2
    assert fewer.rule_params["nongrain_codes"] == ["FLS"]


def test_pbfexitcandidates_rows_per_patch_and_reason(county):
    result = run_preset("pbfexitcandidates", overlay(county))
    rows = sorted((p.attrs["PBF_ID"], p.category, round(p.geom.area())) for p in result.pieces)
    assert rows == [
        ("P0000", "redline", 5000),
        ("P0002", "soil_strict", 10000),
        ("P0003", "soil_strict", 10000),
        ("P0004", "fragile", 10000),  # TBXHDM SHGD
        ("P0004", "redline", 5000),
        ("P0005", "fragile", 10000),  # GDPDJB 5 + PD
        ("P0006", "enclave", 10000),  # FRDBS 1
        ("P0007", "drought", 10000),
        ("P9999", "enclave", 400),  # outside its own township
        ("P9999", "fragment", 400),  # block of 0.6 亩 < 1 亩
    ]
    # a larger fragment threshold makes the 8-cell block (120 亩) a fragment too
    bigger = run_preset("pbfexitcandidates", overlay(county), overrides={"fragment_max_mu": 200})
    assert sum(1 for p in bigger.pieces if p.category == "fragment") == 9


def test_farmlandnonagri_both_sources(county):
    result = run_preset("farmlandnonagri", overlay(county))
    rows = sorted(
        (p.category, p.attrs.get("NEW_DLBM") or p.attrs.get("TBLX"), round(p.geom.area()))
        for p in result.pieces
    )
    assert rows == [("monitoring", "20", 2500), ("to_construction", "0702", 10000)]
    # PBF as the base: (0,0) is PBF too, the JCTB patch lies on non-PBF farmland
    on_pbf = run_preset("farmlandnonagri", overlay(county), CompareOptions(base="pbf"))
    assert [(p.category, round(p.geom.area())) for p in on_pbf.pieces] == [("to_construction", 10000)]
    # 1006 农村道路 counts as construction only when switched on: none of them is farmland in N, nothing
    # changes
    with_road = run_preset("farmlandnonagri", overlay(county), overrides={"construction_include_1006": True})
    assert len(with_road.pieces) == 2


def test_farmlandnonagri_needs_a_source(county):
    layers = {k: v for k, v in county.items() if k not in ("DLTB_N1", "JCTB")}
    with pytest.raises(CompareError, match="DLTB_N1"):
        run_preset("farmlandnonagri", CountyOverlay(layers))


def test_hsfcoverage(county):
    result = run_preset("hsfcoverage", overlay(county))
    assert planar(result, "covered") == [400.0, 5000.0, 10000.0]
    assert planar(result, "not_covered") == [5000.0] + [10000.0] * 6
    assert planar(result, "hsf_nonfarmland") == [10000.0]


def test_contiguity_blocks_and_tolerance(county):
    result = run_preset("contiguity", overlay(county))
    blocks = sorted((p.attrs["members"], round(p.geom.area()), p.attrs["size_class"]) for p in result.pieces)
    assert blocks == [(1, 400, "<10"), (8, 80000, "100-500")]
    # the small patch is 20 m from the nearest PBF cell … (x 520 vs 400) → 120 m: a 150 m tolerance joins it
    joined = run_preset("contiguity", overlay(county), CompareOptions(tolerance=150))
    assert [p.attrs["members"] for p in joined.pieces] == [9]
    farmland = run_preset("contiguity", overlay(county), CompareOptions(base="farmland"))
    assert sum(p.attrs["members"] for p in farmland.pieces) == 20


def test_versiondiff_spatial_matching(county):
    result = run_preset("versiondiff", overlay(county))
    rows = sorted((p.category, p.attrs["changed_fields"], round(p.geom.area())) for p in result.pieces)
    assert rows == [
        ("added", "", 4000),
        ("modified", "DLBM,ZZSXDM", 10000),
        ("modified", "GEOMETRY", 6000),
        ("modified", "ZZSXDM", 10000),
    ]
    modified = next(p for p in result.pieces if p.attrs["changed_fields"] == "DLBM,ZZSXDM")
    assert (modified.attrs["OLD_DLBM"], modified.attrs["NEW_DLBM"]) == ("0103", "0702")
    assert modified.attrs["OLD_ID"] == "2023000000" and modified.attrs["NEW_ID"] == "2024000000"


def test_versiondiff_ignores_bsm_and_noise(county, tmp_path):
    """Same patches, new BSM values and 0.3 m vertex noise: no differences at all."""
    from compare_support import DLTB_FIELDS, dltb_rows

    rows = [(noisy(g, 0.3, seed=k), dict(a, BSM=f"X{k}")) for k, (g, a) in enumerate(dltb_rows(2023))]
    moved = write_layer(tmp_path / "n1.gpkg", "DLTB_N1", DLTB_FIELDS, rows)
    result = run_preset("versiondiff", overlay(county, DLTB_N1=moved))
    assert result.pieces == []


def test_boundarycompare_noise_only(county, tmp_path):
    """PBF against a copy with 1 m digitising noise per feature: adjacent noisy features can leave gaps up to
    2 m
    wide, so the noise width is 2 m here; nothing only-in-A/B, every 套合率 is 1."""
    rows = []
    for k, feature in enumerate(county["PBF"].getFeatures()):
        rows.append((noisy(feature.geometry(), 1.0, seed=100 + k, step=5.0), {"BSM": f"B{k}"}))
    other = write_layer(tmp_path / "b.gpkg", "B", [("BSM", FieldType.String)], rows)
    options = CompareOptions(noise_width=2.0)
    result = run_preset("boundarycompare", overlay(county, A=county["PBF"], B=other), options)
    both = [p for p in result.pieces if p.category == "both"]
    within = [p for p in result.pieces if p.category == "within_tolerance"]
    assert len(both) + len(within) == len(result.pieces)
    # one piece per feature; the slivers where a noisy B feature meets the neighbouring A feature are in both
    # layers too: they join those pieces (the category's union is judged, not each piece)
    assert len([p for p in both if p.geom.area() > 100]) == 9
    assert within and {p.attrs["tolerance_of"] for p in within} <= {"only_a", "only_b"}
    assert {p.attrs["A_RATIO"] for p in both} == {1.0}  # noise counts as overlapping
    # without the noise rule the slivers come back
    raw = run_preset(
        "boundarycompare", overlay(county, A=county["PBF"], B=other), CompareOptions(noise_width=0)
    )
    assert any(p.category == "only_a" for p in raw.pieces)
    assert 0.9 < min(p.attrs["A_RATIO"] for p in raw.pieces if p.category == "both") < 1.0


def test_pbf_noise_produces_no_nongrain_output(county, tmp_path):
    """PBF = exactly the FLS/WG cells' neighbours with 1 m noise: the noise is within tolerance only."""
    rows = [
        (noisy(rect(0, 100, 100, 200), 1.0, seed=3), {"BSM": "N1", "ZLDWDM": T1 + "0010000000"}),
        (noisy(rect(300, 100, 400, 200), 1.0, seed=4), {"BSM": "N2", "ZLDWDM": T2 + "0010000000"}),
    ]
    pbf = write_layer(
        tmp_path / "p.gpkg", "PBF", [("BSM", FieldType.String), ("ZLDWDM", FieldType.String)], rows
    )
    result = run_preset("pbfnongrain", overlay(county, PBF=pbf))
    assert result.pieces and {p.category for p in result.pieces} == {"within_tolerance"}


def test_invalid_geometry_repaired_and_reported(county, tmp_path):
    from qgis.core import QgsGeometry

    bowtie = QgsGeometry.fromWkt(
        "POLYGON((500000 3800000, 500100 3800100, 500100 3800000, 500000 3800100, 500000 3800000))"
    )
    assert not bowtie.isGeosValid()
    hsf = write_layer(tmp_path / "h.gpkg", "HSF", [("XMBH", FieldType.String)], [(bowtie, {"XMBH": "BAD"})])
    ov = overlay(county, HSF=hsf)
    result = run_preset("hsfcoverage", ov)
    assert result.repaired == {"HSF": [1]}
    assert result.inputs["HSF"]["repaired"] == 1
    covered = sum(p.geom.area() for p in result.pieces if p.category == "covered")
    assert covered == pytest.approx(5000.0)  # the bow-tie's two triangles on PBF cell (0,0)


def test_suite_shares_overlays_and_matches_single_runs(county):
    layers = dict(county, A=county["PBF"], B=county["DLTB"])
    suite = run_suite(CountyOverlay(layers))
    assert set(suite) == {
        "versiondiff",
        "pbfnongrain",
        "pbfexitcandidates",
        "hsfcoverage",
        "hsfnotinpbf",
        "farmlandnonagri",
        "contiguity",
        "boundarycompare",
    }
    for preset_id, result in suite.items():
        single = run_preset(preset_id, CountyOverlay(layers))
        assert sorted(p.area_m2 for p in single.pieces) == sorted(p.area_m2 for p in result.pieces), preset_id


def test_region_codes_from_zldwdm_and_layers(county):
    result = run_preset("pbfnongrain", overlay(county))
    assert sorted(p.codes for p in result.pieces)[0] == ("610102", T1, T1 + "001")
    assert result.region_names[T1] == "一号镇"
    # pieces without ZLDWDM get their region from CJDCQ
    result = run_preset("contiguity", overlay(county), CompareOptions(base="pbf"))
    assert all(p.codes[1] in (T1, T2) for p in result.pieces)


def test_missing_layer_gives_chinese_error(county):
    with pytest.raises(CompareError, match="缺少输入图层"):
        run_preset("versiondiff", CountyOverlay({"DLTB": county["DLTB"]}))
    with pytest.raises(CompareError, match="未知"):
        run_preset("nosuchpreset", CountyOverlay({"DLTB": county["DLTB"]}))


def test_geographic_crs_refused(tmp_path):
    layer = write_layer(
        tmp_path / "g.gpkg",
        "G",
        [("BSM", FieldType.String)],
        [(rect(0, 0, 1, 1), {"BSM": "1"})],
        crs="EPSG:4490",
    )
    with pytest.raises(CompareError, match="投影坐标系"):
        CountyOverlay({"PBF": layer})


def test_sliver_rule():
    thin = rect(0, 0, 100, 0.8)  # 80 m², area/perimeter 0.396
    assert passes_sliver_rule(thin, 0.5, 0.1, 0.0)
    assert not passes_sliver_rule(thin, 0.5, 0.1, 1.0)
    assert not passes_sliver_rule(thin, 0.5, 0.5, 0.0)
    assert not passes_sliver_rule(rect(0, 0, 0.5, 0.5), 0.5, 0.1, 0.0)
    assert passes_sliver_rule(rect(0, 0, 3, 3), 0.5, 0.1, 1.0)
    assert (
        size_class(5, [10, 50]) == "<10"
        and size_class(20, [10, 50]) == "10-50"
        and size_class(50, [10, 50]) == ">=50"
    )


def test_polygonal_keeps_only_polygon_parts():
    from qgis.core import QgsGeometry

    from huijiao_plugin.core.compare.engine import polygonal

    mixed = QgsGeometry.fromWkt("GEOMETRYCOLLECTION(POLYGON((0 0,1 0,1 1,0 0)),LINESTRING(0 0,5 5))")
    assert polygonal(mixed).asWkt() == "MultiPolygon (((0 0, 1 0, 1 1, 0 0)))"
    assert polygonal(QgsGeometry.fromWkt("GEOMETRYCOLLECTION(LINESTRING(0 0,5 5))")) is None
    assert polygonal(QgsGeometry.fromWkt("MULTIPOLYGON EMPTY")) is None


def test_rows_and_lazy_geometry_checks():
    import numpy
    from qgis.core import QgsGeometry

    from huijiao_plugin.core.compare.engine.reading import CheckedGeometries, Columns

    # columns as the Arrow reader gives them (byte strings) or as lists (the generic reader)
    cols = Columns(3, {"DLBM": numpy.array([b"0103", b"0201", b" 0103"]), "ZZSXDM": ["FLS", "LS", None]})
    row = cols[0]
    assert row.get("ZZSXDM") == "FLS" and row.get("BSM") is None and "DLBM" in row and "BSM" not in row
    assert cols.column("DLBM") == ["0103", "0201", " 0103"] and cols.column("BSM") == [None] * 3
    calls = []

    def is_farm(code):
        calls.append(code)
        return code.strip() == "0103"

    assert cols.mask(is_farm, "DLBM") == [True, False, True] and sorted(calls) == [" 0103", "0103", "0201"]
    joined = cols.classify(lambda d, z: d.strip() + (z or ""), "DLBM", "ZZSXDM")
    assert joined == ["0103FLS", "0201LS", "0103"]
    assert [r.get("DLBM") for r in cols] == ["0103", "0201", " 0103"]
    bowtie = QgsGeometry.fromWkt("POLYGON((0 0, 10 10, 10 0, 0 10, 0 0))")
    square = QgsGeometry.fromWkt("POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))")
    geoms = CheckedGeometries([7, 8])
    for geom in (square, bowtie):
        geoms.append(bytes(geom.asWkb()))
    assert len(geoms) == 2 and geoms.wkb(0) == bytes(square.asWkb())
    assert geoms.repaired == []  # nothing checked before use
    assert geoms[-1].isGeosValid() and geoms[1].area() == pytest.approx(50.0)
    assert [g.area() for g in geoms] == [1.0, pytest.approx(50.0)]
    assert geoms.repaired == [8]


def test_gpkg_rtree_gives_the_same_candidates_as_a_spatial_index(county, tmp_path):
    from qgis.core import QgsRectangle, QgsSpatialIndex

    from huijiao_plugin.core.compare.engine.reading import GpkgRtree

    dltb = county["DLTB"]
    path = dltb.source().split("|")[0]
    rtree = GpkgRtree.find(path, "DLTB")
    assert rtree is not None
    index = QgsSpatialIndex(dltb.getFeatures())
    extent = dltb.extent()
    for k in range(5):
        x = extent.xMinimum() + k * extent.width() / 5
        rect = QgsRectangle(x, extent.yMinimum(), x + 30.0, extent.yMinimum() + extent.height() / 2)
        assert sorted(rtree.fids(rect)) == sorted(index.intersects(rect))
    assert GpkgRtree.find(path, "NO_SUCH_TABLE") is None
    assert GpkgRtree.find(str(tmp_path / "missing.gpkg"), "DLTB") is None


def test_covered_up_to_noise_and_walk_orientation(qgis_app, tmp_path):
    """``covered``: a patch inside another layer's patch up to the noise (not beyond); ``pairs`` keeps
    (a index, b index) whichever side it walks."""
    path = tmp_path / "cov.gpkg"
    fields = [("BSM", FieldType.String), ("DLBM", FieldType.String), ("ZLDWDM", FieldType.String)]
    base = [
        (rect(0, 0, 100, 100), {"BSM": "1", "DLBM": "0103"}),
        (rect(100, 0, 200, 100), {"BSM": "2", "DLBM": "0103"}),
        (rect(200, 0, 300, 100), {"BSM": "3", "DLBM": "0301"}),
    ]
    dltb = write_layer(path, "DLTB", fields, base)
    pbf = write_layer(
        path,
        "PBF",
        [("BSM", FieldType.String), ("ZLDWDM", FieldType.String)],
        [(noisy(rect(0, 0, 100, 100), 0.4, 1), {"BSM": "p1"}), (rect(103, 0, 200, 100), {"BSM": "p2"})],
    )
    ov = CountyOverlay({"DLTB": dltb, "PBF": pbf})
    covered = ov.covered("DLTB", "PBF", 1.0)
    assert [covered(i) for i in range(3)] == [True, False, False]  # 3 m missing from patch 2; 3 is outside
    assert ov.features("DLTB").buffered(0, -0.5).area() == pytest.approx(99.0 * 99.0)
    assert ov.features("DLTB").buffered(2, 60.0) is not None and ov.features("DLTB").buffered(0, -60) is None
    # one patch selected in DLTB (fewer than PBF's two): the walk runs over DLTB, indices stay (a, b); the
    # noisy p1 reaches ≤ 0.4 m into patch 2: a sliver without the noise rule, skipped with it
    swapped = ov.pairs("PBF", "DLTB", b_pred=lambda j: j == 1, key="one")
    assert [(i, j) for i, j, _ in swapped] == [(0, 1), (1, 1)] and swapped[0][2].area() < 40.0
    swapped = ov.pairs("PBF", "DLTB", b_pred=lambda j: j == 1, key="one", noise=1.0)
    assert [(i, j) for i, j, _ in swapped] == [(1, 1)]
    assert swapped[0][2].area() == pytest.approx(97.0 * 100.0)
    release({"DLTB": dltb, "PBF": pbf})


def summary(result):
    return sorted(
        (p.category, round(p.geom.area(), 3), tuple(sorted(map(str, p.attrs.items())))) for p in result.pieces
    )


def test_curved_and_invalid_geometries_same_answer_on_both_paths(county):
    """shapely cannot read curves: the vectorised path leaves such layers to the per-feature path; invalid
    geometries are repaired (and reported) the same way on both paths."""
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    from huijiao_plugin.core.compare import vectorized

    layer = QgsVectorLayer("CurvePolygon?crs=EPSG:4545&field=BSM:string", "A", "memory")
    shapes = [
        QgsGeometry.fromWkt(
            f"CurvePolygon(CircularString({X0 + 150} {Y0 + 50}, {X0 + 250} {Y0 + 50}, {X0 + 150} {Y0 + 50}))"
        ),
        QgsGeometry.fromWkt(
            f"Polygon(({X0} {Y0}, {X0 + 100} {Y0 + 100}, {X0 + 100} {Y0}, {X0} {Y0 + 100}, {X0} {Y0}))"
        ),  # a bow-tie
        noisy(rect(0, 100, 200, 200), 0.4, 3),
    ]
    features = []
    for k, geom in enumerate(shapes):
        feature = QgsFeature(layer.fields())
        feature.setGeometry(geom)
        feature["BSM"] = f"A{k}"
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    results = {}
    for flag in (True, False):
        vectorized.enabled(flag)
        results[flag] = run_preset("boundarycompare", overlay(county, A=layer, B=county["PBF"]))
    vectorized.enabled(True)
    assert summary(results[True]) == summary(results[False])
    assert results[True].repaired == results[False].repaired == {"A": [2]}
    assert {p.attrs.get("A_ID") for p in results[True].pieces} >= {"A0", "A1", "A2"}


def test_versiondiff_absorbed_sliver_and_survivor_both_reported(tmp_path):
    """A 0.19 m wide sliver patch absorbed by its neighbour in year N+1: the sliver is listed as removed and
    the survivor as a GEOMETRY change (both reported, at the default tolerances too), the policy recorded."""
    from compare_support import DLTB_FIELDS

    attrs = {"DLBM": "0103", "ZZSXDM": "LS", "ZLDWDM": T1 + "0010000000", "SJNF": 2023}
    big, sliver = rect(0, 0, 100, 100), rect(100, 0, 100.19, 100)
    assert sliver.area() / sliver.length() < 0.1  # a sliver by the profile's MIN_WIDTH
    old = write_layer(
        tmp_path / "d.gpkg",
        "DLTB",
        DLTB_FIELDS,
        [(big, dict(attrs, BSM="O1")), (sliver, dict(attrs, BSM="O2"))],
    )
    merged = big.combine(sliver)
    new = write_layer(
        tmp_path / "d.gpkg", "DLTB_N1", DLTB_FIELDS, [(merged, dict(attrs, BSM="N1", SJNF=2024))]
    )
    for options in (CompareOptions(), CompareOptions(min_area=0.0, min_width=0.0, noise_width=0.0)):
        result = run_preset("versiondiff", CountyOverlay({"DLTB": old, "DLTB_N1": new}), options)
        rows = sorted((p.category, p.attrs["OLD_ID"], p.attrs["changed_fields"]) for p in result.pieces)
        assert rows == [("modified", "O1", "GEOMETRY"), ("removed", "O2", "")]
        assert "both reported" in result.provenance["rule_profile"]["values"]["versiondiff_slivers"]
