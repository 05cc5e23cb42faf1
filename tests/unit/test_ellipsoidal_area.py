"""三调 ellipsoidal area (domain.md §5): test vectors, zone detection, rings, densification, units."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCoordinateTransformContext,
    QgsDistanceArea,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
)

from huijiao_plugin.core.ellipsoidal_area import (
    CGCS2000,
    EllipsoidalAreaCalculator,
    area_constants,
    ellipsoidal_area,
    ellipsoidal_areas,
    gauss_kruger_for_epsg,
    gauss_kruger_from_proj,
    gk_inverse,
)
from huijiao_plugin.core.farmland_fields import (
    TkxsTable,
    fill_deductions,
    load_tkxs_table,
)
from huijiao_plugin.core.units import (
    M2_PER_MU,
    convert_area,
    format_area,
    m2_to_ha,
    m2_to_mu,
    round_half_up,
    round_half_up_array,
)

pytestmark = pytest.mark.usefixtures("qgis_app")

CELL_1DEG = "POLYGON((108 34,109 34,109 35,108 35,108 34))"
CELL_001DEG = "POLYGON((108.90 34.25,108.91 34.25,108.91 34.26,108.90 34.26,108.90 34.25))"
SQUARE_4545 = "POLYGON((580000 3800000,581000 3800000,581000 3801000,580000 3801000,580000 3800000))"
SQUARE_4524 = (
    "POLYGON((36580000 3800000,36581000 3800000,36581000 3801000,36580000 3801000,36580000 3800000))"
)
PENTAGON_4524 = (
    "POLYGON((36506000 3794000,36506420.5 3794030.25,36506510.75 3794380.5,36506200 3794560,"
    "36505950.25 3794300.75,36506000 3794000))"
)


def crs(code: str) -> QgsCoordinateReferenceSystem:
    result = QgsCoordinateReferenceSystem(code)
    assert result.isValid()
    return result


def geom(wkt: str) -> QgsGeometry:
    g = QgsGeometry.fromWkt(wkt)
    assert not g.isNull(), wkt
    return g


def shifted(wkt: str, dx: float) -> QgsGeometry:
    g = geom(wkt)
    g.translate(dx, 0)
    return g


def unrounded(calc: EllipsoidalAreaCalculator, g: QgsGeometry) -> float:
    return float(calc.unrounded_areas_wkb([bytes(g.asWkb())])[0])


# --- §5.1 constants and §5.3 test vectors ------------------------------------------------------------------


def test_series_constants_match_domain_values():
    a_, b_, c_, d_, e_ = area_constants(CGCS2000.e2)
    assert a_ == pytest.approx(1.0033640898341927, rel=1e-15)
    assert b_ == pytest.approx(0.0011241893819271072, rel=1e-13)
    assert c_ == pytest.approx(1.6994594735188535e-06, rel=1e-12)
    assert d_ == pytest.approx(2.717857845577432e-09, rel=1e-12)
    assert e_ == pytest.approx(4.358419004834252e-12, rel=1e-12)
    assert CGCS2000.b == pytest.approx(6356752.314140356, abs=1e-6)


def test_one_degree_cell_in_4490():
    assert ellipsoidal_area(geom(CELL_1DEG), crs("EPSG:4490")) == 10187811966.48


def test_hundredth_degree_cell_in_4490():
    assert ellipsoidal_area(geom(CELL_001DEG), crs("EPSG:4490")) == 1021724.35


def test_km_square_edge_sum_in_4545_and_4524():
    plain = EllipsoidalAreaCalculator(crs("EPSG:4545"), densify_m=0)
    prefixed = EllipsoidalAreaCalculator(crs("EPSG:4524"), densify_m=0)
    assert plain.area(geom(SQUARE_4545)) == 999840.33
    assert prefixed.area(geom(SQUARE_4524)) == 999840.33
    # densified (default 70 m) the km square stays at the geodesic value
    assert ellipsoidal_area(geom(SQUARE_4545), crs("EPSG:4545")) == 999840.33
    assert ellipsoidal_area(geom(SQUARE_4524), crs("EPSG:4524")) == 999840.33


def test_pentagon_with_and_without_densification():
    g = geom(PENTAGON_4524)
    undensified = EllipsoidalAreaCalculator(crs("EPSG:4524"), densify_m=0)
    densified = EllipsoidalAreaCalculator(crs("EPSG:4524"))
    assert undensified.area(g) == 221239.79
    assert densified.area(g) == 221239.82
    assert unrounded(densified, g) == pytest.approx(221239.8158, abs=0.01)
    # the same pentagon without the zone prefix, in EPSG:4545
    assert ellipsoidal_area(shifted(PENTAGON_4524, -36_000_000), crs("EPSG:4545")) == 221239.82


def test_pentagon_agrees_with_qgsdistancearea_cgcs2000():
    g = geom(PENTAGON_4524)
    da = QgsDistanceArea()
    da.setSourceCrs(crs("EPSG:4524"), QgsCoordinateTransformContext())
    assert da.setEllipsoid("EPSG:1024")
    reference = da.measureArea(g)
    assert reference == pytest.approx(221239.82, abs=0.01)
    assert ellipsoidal_area(g, crs("EPSG:4524")) == pytest.approx(reference, abs=0.05)


# --- Gauss-Krüger inverse -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("projected", "geographic"),
    [
        ("EPSG:4545", "EPSG:4490"),
        ("EPSG:4497", "EPSG:4490"),
        ("EPSG:2360", "EPSG:4610"),
        ("EPSG:2412", "EPSG:4214"),
    ],
)
def test_gk_inverse_matches_proj(projected, geographic):
    proj = gauss_kruger_for_epsg(int(projected.split(":")[1]))
    ct = QgsCoordinateTransform(crs(projected), crs(geographic), QgsProject.instance())
    rng = np.random.default_rng(7)
    half_width = 300_000 if proj.x0 % 1e6 == 500000 and proj.lon0 % 6 == 3 else 160_000
    xs = proj.x0 + rng.uniform(-half_width, half_width, 200)
    ys = rng.uniform(3_500_000, 4_400_000, 200)
    lon, lat = gk_inverse(xs, ys, proj)
    for x, y, lo, la in zip(xs, ys, lon, lat):
        p = ct.transform(QgsPointXY(x, y))
        assert abs(p.x() - lo) < 1e-9
        assert abs(p.y() - la) < 1e-9


# --- zone detection ---------------------------------------------------------------------------------------


def test_epsg_table_agrees_with_proj_definitions():
    codes = [
        *range(4491, 4555),
        *range(2327, 2391),
        *range(2401, 2443),
        *range(21413, 21424),
        *range(21453, 21464),
    ]
    for code in codes:
        from_table = gauss_kruger_for_epsg(code)
        from_proj = gauss_kruger_from_proj(crs(f"EPSG:{code}").toProj())
        assert from_table is not None and from_proj is not None, code
        assert (from_table.lon0, from_table.x0, from_table.y0, from_table.k0) == (
            from_proj.lon0,
            from_proj.x0,
            from_proj.y0,
            from_proj.k0,
        ), code
        assert from_table.ellipsoid.a == from_proj.ellipsoid.a, code
        assert from_table.ellipsoid.f == pytest.approx(from_proj.ellipsoid.f, rel=1e-12), code


@pytest.mark.parametrize(
    ("code", "lon0", "x0", "a"),
    [
        ("EPSG:4545", 108.0, 500000.0, 6378137.0),  # 3°, no prefix
        ("EPSG:4524", 108.0, 36500000.0, 6378137.0),  # 3°, zone 36
        ("EPSG:4497", 111.0, 19500000.0, 6378137.0),  # 6°, zone 19
        ("EPSG:4508", 111.0, 500000.0, 6378137.0),  # 6°, no prefix
        ("EPSG:2360", 108.0, 36500000.0, 6378140.0),  # Xian 80
        ("EPSG:2433", 108.0, 500000.0, 6378245.0),  # Beijing 54
        ("EPSG:32649", 111.0, 500000.0, 6378137.0),  # UTM 49N, parsed from the PROJ string
    ],
)
def test_zone_from_crs(code, lon0, x0, a):
    calc = EllipsoidalAreaCalculator(crs(code))
    assert calc.mode == "gk"
    assert calc.projection.lon0 == lon0
    assert calc.projection.x0 == x0
    assert calc.ellipsoid.a == a


def test_custom_tmerc_crs_is_parsed():
    custom = QgsCoordinateReferenceSystem.fromProj(
        "+proj=tmerc +lat_0=0 +lon_0=109.5 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m +no_defs"
    )
    calc = EllipsoidalAreaCalculator(custom)
    assert calc.mode == "gk"
    assert calc.projection.lon0 == 109.5


def test_unknown_crs_uses_8_digit_zone_prefix():
    no_crs = QgsCoordinateReferenceSystem()
    calc = EllipsoidalAreaCalculator(no_crs, densify_m=0)
    assert calc.mode == "auto"
    assert calc.area(geom(SQUARE_4524)) == 999840.33
    assert calc.area(geom(PENTAGON_4524)) == 221239.79
    assert ellipsoidal_area(geom(PENTAGON_4524), None) == 221239.82


def test_unknown_crs_6_degree_prefix():
    # zone 19 (6°, CM 111): the same patch as in EPSG:4508 (no prefix)
    wkt6 = "POLYGON((19480000 3800000,19481200 3800000,19481200 3800700,19480000 3800300,19480000 3800000))"
    expected = ellipsoidal_area(shifted(wkt6, -19_000_000), crs("EPSG:4508"))
    assert ellipsoidal_area(geom(wkt6), crs("EPSG:4497")) == expected
    assert ellipsoidal_area(geom(wkt6), QgsCoordinateReferenceSystem()) == expected
    # the distance from the central meridian matters: 20 km further east is a different area
    assert abs(ellipsoidal_area(shifted(wkt6, 20_000), QgsCoordinateReferenceSystem()) - expected) > 1.0


def test_unknown_crs_with_6_digit_easting_is_an_error():
    with pytest.raises(ValueError, match="zone"):
        ellipsoidal_area(geom(SQUARE_4545), QgsCoordinateReferenceSystem())


def test_prefixed_data_labelled_unprefixed_uses_the_prefix():
    assert ellipsoidal_area(geom(PENTAGON_4524), crs("EPSG:4545")) == 221239.82
    # and unprefixed data labelled with the prefixed CRS of the same zone
    assert ellipsoidal_area(shifted(PENTAGON_4524, -36_000_000), crs("EPSG:4524")) == 221239.82
    # 7-digit eastings (northing and easting swapped) fit no zone
    swapped = geom("POLYGON((3794000 506000,3794030 506420,3794380 506510,3794000 506000))")
    with pytest.raises(ValueError, match="swapped"):
        ellipsoidal_area(swapped, crs("EPSG:4545"))


def test_projected_coordinates_under_a_geographic_crs_use_the_zone_prefix():
    # a file without CRS that QGIS opened as EPSG:4326, or data mislabelled as EPSG:4490
    assert ellipsoidal_area(geom(PENTAGON_4524), crs("EPSG:4490")) == 221239.82
    assert ellipsoidal_area(geom(PENTAGON_4524), crs("EPSG:4326")) == 221239.82


def test_xian80_uses_its_own_ellipsoid():
    g = shifted(PENTAGON_4524, 0)
    area_xian = ellipsoidal_area(g, crs("EPSG:2360"))
    da = QgsDistanceArea()
    da.setSourceCrs(crs("EPSG:2360"), QgsCoordinateTransformContext())
    assert da.setEllipsoid("EPSG:7049")  # IAU 1976
    assert area_xian == pytest.approx(da.measureArea(g), abs=0.05)
    calc = EllipsoidalAreaCalculator(crs("EPSG:2360"))
    assert (calc.ellipsoid.a, 1 / calc.ellipsoid.f) == (6378140.0, pytest.approx(298.257))


def test_other_crs_is_transformed_to_4490():
    g = geom(PENTAGON_4524)
    to_wgs84 = QgsCoordinateTransform(crs("EPSG:4524"), crs("EPSG:4326"), QgsProject.instance())
    g84 = QgsGeometry(g)
    g84.transform(to_wgs84)
    calc = EllipsoidalAreaCalculator(crs("EPSG:4326"))
    assert calc.mode == "transform"
    # WGS 84 → CGCS2000 is a null transformation in PROJ: same value as the lon/lat in 4490
    assert calc.area(g84) == ellipsoidal_area(g84, crs("EPSG:4490"))
    # edges straight in lon/lat are not the straight Gauss-Krüger edges: a few 0.01 m² apart
    assert calc.area(g84) == pytest.approx(221239.82, abs=0.2)
    to_merc = QgsCoordinateTransform(crs("EPSG:4524"), crs("EPSG:3857"), QgsProject.instance())
    gm = QgsGeometry(g)
    gm.transform(to_merc)
    assert ellipsoidal_area(gm, crs("EPSG:3857")) == pytest.approx(221239.82, abs=0.2)


# --- rings, parts, geometry types ------------------------------------------------------------------------

OUTER = "(500000 3800000,500300 3800000,500300 3800200,500000 3800200,500000 3800000)"
HOLE = "(500100 3800050,500100 3800150,500200 3800150,500200 3800050,500100 3800050)"
OTHER = "(501000 3800000,501100 3800000,501100 3800100,501000 3800000)"


def test_hole_is_subtracted_whatever_the_orientation():
    c = crs("EPSG:4545")
    outer = ellipsoidal_area(geom(f"POLYGON({OUTER})"), c)
    hole = ellipsoidal_area(geom(f"POLYGON({HOLE})"), c)
    with_hole = ellipsoidal_area(geom(f"POLYGON({OUTER},{HOLE})"), c)
    assert outer == pytest.approx(59999.5, abs=1.0)
    assert with_hole == pytest.approx(outer - hole, abs=0.011)
    reversed_outer = "(500000 3800000,500000 3800200,500300 3800200,500300 3800000,500000 3800000)"
    assert ellipsoidal_area(geom(f"POLYGON({reversed_outer},{HOLE})"), c) == with_hole


def test_multipolygon_parts_are_summed():
    c = crs("EPSG:4545")
    first = ellipsoidal_area(geom(f"POLYGON({OUTER},{HOLE})"), c)
    second = ellipsoidal_area(geom(f"POLYGON({OTHER})"), c)
    multi = ellipsoidal_area(geom(f"MULTIPOLYGON((({OUTER[1:-1]}),({HOLE[1:-1]})),(({OTHER[1:-1]})))"), c)
    assert multi == pytest.approx(first + second, abs=0.011)
    assert second == pytest.approx(5000, rel=1e-3)


def test_z_m_and_curved_polygons():
    c = crs("EPSG:4545")
    flat = ellipsoidal_area(geom(f"POLYGON({OUTER})"), c)
    zm = (
        "POLYGON ZM((500000 3800000 5 1,500300 3800000 5 1,500300 3800200 6 1,"
        "500000 3800200 7 1,500000 3800000 5 1))"
    )
    assert ellipsoidal_area(geom(zm), c) == flat
    curved = geom(
        "CURVEPOLYGON(CIRCULARSTRING(500000 3800000,500100 3800100,500200 3800000,"
        "500100 3799900,500000 3800000))"
    )
    assert ellipsoidal_area(curved, c) == pytest.approx(math.pi * 100**2, rel=2e-3)


def test_empty_null_and_non_polygon_geometries():
    c = crs("EPSG:4545")
    assert ellipsoidal_area(QgsGeometry(), c) == 0.0
    assert ellipsoidal_area(geom("POLYGON EMPTY"), c) == 0.0
    assert ellipsoidal_area(geom("MULTIPOLYGON EMPTY"), c) == 0.0
    with pytest.raises(ValueError, match="not a polygon"):
        ellipsoidal_area(geom("POINT(500000 3800000)"), c)
    with pytest.raises(ValueError, match="not a polygon"):
        ellipsoidal_area(geom("LINESTRING(500000 3800000,500100 3800000)"), c)


def test_invalid_geometry_is_computed_ring_by_ring():
    c = crs("EPSG:4545")
    # a symmetric bow-tie: the two lobes have opposite orientation, the ring sum cancels
    bowtie = geom("POLYGON((500000 3800000,500100 3800100,500100 3800000,500000 3800100,500000 3800000))")
    assert not bowtie.isGeosValid()
    assert ellipsoidal_area(bowtie, c) == pytest.approx(0.0, abs=0.02)
    # a hole outside its shell is still subtracted
    outside = geom(f"POLYGON({OUTER},(501000 3800000,501000 3800100,501100 3800100,501000 3800000))")
    expected = ellipsoidal_area(geom(f"POLYGON({OUTER})"), c) - ellipsoidal_area(geom(f"POLYGON({OTHER})"), c)
    assert ellipsoidal_area(outside, c) == pytest.approx(expected, abs=0.011)


def test_batches_split_anywhere_give_the_same_areas(monkeypatch):
    import huijiao_plugin.core.ellipsoidal_area as module

    c = crs("EPSG:4524")
    geoms = [shifted(PENTAGON_4524, 1000.0 * i) for i in range(9)] + [geom(SQUARE_4524), QgsGeometry()]
    whole = EllipsoidalAreaCalculator(c).areas(geoms)
    monkeypatch.setattr(module, "BATCH_SIZE", 4)
    assert EllipsoidalAreaCalculator(c).areas(iter(geoms)) == whole
    assert whole[-2:] == [999840.33, 0.0]


def test_batched_areas_equal_single_areas():
    c = crs("EPSG:4545")
    calc = EllipsoidalAreaCalculator(c)
    rng = np.random.default_rng(3)
    geoms = [geom(f"POLYGON({OUTER},{HOLE})"), QgsGeometry(), geom(f"POLYGON({OTHER})")]
    for _ in range(60):
        cx, cy = rng.uniform(420000, 580000), rng.uniform(3.6e6, 3.9e6)
        n = int(rng.integers(5, 30))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = rng.uniform(20, 400, n)
        geoms.append(
            QgsGeometry.fromPolygonXY(
                [[QgsPointXY(cx + a * math.cos(t), cy + a * math.sin(t)) for t, a in zip(ang, r)]]
            )
        )
    batched = calc.areas(geoms)
    assert batched == [calc.area(g) for g in geoms]
    assert batched == ellipsoidal_areas(geoms, c)
    assert all(isinstance(v, float) for v in batched)


# --- densification ---------------------------------------------------------------------------------------


def long_edged_patch(x0: float, dx: float, dy: float, width: float = 100.0) -> QgsGeometry:
    """One long straight edge A→B, back along a parallel line made of 50 m edges (≈ len × width m²)."""
    length = math.hypot(dx, dy)
    ux, uy = dx / length, dy / length
    nx, ny = -uy, ux
    a = (x0, 3800000.0)
    b = (x0 + dx, 3800000.0 + dy)
    n = int(length / 50)
    back = [
        (b[0] + nx * width - ux * length * i / n, b[1] + ny * width - uy * length * i / n)
        for i in range(n + 1)
    ]
    return QgsGeometry.fromPolygonXY([[QgsPointXY(*p) for p in [a, b, *back, a]]])


@pytest.mark.parametrize(("dx", "dy"), [(4000.0, 3000.0), (5000.0, 0.0)])
def test_densification_matters_on_long_edges(dx, dy):
    c = crs("EPSG:4545")
    g = long_edged_patch(600000.0, dx, dy, width=200.0)
    undensified = EllipsoidalAreaCalculator(c, densify_m=0).area(g)
    densified = EllipsoidalAreaCalculator(c).area(g)
    reference = unrounded(EllipsoidalAreaCalculator(c, densify_m=1.0, vertex_grid_m=0), g)
    assert abs(undensified - reference) > 100.0
    assert abs(densified - reference) < 0.2


# --- units and 田坎 deductions ---------------------------------------------------------------------------


def test_units():
    assert abs(M2_PER_MU - 666.6666666666666) < 1e-9
    assert m2_to_mu(2000) == pytest.approx(3.0)
    assert m2_to_ha(15000) == 1.5
    assert convert_area(10000, "mu") == pytest.approx(15.0)
    assert convert_area(123.45, "m2") == 123.45
    assert format_area(1000, "mu") == "1.50 亩"
    assert format_area(12345.678, "ha") == "1.2346 公顷"
    assert format_area(0.005, "m2") == "0.01 m²"
    assert format_area(-0.001, "m2", with_symbol=False) == "0.00"
    with pytest.raises(ValueError):
        format_area(1.0, "acre")


def test_round_half_up():
    assert round_half_up(2.675, 2) == 2.68  # round() gives 2.67 (binary 2.67499…)
    assert round_half_up(1.005, 2) == 1.01
    assert round_half_up(-2.675, 2) == -2.68
    assert round_half_up(0.125, 2) == 0.13
    assert round_half_up(2.5, 0) == 3.0
    assert round_half_up(1.23444, 4) == 1.2344
    values = np.array([2.675, 1.005, -2.675, 0.125, 1.23444, np.nan])
    rounded = round_half_up_array(values, 2)
    assert rounded[:5].tolist() == [2.68, 1.01, -2.68, 0.13, 1.23]
    assert np.isnan(rounded[5])
    assert round_half_up_array(np.array([1.23445]), 4).tolist() == [1.2345]


def test_fill_deductions():
    assert fill_deductions(1234.56, 0.1) == (123.46, 1111.10)
    assert fill_deductions(1000.0, 0.0) == (0.0, 1000.0)
    kcmj, tbdlmj = fill_deductions(333.33, 0.0567)
    assert kcmj == 18.9
    assert tbdlmj == round_half_up(333.33 - 18.9, 2)
    with pytest.raises(ValueError):
        fill_deductions(100.0, 1.0)


def test_bad_tkxs_table_is_rejected(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"values": {"2PD": 1.5}}', encoding="utf-8")
    with pytest.raises(ValueError, match="2PD"):
        load_tkxs_table(str(bad))
    with pytest.raises(OSError):
        load_tkxs_table(str(tmp_path / "missing.json"))


def test_default_tkxs_table(tmp_path):
    table = load_tkxs_table()
    assert table.lookup("1", "") == 0.0
    assert 0 < table.lookup("2", "TT") <= table.lookup("2", "PD") < table.lookup("5", "PD") < 1
    assert table.lookup(" 3 ", "pd") == table.lookup("3", "PD")
    assert table.lookup("9", "PD") is None
    override = tmp_path / "tkxs.json"
    override.write_text('{"values": {"2PD": 0.07, "3PD": 0.11}}', encoding="utf-8")
    custom = load_tkxs_table(str(override))
    assert isinstance(custom, TkxsTable)
    assert custom.lookup("2", "PD") == 0.07
    assert custom.lookup("4", "PD") == table.lookup("4", "PD")  # not overridden: default kept
