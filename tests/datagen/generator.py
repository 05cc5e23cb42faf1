"""Orchestration: build the cell model, derive every layer, write county.gpkg (+ DLTB as SHP/FileGDB)."""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr

from huijiao_plugin.core.farmland_fields import fill_deductions
from tests.datagen import codes
from tests.datagen.attrs import (
    BCGD_FIELDS,
    CHANGES_FIELDS,
    CJDCQ_FIELDS,
    DLTB_FIELDS,
    DLTB_INDEX,
    GBZNT_FIELDS,
    GDBHMB_FIELDS,
    GDZLDJ_FIELDS,
    JCTB_FIELDS,
    STBHHX_FIELDS,
    TRHJZL_FIELDS,
    XZQ_FIELDS,
    YJJBNT_FIELDS,
    YZGHQ_FIELDS,
    bsm,
    dltb_row,
    other_village,
    patch_info,
    round2,
)
from tests.datagen.changes import make_year_n1
from tests.datagen.geometry import AreaCalc, PolySet, grid_polys, ring_polys
from tests.datagen.gpkg import (
    Field,
    create_gpkg_layers,
    create_spatial_indexes,
    insert_rows,
    shapefile_recoding,
)
from tests.datagen.grid import components, smooth_field, trace_rings
from tests.datagen.landscape import CI, CLASSES, County, _nearest_seed, build_county

gdal.UseExceptions()
LOG = logging.getLogger(__name__)

DEFAULT_YEAR = 2023
M2_PER_MU = 2000.0 / 3.0

# layer name → Chinese description (written to gpkg_contents.description)
LAYERS: dict[str, str] = {
    "DLTB": "地类图斑 (年度 N)",
    "DLTB_N1": "地类图斑 (年度 N+1)",
    "XZQ": "行政区 (乡镇级)",
    "CJDCQ": "村级调查区",
    "YJJBNTBHTB": "永久基本农田保护图斑",
    "GDBHMB": "耕地保护目标",
    "STBHHX": "生态保护红线",
    "YZGHQ": "严重干旱区",
    "GBZNT": "高标准农田 上图入库地块",
    "TRHJZL": "耕地土壤环境质量类别",
    "GDZLDJ": "耕地质量等级",
    "JCTB": "季度监测疑似耕地变化图斑",
    "BCGD": "补充耕地地块",
    "GENERATOR_CHANGES": "生成器: N→N+1 变化真值",
    "GENERATOR_INFO": "生成器: 参数",
}

# comparison role (huijiao_plugin.core.compare) -> layer of county.gpkg
COMPARE_ROLES: dict[str, str] = {
    "DLTB": "DLTB",
    "DLTB_N1": "DLTB_N1",
    "PBF": "YJJBNTBHTB",
    "HSF": "GBZNT",
    "STBHHX": "STBHHX",
    "YZGHQ": "YZGHQ",
    "TRHJZL": "TRHJZL",
    "JCTB": "JCTB",
    "XZQ": "XZQ",
    "CJDCQ": "CJDCQ",
}
FORMATS = ("gpkg", "shp", "gdb")


@dataclass(frozen=True)
class DemoCounty:
    """Paths and facts of a generated county (see tests/datagen/__init__.py)."""

    out_dir: Path
    gpkg: Path
    shp_dir: Path | None
    shp: Path | None
    gdb: Path | None
    year: int
    county_code: str
    county_name: str
    size: int
    seed: int
    epsg: int
    layers: tuple[str, ...]
    timings: dict[str, float]


@dataclass
class _Layer:
    name: str
    fields: tuple[Field, ...]
    rows: list[list[object]]
    polys: PolySet | None
    select: list[int] | None = None  # subset/order of polys to write


