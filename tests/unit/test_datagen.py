"""Invariants of the synthetic county generator (tests.datagen) on the small session county (1500)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter, defaultdict

import pytest
from osgeo import ogr

from tests.datagen import codes, generate_county
from tests.datagen.gpkg import shapefile_recoding

ogr.UseExceptions()

ALL_LAYERS = (
    "DLTB",
    "DLTB_N1",
    "XZQ",
    "CJDCQ",
    "YJJBNTBHTB",
    "GDBHMB",
    "STBHHX",
    "YZGHQ",
    "GBZNT",
    "TRHJZL",
    "GDZLDJ",
    "JCTB",
    "BCGD",
)


def _features(path, layer):
    ds = ogr.Open(str(path))
    lyr = ds.GetLayerByName(layer)
    defn = lyr.GetLayerDefn()
    names = [defn.GetFieldDefn(k).GetName() for k in range(defn.GetFieldCount())]
    out = []
    for f in lyr:
        row = {n: f.GetField(n) for n in names}
        g = f.GetGeometryRef()
        row["_geom"] = g.Clone() if g is not None else None
        out.append(row)
    return out


@pytest.fixture(scope="module")
def county(demo_county):
    return demo_county


@pytest.fixture(scope="module")
def dltb(county):
    return _features(county.gpkg, "DLTB")


@pytest.fixture(scope="module")
def dltb_n1(county):
    return _features(county.gpkg, "DLTB_N1")


def _union_area(rows):
    coll = ogr.Geometry(ogr.wkbMultiPolygon)
    for r in rows:
        g = r["_geom"]
        if g.GetGeometryType() == ogr.wkbMultiPolygon:
            for k in range(g.GetGeometryCount()):
                coll.AddGeometry(g.GetGeometryRef(k))
        else:
            coll.AddGeometry(g)
    return coll.UnionCascaded().GetArea()


def _surface_area(geom):
    """Area of the polygons in ``geom``: GDAL >= 3.13 gives a closed line the area it encloses (with a
    warning), older GDAL 0, and two patches touching along a whole ring intersect in such a line."""
    flat = ogr.GT_Flatten(geom.GetGeometryType())
    if flat in (ogr.wkbPolygon, ogr.wkbMultiPolygon):
        return geom.GetArea()
    if flat == ogr.wkbGeometryCollection:
        return sum(_surface_area(geom.GetGeometryRef(k)) for k in range(geom.GetGeometryCount()))
    return 0.0


def _overlapping_pairs(rows, min_area=1e-6):
    """Pairs of features whose intersection has an area above min_area (envelope pre-filter)."""
    env = [r["_geom"].GetEnvelope() for r in rows]
    order = sorted(range(len(rows)), key=lambda k: env[k][0])
    bad = []
    for a_pos, a in enumerate(order):
        ax0, ax1, ay0, ay1 = env[a]
        for b in order[a_pos + 1 :]:
            bx0, bx1, by0, by1 = env[b]
            if bx0 > ax1:
                break
            if by0 > ay1 or by1 < ay0:
                continue
            inter = rows[a]["_geom"].Intersection(rows[b]["_geom"])
            if inter is not None and _surface_area(inter) > min_area:
                bad.append((a, b, _surface_area(inter)))
    return bad


def test_layers_crs_and_location(county):
    ds = ogr.Open(str(county.gpkg))
    names = {ds.GetLayerByIndex(k).GetName() for k in range(ds.GetLayerCount())}
    assert set(ALL_LAYERS) | {"GENERATOR_CHANGES", "GENERATOR_INFO"} <= names
    for name in ALL_LAYERS:
        lyr = ds.GetLayerByName(name)
        assert lyr.GetFeatureCount() > 0, name
        srs = lyr.GetSpatialRef()
        assert srs.GetAuthorityCode(None) == "4545", name
        minx, maxx, miny, maxy = lyr.GetExtent()
        assert 440000 < minx < maxx < 560000, name
        assert 3.70e6 < miny < maxy < 3.86e6, name
        invalid = [f.GetFID() for f in lyr if not f.GetGeometryRef().IsValid()]
        assert invalid == [], name
    assert ds.GetLayerByName("DLTB").GetFeatureCount() == county.size == 1500
    assert county.county_code == "610431"


def test_dltb_is_a_partition(county, dltb):
    assert all(r["_geom"].IsValid() for r in dltb)
    planar_sum = sum(r["_geom"].GetArea() for r in dltb)
    outline = _union_area(dltb)
    assert abs(planar_sum - outline) < 0.01
    # the township and village layers tile the same outline
    xzq = _features(county.gpkg, "XZQ")
    assert abs(sum(r["_geom"].GetArea() for r in xzq) - outline) < 0.01
    assert _overlapping_pairs(dltb) == []


def test_partition_ellipsoidal_area(county, dltb):
    from tests.datagen.geometry import AreaCalc

    calc = AreaCalc(4545)
    unrounded = calc.unrounded([bytes(r["_geom"].ExportToIsoWkb()) for r in dltb])
    xzq = _features(county.gpkg, "XZQ")
    outline = calc.unrounded([bytes(r["_geom"].ExportToIsoWkb()) for r in xzq]).sum()
    assert abs(unrounded.sum() - outline) < 0.01
    # TBMJ is rounded per patch: the sum differs from the outline by at most 0.005 m² per patch
    assert abs(sum(r["TBMJ"] for r in dltb) - outline) <= 0.005 * len(dltb)
    assert abs(sum(r["JSMJ"] for r in xzq) - outline) <= 0.005 * len(xzq) + 1e-6


def test_tbmj_is_the_ellipsoidal_area(dltb):
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransformContext,
        QgsDistanceArea,
        QgsGeometry,
    )

    from huijiao_plugin.core.ellipsoidal_area import EllipsoidalAreaCalculator

    crs = QgsCoordinateReferenceSystem("EPSG:4545")
    geoms = []
    for r in dltb:
        g = QgsGeometry()
        g.fromWkb(bytes(r["_geom"].ExportToIsoWkb()))
        geoms.append(g)
    expected = EllipsoidalAreaCalculator(crs).areas(geoms)
    assert [r["TBMJ"] for r in dltb] == expected
    # independent check: QGIS geodesic area on the CGCS2000 (GRS80) ellipsoid
    da = QgsDistanceArea()
    da.setSourceCrs(crs, QgsCoordinateTransformContext())
    da.setEllipsoid("EPSG:7019")
    for r, g in zip(dltb[:300], geoms[:300]):  # noqa: B905
        assert abs(da.measureArea(g) - r["TBMJ"]) < max(0.1, 1e-5 * r["TBMJ"])
    # the planar Gauss-Krüger area is larger than the ellipsoidal one away from the central meridian (§5.3 c)
    planar = sum(r["_geom"].GetArea() for r in dltb)
    assert planar - sum(r["TBMJ"] for r in dltb) > 2e-6 * planar


def test_codes_in_their_domains(county, dltb):
    villages = {r["ZLDWDM"]: r for r in _features(county.gpkg, "CJDCQ")}
    bsms = [r["BSM"] for r in dltb]
    assert len(set(bsms)) == len(bsms)
    assert all(len(b) == 18 and b.startswith("610431") for b in bsms)
    tbbh = Counter((r["ZLDWDM"], r["TBBH"]) for r in dltb)
    assert max(tbbh.values()) == 1
    farm_zzsx = Counter()
    for r in dltb:
        code = r["DLBM"]
        assert code in codes.DLMC and r["DLMC"] == codes.DLMC[code]
        assert r["YSDM"] == "2001010100"
        assert r["QSXZ"] in codes.QSXZ
        for key in ("ZLDWDM", "QSDWDM"):
            assert len(r[key]) == 19 and r[key].startswith("610431") and r[key].isdigit()
        assert r["ZLDWDM"].endswith("0000000") and r["ZLDWDM"] in villages
        assert r["ZLDWMC"] == villages[r["ZLDWDM"]]["ZLDWMC"]
        assert r["SJNF"] == county.year
        farmland = code in codes.FARMLAND
        if farmland:
            assert r["GDPDJB"] in codes.GDPDJB
            assert (r["GDLX"] == "") if r["GDPDJB"] == "1" else (r["GDLX"] in codes.GDLX)
            assert 1 <= r["GDDB"] <= 15
            assert r["ZZSXDM"] in codes.ZZSX_FARMLAND
            farm_zzsx[r["ZZSXDM"]] += 1
        else:
            assert r["GDPDJB"] == "" and r["GDLX"] == "" and r["GDDB"] == 0
            if r["ZZSXDM"]:
                assert r["ZZSXDM"] in ("JKHF", "GCHF") and code.rstrip("K") in codes.RECOVERABLE
        assert r["ZZSXMC"] == codes.ZZSX.get(r["ZZSXDM"], "")
        if r["TBXHDM"]:
            assert code in codes.TBXH_APPLIES[r["TBXHDM"]] and r["TBXHMC"] == codes.TBXH[r["TBXHDM"]]
        assert r["CZCSXM"] in ("", *codes.CZCSXM)
        if r["CZCSXM"]:
            assert code in codes.CONSTRUCTION or code == "1201"
        assert r["FRDBS"] in ("", "1")
        if r["FRDBS"] == "1":
            assert r["QSDWDM"] != r["ZLDWDM"]
        if r["XZDWKD"]:
            assert code in codes.LINEAR
    assert farm_zzsx["LS"] > sum(farm_zzsx.values()) / 2
    assert len(farm_zzsx) >= 4
    # the optional codes occur, but only on a few patches
    for key in ("FRDBS", "TBXHDM", "CZCSXM"):
        used = sum(1 for r in dltb if r[key])
        assert 0 < used < len(dltb) / 4, key
    assert any(r["ZZSXDM"] in ("JKHF", "GCHF") for r in dltb)
    shares = Counter(r["DLBM"][:2] for r in dltb)
    farm_area = sum(r["TBMJ"] for r in dltb if r["DLBM"] in codes.FARMLAND)
    assert 0.30 < farm_area / sum(r["TBMJ"] for r in dltb) < 0.65
    assert {"01", "02", "03", "04", "07", "10", "11"} <= set(shares)


def test_deductions_follow_the_rules(dltb):
    from huijiao_plugin.core.farmland_fields import load_tkxs_table

    table = load_tkxs_table()
    for r in dltb:
        if r["DLBM"] in codes.FARMLAND:
            assert r["KCXS"] == pytest.approx(table.lookup(r["GDPDJB"], r["GDLX"]))
        else:
            assert r["KCXS"] == 0
        assert (r["KCDLBM"] == "1203") == (r["KCXS"] > 0)
        kcmj = round(r["TBMJ"] * r["KCXS"] + 1e-9, 2)
        assert r["KCMJ"] == pytest.approx(kcmj, abs=0.0051)
        assert r["TBDLMJ"] == pytest.approx(r["TBMJ"] - r["KCMJ"], abs=1e-6)
    assert any(r["KCMJ"] > 0 for r in dltb)


def test_admin_units_nest(county, dltb):
    xzq = _features(county.gpkg, "XZQ")
    cj = _features(county.gpkg, "CJDCQ")
    towns = {r["XZQDM"] for r in xzq}
    assert all(len(t) == 9 and t.startswith("610431") for t in towns)
    planar = defaultdict(float)
    tbmj = defaultdict(float)
    for r in dltb:
        planar[r["ZLDWDM"]] += r["_geom"].GetArea()
        tbmj[r["ZLDWDM"]] += r["TBMJ"]
    for v in cj:
        assert v["ZLDWDM"][:9] in towns
        assert abs(v["_geom"].GetArea() - planar[v["ZLDWDM"]]) < 0.01
        assert v["DCMJ"] == pytest.approx(tbmj[v["ZLDWDM"]], abs=0.011)


def _attr_digest(path):
    con = sqlite3.connect(str(path))
    h = hashlib.sha256()
    tables = [r[0] for r in con.execute("SELECT table_name FROM gpkg_contents ORDER BY table_name")]
    for t in tables:
        cols = [r[1] for r in con.execute(f'PRAGMA table_info("{t}")') if r[1] != "geom"]
        for row in con.execute(
            f'SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} FROM "{t}" ORDER BY fid'
        ):
            h.update(repr(row).encode("utf-8"))
    con.close()
    return h.hexdigest()


def test_same_seed_same_bytes(tmp_path):
    a = generate_county(tmp_path / "a", size=600, seed=11, formats=("gpkg",))
    b = generate_county(tmp_path / "b", size=600, seed=11, formats=("gpkg",))
    c = generate_county(tmp_path / "c", size=600, seed=12, formats=("gpkg",))
    assert _attr_digest(a.gpkg) == _attr_digest(b.gpkg)
    assert _attr_digest(a.gpkg) != _attr_digest(c.gpkg)
    ga = [r["_geom"].ExportToIsoWkb() for r in _features(a.gpkg, "DLTB")]
    gb = [r["_geom"].ExportToIsoWkb() for r in _features(b.gpkg, "DLTB")]
    assert ga == gb
    assert len(ga) == 600


def test_year_n1_changes(county, dltb, dltb_n1):
    changes = _features(county.gpkg, "GENERATOR_CHANGES")
    by_bsm_n = {r["BSM"]: r for r in dltb}
    by_bsm_n1 = {r["BSM"]: r for r in dltb_n1}
    involved = set()
    kinds = Counter()
    for c in changes:
        old = c["OLD_BSM"].split(",")
        new = c["NEW_BSM"].split(",")
        involved.update(old)
        kinds[c["CHANGE_TYPE"]] += 1
        assert all(b in by_bsm_n for b in old) and all(b in by_bsm_n1 for b in new)
        old_area = sum(by_bsm_n[b]["_geom"].GetArea() for b in old)
        new_area = sum(by_bsm_n1[b]["_geom"].GetArea() for b in new)
        assert old_area == pytest.approx(new_area, abs=1e-4)
        if c["CHANGE_TYPE"] == "split":
            assert len(old) == 1 and len(new) == 2
            assert c["OLD_DLBM"] == by_bsm_n[old[0]]["DLBM"]
        elif c["CHANGE_TYPE"] == "merge":
            assert len(old) == 2 and len(new) == 1
            assert by_bsm_n[old[0]]["DLBM"] == by_bsm_n[old[1]]["DLBM"] == by_bsm_n1[new[0]]["DLBM"]
        elif c["CHANGE_TYPE"] == "class_change":
            assert by_bsm_n[old[0]]["DLBM"] != by_bsm_n1[new[0]]["DLBM"]
            assert old[0] not in by_bsm_n1
        elif c["CHANGE_TYPE"] == "attribute_change":
            assert old == new and by_bsm_n[old[0]]["ZZSXDM"] != by_bsm_n1[new[0]]["ZZSXDM"]
    assert {"class_change", "split", "merge", "attribute_change"} <= set(kinds)
    assert any(
        c["OLD_DLBM"] in codes.FARMLAND
        and c["NEW_DLBM"] in ("0702", "0601", "1003", "05H1", "0508", "08H2", "1202")
        for c in changes
    )
    assert 0.01 <= len(involved) / len(dltb) <= 0.03
    # unchanged patches: identical rows and geometry
    unchanged = [b for b in by_bsm_n if b not in involved]
    for b in unchanged:
        r0, r1 = by_bsm_n[b], by_bsm_n1[b]
        assert {k: v for k, v in r0.items() if k != "_geom"} == {k: v for k, v in r1.items() if k != "_geom"}
        assert r0["_geom"].Equals(r1["_geom"])
    assert len(set(by_bsm_n1)) == len(dltb_n1)
    assert max(Counter((r["ZLDWDM"], r["TBBH"]) for r in dltb_n1).values()) == 1
    assert {r["SJNF"] for r in dltb_n1} == {county.year, county.year + 1}
    # still a partition of the same county
    assert abs(sum(r["_geom"].GetArea() for r in dltb_n1) - sum(r["_geom"].GetArea() for r in dltb)) < 0.01
    assert abs(_union_area(dltb_n1) - sum(r["_geom"].GetArea() for r in dltb_n1)) < 0.01
    assert all(r["_geom"].IsValid() for r in dltb_n1)


def test_shapefile_is_gbk(county, dltb):
    cpg = county.shp.with_suffix(".cpg")
    assert cpg.read_text(encoding="ascii").strip().upper() == "GBK"
    raw = county.shp.with_suffix(".dbf").read_bytes()
    assert "旱地".encode("gbk") in raw
    assert "旱地".encode() not in raw
    with shapefile_recoding():  # GDAL decodes GBK only with recoding on (QGIS turns it off)
        shp = _features(county.shp, "DLTB")
    assert len(shp) == len(dltb)
    assert [r["DLMC"] for r in shp] == [r["DLMC"] for r in dltb]
    assert [r["ZLDWMC"] for r in shp] == [r["ZLDWMC"] for r in dltb]


def test_filegdb_opens(county, dltb):
    ds = ogr.Open(str(county.gdb))
    assert ds.GetDriver().GetName() == "OpenFileGDB"
    lyr = ds.GetLayerByName("DLTB")
    assert lyr.GetFeatureCount() == len(dltb)
    gdb = _features(county.gdb, "DLTB")
    assert [r["BSM"] for r in gdb] == [r["BSM"] for r in dltb]
    assert [r["DLMC"] for r in gdb] == [r["DLMC"] for r in dltb]


def test_permanent_farmland_layer(county, dltb):
    yj = _features(county.gpkg, "YJJBNTBHTB")
    by_key = {(r["ZLDWDM"], r["TBBH"]): r for r in dltb}
    farm_n = sum(1 for r in dltb if r["DLBM"] in codes.FARMLAND)
    on_farm = [r for r in yj if r["DLBM"] in codes.FARMLAND]
    off_farm = [r for r in yj if r["DLBM"] not in codes.FARMLAND]
    assert len(on_farm) > 0.6 * farm_n
    assert 0 < len(off_farm) < 0.1 * len(yj)
    moved = 0.0
    for r in yj:
        base = by_key[(r["ZLDWDM"], r["TBBH"])]
        assert base["DLBM"] == r["DLBM"]
        g0 = base["_geom"].GetGeometryRef(0).GetPoints()
        g1 = r["_geom"].GetGeometryRef(0).GetPoints()
        assert len(g0) == len(g1)
        d = max(((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5 for a, b in zip(g0, g1))  # noqa: B905
        assert d <= 1.0
        moved = max(moved, d)
        assert r["YJJBNTMJ"] == pytest.approx(r["YJJBNTTBMJ"] - r["KCMJ"], abs=1e-6)
        assert 1 <= r["GDDJ"] <= 10
    assert moved > 0.5
    gdbhmb = _features(county.gpkg, "GDBHMB")
    assert {r["SFWHTD"] for r in gdbhmb} <= {0, 1}
    assert all(r["DLBM"] in codes.FARMLAND or r["DLBM"].endswith("K") for r in gdbhmb)


def test_agriculture_layers(county, dltb):
    gbz = _features(county.gpkg, "GBZNT")
    assert all(len(r["XMBH"]) == 19 and r["XMBH"].startswith("610431") for r in gbz)
    assert {r["DKLX"] for r in gbz} <= set(codes.GBZNT_DKLX) and len({r["DKLX"] for r in gbz}) >= 3
    assert all(county.year - 12 <= r["JSND"] < county.year for r in gbz)
    assert all(r["JSMJ"] == pytest.approx(r["MJ"] * 0.0015, abs=0.01) for r in gbz)
    # mostly on farmland, some spilling onto other land, some outside 永久基本农田
    farm_union = ogr.Geometry(ogr.wkbMultiPolygon)
    for r in dltb:
        if r["DLBM"] in codes.FARMLAND:
            farm_union.AddGeometry(r["_geom"])
    farm_union = farm_union.UnionCascaded()
    pbf = ogr.Geometry(ogr.wkbMultiPolygon)
    for r in _features(county.gpkg, "YJJBNTBHTB"):
        pbf.AddGeometry(r["_geom"])
    pbf = pbf.UnionCascaded()
    total = sum(r["_geom"].GetArea() for r in gbz)
    on_farm = sum(r["_geom"].Intersection(farm_union).GetArea() for r in gbz)
    outside_pbf = sum(r["_geom"].Difference(pbf).GetArea() for r in gbz)
    assert 0.5 * total < on_farm < total
    assert outside_pbf > 0.01 * total
    tr = _features(county.gpkg, "TRHJZL")
    assert {r["LB"] for r in tr} == set(codes.TRHJ_LB)
    q = _features(county.gpkg, "GDZLDJ")
    assert {r["ZLDJ"] for r in q} <= set(range(1, 11)) and len({r["ZLDJ"] for r in q}) >= 5
    bc = _features(county.gpkg, "BCGD")
    assert bc and all(len(r["XMBH"]) == 19 and r["XZGDMJ"] > 0 for r in bc)
    st = _features(county.gpkg, "STBHHX")
    assert st and all(r["HXLX"] and r["MJ"] > 0 for r in st)
    dry = _features(county.gpkg, "YZGHQ")
    assert len(dry) == 1 and dry[0]["QYLX"] == "严重干旱区"


def test_monitoring_patches_over_changes(county, dltb_n1):
    jc = _features(county.gpkg, "JCTB")
    changes = _features(county.gpkg, "GENERATOR_CHANGES")
    new_bsm = {b for c in changes if c["CHANGE_TYPE"] != "attribute_change" for b in c["NEW_BSM"].split(",")}
    changed = [r["_geom"] for r in dltb_n1 if r["BSM"] in new_bsm]
    assert len({r["JCBH"] for r in jc}) == len(jc)
    over_change = 0
    for r in jc:
        assert r["TBLX"] in codes.TBLX
        assert len(r["QSX"]) == 8 and len(r["HSX"]) == 8 and r["QSX"] < r["HSX"]
        assert r["MJ"] > 0
        if any(r["_geom"].Intersection(g).GetArea() > 0.5 * r["MJ"] for g in changed):
            over_change += 1
    assert over_change > 0.6 * len(jc)
    assert sum(1 for r in jc if r["TBLX"] in codes.TBLX_CONSTRUCTION) > len(jc) / 2


def test_cli_writes_the_requested_formats(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.datagen", "--out", str(out), "--size", "300", "--seed", "3"]
        + ["--formats", "gpkg,shp"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "610431" in proc.stdout
    assert (out / "county.gpkg").exists() and (out / "shp" / "DLTB.shp").exists()
    assert not (out / "DLTB.gdb").exists()
    ds = ogr.Open(str(out / "county.gpkg"))
    assert ds.GetLayerByName("DLTB").GetFeatureCount() == 300
    info = {f.GetField("KEY"): f.GetField("VALUE") for f in ds.GetLayerByName("GENERATOR_INFO")}
    assert info["seed"] == "3" and info["size"] == "300" and info["year"] == "2023"


def test_bad_parameters_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="size"):
        generate_county(tmp_path / "x", size=50)
    with pytest.raises(ValueError, match="formats"):
        generate_county(tmp_path / "y", size=300, formats=("gpkg", "kml"))
    assert not (tmp_path / "x").exists()