def _perturbation(rng: np.random.Generator, n: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-lattice-vertex offsets uniformly inside a disk of `radius` metres (rounded to 1 mm, ≤ radius)."""
    r = radius * np.sqrt(rng.random(n))
    t = 2.0 * np.pi * rng.random(n)
    dx = np.trunc(r * np.cos(t) * 1000.0) / 1000.0
    dy = np.trunc(r * np.sin(t) * 1000.0) / 1000.0
    return dx, dy


def _first_cells(comp: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    jj, ii = np.nonzero(comp >= 0)
    lab = comp[jj, ii]
    first = np.full(n, -1, np.int64)
    first[lab[::-1]] = np.arange(lab.size)[::-1]
    return jj[first], ii[first]


def generate_county(
    out_dir: str | Path,
    size: int = 1500,
    seed: int = 2024,
    formats: tuple[str, ...] = FORMATS,
    year: int = DEFAULT_YEAR,
) -> DemoCounty:
    """Generate the synthetic county into `out_dir` (created; an existing county.gpkg is replaced)."""
    if size < 200:
        raise ValueError("size must be at least 200 DLTB patches")
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown formats: {sorted(unknown)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        timings[name] = round(now - t0, 3)
        t0 = now

    county = build_county(seed, size)
    lap("landscape")
    rng = np.random.default_rng([seed, 1])
    layers, changes_rows = _derive_layers(rng, county, year, lap)

    gpkg = out / "county.gpkg"
    if gpkg.exists():
        gpkg.unlink()
    _write_gpkg(gpkg, layers, changes_rows, county, size, seed, year)
    lap("write_gpkg")

    shp_dir = shp = gdb = None
    if "shp" in formats:
        shp_dir = out / "shp"
        if shp_dir.exists():
            shutil.rmtree(shp_dir)
        shp_dir.mkdir()
        shp = shp_dir / "DLTB.shp"
        with shapefile_recoding():
            gdal.VectorTranslate(
                str(shp),
                str(gpkg),
                options=gdal.VectorTranslateOptions(
                    format="ESRI Shapefile", layers=["DLTB"], layerCreationOptions=["ENCODING=GBK"]
                ),
            )
        (shp_dir / "DLTB.cpg").write_text("GBK", encoding="ascii")
        lap("write_shp")
    if "gdb" in formats:
        gdb = out / "DLTB.gdb"
        if gdb.exists():
            shutil.rmtree(gdb)
        gdal.VectorTranslate(
            str(gdb),
            str(gpkg),
            options=gdal.VectorTranslateOptions(format="OpenFileGDB", layers=["DLTB"]),
        )
        lap("write_gdb")
    return DemoCounty(
        out_dir=out,
        gpkg=gpkg,
        shp_dir=shp_dir,
        shp=shp,
        gdb=gdb,
        year=year,
        county_code=codes.COUNTY_CODE,
        county_name=codes.COUNTY_NAME,
        size=size,
        seed=seed,
        epsg=codes.EPSG,
        layers=tuple(layer.name for layer in layers) + ("GENERATOR_CHANGES", "GENERATOR_INFO"),
        timings=timings,
    )


def _derive_layers(
    rng: np.random.Generator, county: County, year: int, lap: Callable[[str], None]
) -> tuple[list[_Layer], list[list[object]]]:
    x, y = county.lat.x, county.lat.y
    ny, nx = county.comp.shape
    gy, gx = np.gradient(county.elev)
    fields = {"slope": np.hypot(gx, gy), "quality": smooth_field(rng, ny, nx, 25.0)}
    calc = AreaCalc(codes.EPSG)
    n = county.n_patches
    nv = county.town_of_vill.size
    ix = DLTB_INDEX

    # ---- DLTB year N
    rings = trace_rings(county.comp, n)
    ps = ring_polys(rings, x, y)
    tbmj = calc.areas(ps.wkbs)
    info = patch_info(county, county.comp, county.cls, n, fields)
    lap("dltb_geometry")
    u = rng.random((n, 8))
    ov = other_village(county)
    tbbh_next = np.zeros(nv, np.int64)
    rows: list[list[object]] = []
    for k in range(n):
        v = int(info.vill[k])
        tbbh_next[v] += 1
        code = CLASSES[int(info.cls[k])]
        rows.append(dltb_row(county, info, k, code, u[k], float(tbmj[k]), k + 1, int(tbbh_next[v]), year, ov))
    lap("dltb_attributes")

    # ---- DLTB year N+1
    y1 = make_year_n1(rng, county, [r[ix["ZZSXDM"]] for r in rows])
    comp1, n1 = components(y1.comp)
    fj, fi = _first_cells(comp1, n1)
    src = y1.comp[fj, fi]
    rings1 = trace_rings(comp1, n1)
    ps1 = ring_polys(rings1, x, y)
    tbmj1 = calc.areas(ps1.wkbs)
    info1 = patch_info(county, comp1, y1.cls, n1, fields)
    change_of_label = {lab: ch for ch in y1.changes for lab in ch.new_labels}
    final_of_label = {int(src[f]): f for f in range(n1)}
    u1 = rng.random((n1, 8))
    serial = n
    rows1: list[list[object]] = []
    bsm_of_label: dict[int, str] = {}
    for f in range(n1):
        lab = int(src[f])
        ch = change_of_label.get(lab)
        if ch is None:
            rows1.append(list(rows[lab]))
            continue
        if ch.kind == "attribute_change":
            r = list(rows[lab])
            r[ix["ZZSXDM"]] = ch.new_zzsx
            r[ix["ZZSXMC"]] = codes.ZZSX[ch.new_zzsx or ""]
            r[ix["SJNF"]] = year + 1
        else:
            serial += 1
            v = int(info1.vill[f])
            tbbh_next[v] += 1
            code = CLASSES[int(info1.cls[f])]
            r = dltb_row(
                county, info1, f, code, u1[f], float(tbmj1[f]), serial, int(tbbh_next[v]), year + 1, ov
            )
        bsm_of_label[lab] = str(r[0])
        rows1.append(r)
    changes_rows = []
    for cid, ch in enumerate(y1.changes, 1):
        new_rows = [rows1[final_of_label[lab]] for lab in ch.new_labels]
        changes_rows.append(
            [
                cid,
                ch.kind,
                ",".join(str(rows[k][0]) for k in ch.old),
                ",".join(bsm_of_label[lab] for lab in ch.new_labels),
                ",".join(str(rows[k][ix["DLBM"]]) for k in ch.old),
                ",".join(str(r[ix["DLBM"]]) for r in new_rows),
                ",".join(str(rows[k][ix["ZZSXDM"]]) for k in ch.old),
                ",".join(str(r[ix["ZZSXDM"]]) for r in new_rows),
            ]
        )
    lap("dltb_n1")

    # ---- XZQ (townships) and CJDCQ (villages)
    vill = county.vill
    town = np.where(vill >= 0, county.town_of_vill[np.maximum(vill, 0)], -1)
    ps_v = grid_polys(vill, x, y)
    ps_t = grid_polys(town, x, y)
    jsmj_v = calc.areas(ps_v.wkbs)
    jsmj_t = calc.areas(ps_t.wkbs)
    dc_v = np.bincount(info.vill, weights=tbmj, minlength=nv)
    dc_t = np.bincount(county.town_of_vill[info.vill], weights=tbmj, minlength=len(county.town_codes))
    xzq_rows = [
        [
            bsm(k + 1),
            codes.YSDM_XZQ,
            county.town_codes[t],
            county.town_names[t],
            round2(dc_t[t]),
            float(jsmj_t[k]),
        ]
        + ["00", "", ""]
        for k, t in enumerate(ps_t.labels.tolist())
    ]
    cjdcq_rows = [
        [bsm(k + 1), "", county.village_codes[v] + "0000000", county.village_names[v], round2(dc_v[v])]
        + [float(jsmj_v[k]), "00", "", ""]
        for k, v in enumerate(ps_v.labels.tolist())
    ]
    lap("xzq")

    # ---- YJJBNTBHTB: most farmland patches (clustered) + a few non-farmland, vertices moved ≤ 1 m
    farm = np.isin(info.cls, [CI[c] for c in codes.FARMLAND])
    pbf_field = smooth_field(rng, ny, nx, 40.0)
    pj, pi = _first_cells(county.comp, n)
    score = pbf_field[pj, pi]
    sel_farm = farm & (score > np.quantile(score[farm], 0.15)) if farm.any() else farm
    other_pool = np.nonzero(np.isin(info.cls, [CI[c] for c in ("0201", "0301", "0404", "0702", "1202")]))[0]
    n_extra = min(other_pool.size, max(3, int(0.01 * farm.sum())))
    extra = rng.choice(other_pool, size=n_extra, replace=False) if n_extra else np.zeros(0, np.int64)
    in_pbf = sel_farm.copy()
    in_pbf[extra] = True
    pbf_ids = np.nonzero(in_pbf)[0].tolist()
    dx, dy = _perturbation(rng, x.size, 0.99)
    ps_p = ring_polys(rings, np.round(x + dx, 3), np.round(y + dy, 3))
    area_p = calc.areas([ps_p.wkbs[k] for k in pbf_ids])
    town9 = [county.town_codes[int(county.town_of_vill[int(info.vill[k])])] for k in range(n)]
    yj_rows = []
    for seq, (k, a) in enumerate(zip(pbf_ids, area_p.tolist()), 1):  # noqa: B905
        r = rows[k]
        kcxs = float(r[ix["KCXS"]])
        kcmj, yjmj = fill_deductions(a, kcxs)
        t = int(county.town_of_vill[int(info.vill[k])])
        gddj = int(np.clip(1 + int(info.quality[k] * 9.99), 1, 10))
        yj_rows.append(
            [
                bsm(seq),
                codes.YSDM_YJJBNTTB,
                town9[k],
                county.town_names[t],
                f"{town9[k]}{seq:06d}",
                r[ix["TBBH"]],
                r[ix["DLBM"]],
                r[ix["DLMC"]],
                r[ix["QSXZ"]],
                r[ix["QSDWDM"]],
                r[ix["QSDWMC"]],
                r[ix["ZLDWDM"]],
                r[ix["ZLDWMC"]],
                a,
                r[ix["KCDLBM"]],
                kcxs,
                kcmj,
                yjmj,
                r[ix["GDLX"]],
                r[ix["GDPDJB"]],
                r[ix["TBXHDM"]],
                r[ix["TBXHMC"]],
                r[ix["ZZSXDM"]],
                r[ix["ZZSXMC"]],
                r[ix["GDDB"]],
                gddj,
                "",
                r[ix["FRDBS"]],
                year - 1,
                "",
            ]
        )
    lap("yjjbnt")

    # ---- GDBHMB: farmland and 可调整 patches, exact DLTB geometry
    gb_ids = [k for k in range(n) if farm[k] or CLASSES[int(info.cls[k])].endswith("K")]
    u_gb = rng.random(len(gb_ids))
    gb_rows = [[*rows[k][:], 1 if uu < 0.03 else 0] for k, uu in zip(gb_ids, u_gb.tolist())]  # noqa: B905
    for seq, r in enumerate(gb_rows, 1):
        r[0] = bsm(seq)

    # ---- STBHHX: ecological red line in the mountains
    mountain = county.mountain
    f_red = smooth_field(rng, ny, nx, 30.0)
    red = mountain & (f_red > np.quantile(f_red[mountain], 0.45)) if mountain.any() else mountain
    red_lab, nred = components(np.where(red, 0, -1))
    sizes = np.bincount(red_lab[red_lab >= 0], minlength=nred)
    keep = sizes >= 60
    remap = np.where(keep, np.cumsum(keep) - 1, -1)
    red_grid = np.where(red_lab >= 0, remap[np.maximum(red_lab, 0)], -1)
    ps_red = grid_polys(red_grid, x, y)
    mj_red = calc.areas(ps_red.wkbs)
    hxlx = ("水源涵养", "生物多样性维护", "水土保持")
    st_rows = []
    for k, lab in enumerate(ps_red.labels.tolist()):
        kind = hxlx[lab % 3]
        st_rows.append(
            [
                bsm(k + 1),
                codes.COUNTY_CODE,
                codes.COUNTY_NAME,
                codes.PROVINCE_NAME,
                codes.CITY_NAME,
                codes.COUNTY_NAME,
                f"{codes.COUNTY_CODE}HX{k + 1:04d}",
                f"{codes.COUNTY_NAME}{kind}生态保护红线{k + 1}",
                kind,
                f"{lab % 3 + 1:02d}",
                float(mj_red[k]),
                f"{codes.COUNTY_NAME}自然保护区" if k % 3 == 0 else "",
                "省级" if k % 3 == 0 else "",
                "自然保护区" if k % 3 == 0 else "",
                ("核心保护区" if k % 2 == 0 else "一般控制区") if k % 3 == 0 else "",
                "禁止开发性、生产性建设活动",
            ]
        )

    # ---- YZGHQ: 严重干旱区 in the north of the county
    jj = np.arange(ny)[:, None] * np.ones((1, nx))
    f_dry = smooth_field(rng, ny, nx, 35.0)
    mask = county.mask
    dry = mask & (jj > 0.55 * ny) & (f_dry > 0.35)
    if dry.sum() < 50:
        dry = mask & (jj > 0.7 * ny)
    dry_lab, ndry = components(np.where(dry, 0, -1))
    if ndry > 1:
        big = int(np.argmax(np.bincount(dry_lab[dry_lab >= 0])))
        dry = dry_lab == big
    ps_dry = grid_polys(np.where(dry, 0, -1), x, y)
    mj_dry = calc.areas(ps_dry.wkbs)
    dry_rows = (
        [[bsm(1), "严重干旱区", "严重干旱区", codes.COUNTY_CODE, float(mj_dry[0]), ""]] if ps_dry.wkbs else []
    )

    # ---- TRHJZL / GDZLDJ on farmland (+ its farm roads and ditches), one polygon per connected piece
    region = np.isin(county.cls, [CI[c] for c in (*codes.FARMLAND, "1006", "1107")])
    f_soil = smooth_field(rng, ny, nx, 20.0)
    soil = np.full((ny, nx), -1, np.int64)
    if region.any():
        cuts = np.quantile(f_soil[region], [0.86, 0.97])
        soil[region] = np.searchsorted(cuts, f_soil[region], side="right")
    ps_soil = grid_polys(soil, x, y, explode=True)
    mj_soil = calc.areas(ps_soil.wkbs)
    tr_rows = [
        [bsm(k + 1), codes.TRHJ_LB[lab], str(lab + 1), codes.COUNTY_CODE, year, float(mj_soil[k])]
        for k, lab in enumerate(ps_soil.labels.tolist())
    ]
    f_q = smooth_field(rng, ny, nx, 25.0)
    qual = np.full((ny, nx), -1, np.int64)
    if region.any():
        shares = np.array([0.05, 0.08, 0.12, 0.15, 0.16, 0.14, 0.11, 0.09, 0.06, 0.04])
        cuts = np.quantile(f_q[region], np.cumsum(shares)[:-1])
        qual[region] = np.searchsorted(cuts, f_q[region], side="right")
    ps_q = grid_polys(qual, x, y, explode=True)
    mj_q = calc.areas(ps_q.wkbs)
    q_rows = [
        [bsm(k + 1), int(lab) + 1, codes.COUNTY_CODE, year, float(mj_q[k])]
        for k, lab in enumerate(ps_q.labels)
    ]
    lap("zones")

    # ---- GBZNT: 高标准农田 project plots over the plain
    plain_farm = mask & ~mountain & np.isin(county.cls, [CI[c] for c in codes.FARMLAND])
    n_proj = int(np.clip(n // 2500, 3, 150))
    cj, ci = np.nonzero(plain_farm)
    gb_polys: PolySet | None = None
    gbz_rows: list[list[object]] = []
    if cj.size > n_proj:
        pick = rng.choice(cj.size, size=n_proj, replace=False)
        near, dist = _nearest_seed((ny, nx), cj[pick], ci[pick])
        radius = math.sqrt(plain_farm.sum() * 0.5 / n_proj / math.pi)
        wob = 0.7 + 0.6 * smooth_field(rng, ny, nx, 10.0)
        proj = np.where(
            mask & ~mountain & ~np.isin(county.settle, [2, 3, 4]) & (dist < radius * wob), near, -1
        )
        seeds = rng.random((ny, nx)) < 1.0 / 150.0
        sj, si = np.nonzero(seeds)
        plot, _ = _nearest_seed((ny, nx), sj, si)
        key = np.where(proj >= 0, proj * (sj.size + 1) + plot, -1)
        gb_polys = grid_polys(key, x, y, explode=True)
        area_g = calc.areas(gb_polys.wkbs)
        jsnd = year - rng.integers(1, 13, size=n_proj)
        per_plot = rng.random(len(gb_polys.wkbs))
        plot_no: dict[int, int] = {}
        for k, lab in enumerate(gb_polys.labels.tolist()):
            p = lab // (sj.size + 1)
            plot_no[p] = plot_no.get(p, 0) + 1
            xmbh = f"{codes.COUNTY_CODE}001{p + 1:04d}01{int(jsnd[p])}"
            dklx = "新增" if per_plot[k] < 0.45 else "提质" if per_plot[k] < 0.75 else "改造"
            if per_plot[k] > 0.9:
                dklx = "提质改造"
            gbz_rows.append(
                [
                    bsm(k + 1),
                    f"{codes.COUNTY_NAME}{int(jsnd[p])}年高标准农田建设项目（第{p + 1}片区）",
                    xmbh,
                    int(jsnd[p]),
                    f"{xmbh}-{plot_no[p]:03d}",
                    dklx,
                    codes.COUNTY_CODE,
                    codes.COUNTY_NAME,
                    round2(float(area_g[k]) / M2_PER_MU),
                    float(area_g[k]),
                    "",
                ]
            )
    lap("gbznt")

    # ---- JCTB over N→N+1 changes (+ a few false alarms) and BCGD plots
    dx2, dy2 = _perturbation(rng, x.size, 1.5)
    ps1_j = ring_polys(rings1, np.round(x + dx2, 3), np.round(y + dy2, 3))
    jc_wkbs: list[bytes] = []
    jc_rows: list[list[object]] = []
    bc_wkbs: list[bytes] = []
    bc_rows: list[list[object]] = []
    tblx_of = {
        "0702": "20",
        "0601": "20",
        "05H1": "20",
        "08H2": "20",
        "1003": "DL2",
        "1202": "YH",
        "0508": "YH",
    }
    uj = rng.random((len(y1.changes), 3))
    for ch, uu in zip(y1.changes, uj.tolist()):  # noqa: B905
        old_code = str(rows[ch.old[0]][ix["DLBM"]])
        if ch.detail in ("farm_to_construction", "partial_class_change") and uu[0] < 0.85:
            f = final_of_label[ch.new_labels[-1]]
            new_code = str(rows1[f][ix["DLBM"]])
            tblx = tblx_of.get(new_code, "TD")
        elif ch.detail in ("to_farmland", "reclaim", "farm_to_orchard") and uu[0] < 0.5:
            f = final_of_label[ch.new_labels[-1]]
            tblx = "02" if ch.detail == "farm_to_orchard" else "01"
        else:
            f = None
        if f is not None:
            jc_wkbs.append(ps1_j.wkbs[f])
            jc_rows.append([tblx, old_code, "1" if in_pbf[ch.old[0]] else "0", int(uu[1] * 4) + 1])
        if ch.detail in ("to_farmland", "reclaim"):
            f = final_of_label[ch.new_labels[0]]
            xmlx = "土地复垦" if ch.detail == "reclaim" else ("土地开发" if uu[2] < 0.6 else "土地整理")
            bc_wkbs.append(ps1.wkbs[f])
            bc_rows.append([xmlx, year + 1, int(rows1[f][ix["GDDB"]]), float(tbmj1[f])])
    # false alarms on unchanged farmland
    changed_old = {k for ch in y1.changes for k in ch.old}
    calm = [k for k in np.nonzero(farm)[0].tolist() if k not in changed_old]
    n_false = min(len(calm), max(2, len(jc_rows) // 8))
    for k in rng.choice(np.array(calm, dtype=np.int64), size=n_false, replace=False).tolist():
        jc_wkbs.append(ps.wkbs[k])
        jc_rows.append([("DT", "TD", "YH")[k % 3], str(rows[k][ix["DLBM"]]), "1" if in_pbf[k] else "0", 2])
    # older 补充耕地 projects on existing farmland
    farm_ids = np.nonzero(farm)[0]
    n_old = min(farm_ids.size, max(2, int(0.003 * farm_ids.size)))
    for k in np.sort(rng.choice(farm_ids, size=n_old, replace=False)).tolist():
        bc_wkbs.append(ps.wkbs[k])
        bc_rows.append(["土地整理", year - 1 - k % 5, int(rows[k][ix["GDDB"]]), float(tbmj[k])])
    jc_area = calc.areas(jc_wkbs) if jc_wkbs else np.zeros(0)
    jc_out = []
    for seq, (r, a) in enumerate(zip(jc_rows, jc_area.tolist()), 1):  # noqa: B905
        tblx, dlbm, sfyn, quarter = r
        qsx = f"{year + 1}{(quarter - 1) * 3:02d}01" if quarter > 1 else f"{year}1231"
        hsx = f"{year + 1}{quarter * 3:02d}{30 if quarter in (2, 3) else 31}"
        jc_out.append(
            [
                f"{codes.COUNTY_CODE}{year + 1}Q{quarter}{seq:05d}",
                codes.COUNTY_CODE,
                codes.COUNTY_NAME,
                tblx,
                qsx,
                hsx,
                dlbm,
                codes.DLMC.get(dlbm, ""),
                sfyn,
                a,
                "",
            ]
        )
    bc_out = []
    for seq, (xmlx, jsnd_, xzgddb, area) in enumerate(bc_rows, 1):
        xmbh = f"{codes.COUNTY_CODE}002{seq:04d}01{jsnd_}"
        bc_out.append(
            [
                bsm(seq),
                f"{codes.COUNTY_NAME}{jsnd_}年{xmlx}补充耕地项目{seq}",
                xmbh,
                xmlx,
                jsnd_,
                f"{xmbh}-001",
                codes.COUNTY_CODE,
                area,
                xzgddb,
                area,
                "",
            ]
        )
    lap("jctb_bcgd")

    layers = [
        _Layer("DLTB", DLTB_FIELDS, rows, ps),
        _Layer("DLTB_N1", DLTB_FIELDS, rows1, ps1),
        _Layer("XZQ", XZQ_FIELDS, xzq_rows, ps_t),
        _Layer("CJDCQ", CJDCQ_FIELDS, cjdcq_rows, ps_v),
        _Layer("YJJBNTBHTB", YJJBNT_FIELDS, yj_rows, ps_p, pbf_ids),
        _Layer("GDBHMB", GDBHMB_FIELDS, gb_rows, ps, gb_ids),
        _Layer("STBHHX", STBHHX_FIELDS, st_rows, ps_red),
        _Layer("YZGHQ", YZGHQ_FIELDS, dry_rows, ps_dry),
        _Layer("GBZNT", GBZNT_FIELDS, gbz_rows, gb_polys),
        _Layer("TRHJZL", TRHJZL_FIELDS, tr_rows, ps_soil),
        _Layer("GDZLDJ", GDZLDJ_FIELDS, q_rows, ps_q),
        _Layer("JCTB", JCTB_FIELDS, jc_out, _wkb_set(jc_wkbs)),
        _Layer("BCGD", BCGD_FIELDS, bc_out, _wkb_set(bc_wkbs)),
    ]
    return layers, changes_rows


def _wkb_set(wkbs: list[bytes]) -> PolySet:
    env = np.zeros((len(wkbs), 4))
    for k, w in enumerate(wkbs):
        g = ogr.CreateGeometryFromWkb(w)
        minx, maxx, miny, maxy = g.GetEnvelope()
        env[k] = (minx, maxx, miny, maxy)
    return PolySet(np.arange(len(wkbs)), wkbs, env, np.zeros(len(wkbs)))


def _write_gpkg(
    path: Path, layers: list[_Layer], changes_rows: list, county: County, size: int, seed: int, year: int
) -> None:
    specs: list[tuple[str, tuple[Field, ...], int | None]] = []
    for layer in layers:
        gtype = ogr.wkbMultiPolygon if layer.name in ("XZQ", "CJDCQ", "STBHHX", "YZGHQ") else ogr.wkbPolygon
        specs.append((layer.name, layer.fields, gtype))
    specs.append(("GENERATOR_CHANGES", CHANGES_FIELDS, None))
    info_fields = (Field("KEY", "str", 40), Field("VALUE", "str", 200))
    specs.append(("GENERATOR_INFO", info_fields, None))
    create_gpkg_layers(str(path), specs, codes.EPSG, LAYERS)
    for layer in layers:
        ps = layer.polys
        if ps is None:
            continue
        sel = layer.select
        wkbs = ps.wkbs if sel is None else [ps.wkbs[k] for k in sel]
        env = ps.env if sel is None else ps.env[np.asarray(sel, dtype=np.int64)]
        if layer.name in ("XZQ", "CJDCQ", "STBHHX", "YZGHQ"):
            wkbs = [
                w if w[1:5] == b"\x06\x00\x00\x00" else b"\x01\x06\x00\x00\x00\x01\x00\x00\x00" + w
                for w in wkbs
            ]
        insert_rows(str(path), layer.name, layer.fields, layer.rows, wkbs, env.reshape(-1, 4), codes.EPSG)
    insert_rows(str(path), "GENERATOR_CHANGES", CHANGES_FIELDS, changes_rows, None, None, codes.EPSG)
    info_rows = [
        ["county_code", codes.COUNTY_CODE],
        ["county_name", codes.COUNTY_NAME],
        ["year", str(year)],
        ["year_n1", str(year + 1)],
        ["size", str(size)],
        ["seed", str(seed)],
        ["epsg", str(codes.EPSG)],
        ["generator", "tests.datagen"],
    ]
    insert_rows(str(path), "GENERATOR_INFO", info_fields, info_rows, None, None, codes.EPSG)
    create_spatial_indexes(str(path), [layer.name for layer in layers if layer.polys is not None])
