"""Attribute schemas and DLTB attribute rules of the synthetic county.

See domain.md §1.3, §1.5, §2, §3, §4 and §9.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from huijiao_plugin.core.farmland_fields import fill_deductions, load_tkxs_table
from tests.datagen import codes
from tests.datagen.gpkg import Field
from tests.datagen.landscape import CLASSES, County

S, INT, R = "str", "int", "real"

DLTB_FIELDS: tuple[Field, ...] = (
    Field("BSM", S, 18),
    Field("YSDM", S, 10),
    Field("TBYBH", S, 18),
    Field("TBBH", S, 8),
    Field("DLBM", S, 5),
    Field("DLMC", S, 60),
    Field("QSXZ", S, 2),
    Field("QSDWDM", S, 19),
    Field("QSDWMC", S, 100),
    Field("ZLDWDM", S, 19),
    Field("ZLDWMC", S, 100),
    Field("TBMJ", R, 18, 2),
    Field("KCDLBM", S, 5),
    Field("KCXS", R, 6, 4),
    Field("KCMJ", R, 18, 2),
    Field("TBDLMJ", R, 18, 2),
    Field("GDLX", S, 2),
    Field("GDPDJB", S, 2),
    Field("XZDWKD", R, 5, 1),
    Field("TBXHDM", S, 6),
    Field("TBXHMC", S, 20),
    Field("ZZSXDM", S, 6),
    Field("ZZSXMC", S, 20),
    Field("GDDB", INT, 2),
    Field("FRDBS", S, 1),
    Field("CZCSXM", S, 4),
    Field("SJNF", INT, 4),
    Field("MSSM", S, 2),
    Field("HDMC", S, 100),
    Field("BZ", S, 254),
)
DLTB_INDEX = {f.name: k for k, f in enumerate(DLTB_FIELDS)}

GDBHMB_FIELDS = (*DLTB_FIELDS, Field("SFWHTD", INT, 1))

YJJBNT_FIELDS: tuple[Field, ...] = (
    Field("BSM", S, 18),
    Field("YSDM", S, 10),
    Field("XZQDM", S, 12),
    Field("XZQMC", S, 100),
    Field("YJJBNTTBBH", S, 20),
    Field("TBBH", S, 8),
    Field("DLBM", S, 5),
    Field("DLMC", S, 60),
    Field("QSXZ", S, 2),
    Field("QSDWDM", S, 19),
    Field("QSDWMC", S, 100),
    Field("ZLDWDM", S, 19),
    Field("ZLDWMC", S, 100),
    Field("YJJBNTTBMJ", R, 18, 2),
    Field("KCDLBM", S, 5),
    Field("KCXS", R, 6, 4),
    Field("KCMJ", R, 18, 2),
    Field("YJJBNTMJ", R, 18, 2),
    Field("GDLX", S, 2),
    Field("GDPDJB", S, 2),
    Field("TBXHDM", S, 6),
    Field("TBXHMC", S, 20),
    Field("ZZSXDM", S, 6),
    Field("ZZSXMC", S, 20),
    Field("GDDB", INT, 2),
    Field("GDDJ", INT, 2),
    Field("ZLFLDM", S, 10),
    Field("FRDBS", S, 1),
    Field("SJNF", INT, 4),
    Field("BZ", S, 254),
)

XZQ_FIELDS: tuple[Field, ...] = (
    Field("BSM", S, 18),
    Field("YSDM", S, 10),
    Field("XZQDM", S, 12),
    Field("XZQMC", S, 100),
    Field("DCMJ", R, 18, 2),
    Field("JSMJ", R, 18, 2),
    Field("MSSM", S, 2),
    Field("HDMC", S, 100),
    Field("BZ", S, 254),
)
CJDCQ_FIELDS: tuple[Field, ...] = (
    Field("BSM", S, 18),
    Field("YSDM", S, 10),
    Field("ZLDWDM", S, 19),
    Field("ZLDWMC", S, 100),
    Field("DCMJ", R, 18, 2),
    Field("JSMJ", R, 18, 2),
    Field("MSSM", S, 2),
    Field("HDMC", S, 100),
    Field("BZ", S, 254),
)
STBHHX_FIELDS: tuple[Field, ...] = (
    Field("BSM", S, 18),
    Field("XZQDM", S, 12),
    Field("XZQMC", S, 100),
    Field("SHENG", S, 20),
    Field("SHI", S, 20),
    Field("XIAN", S, 20),
    Field("HXBM", S, 20),
    Field("HXMC", S, 100),
    Field("HXLX", S, 50),
    Field("LXBM", S, 10),
    Field("MJ", R, 18, 2),
    Field("ZRBHDMC", S, 100),
    Field("ZRBHDJB", S, 20),
    Field("ZRBHDLX", S, 50),
    Field("ZRBHDFQ", S, 20),
    Field("GKCS", S, 254),
)
YZGHQ_FIELDS: tuple[Field, ...] = (
    Field("BSM", S, 18),
    Field("QYMC", S, 100),
    Field("QYLX", S, 20),
    Field("XZQDM", S, 12),
    Field("MJ", R, 18, 2),
    Field("BZ", S, 254),
)
GBZNT_FIELDS: tuple[Field, ...] = (
    Field("BSM", S, 18),
    Field("XMMC", S, 200),
    Field("XMBH", S, 19),
    Field("JSND", INT, 4),
    Field("DKBH", S, 30),
    Field("DKLX", S, 10),
    Field("XZQDM", S, 12),
    Field("XZQMC", S, 100),
    Field("JSMJ", R, 18, 2),
    Field("MJ", R, 18, 2),
    Field("BZ", S, 254),
)
TRHJZL_FIELDS: tuple[Field, ...] = (
    Field("BSM", S, 18),
    Field("LB", S, 10),
    Field("LBDM", S, 1),
    Field("XZQDM", S, 12),
    Field("PJNF", INT, 4),
    Field("MJ", R, 18, 2),
)
GDZLDJ_FIELDS: tuple[Field, ...] = (
    Field("BSM", S, 18),
    Field("ZLDJ", INT, 2),
    Field("XZQDM", S, 12),
    Field("PJNF", INT, 4),
    Field("MJ", R, 18, 2),
)
JCTB_FIELDS: tuple[Field, ...] = (
    Field("JCBH", S, 30),
    Field("XZQDM", S, 12),
    Field("XMC", S, 50),
    Field("TBLX", S, 10),
    Field("QSX", S, 8),
    Field("HSX", S, 8),
    Field("DLBM", S, 5),
    Field("DLMC", S, 60),
    Field("SFYN", S, 1),
    Field("MJ", R, 18, 2),
    Field("BZ", S, 254),
)
BCGD_FIELDS: tuple[Field, ...] = (
    Field("BSM", S, 18),
    Field("XMMC", S, 200),
    Field("XMBH", S, 19),
    Field("XMLX", S, 20),
    Field("JSND", INT, 4),
    Field("DKBH", S, 30),
    Field("XZQDM", S, 12),
    Field("XZGDMJ", R, 18, 2),
    Field("XZGDDB", INT, 2),
    Field("MJ", R, 18, 2),
    Field("BZ", S, 254),
)
CHANGES_FIELDS: tuple[Field, ...] = (
    Field("CHANGE_ID", INT),
    Field("CHANGE_TYPE", S, 30),
    Field("OLD_BSM", S, 200),
    Field("NEW_BSM", S, 200),
    Field("OLD_DLBM", S, 60),
    Field("NEW_DLBM", S, 60),
    Field("OLD_ZZSXDM", S, 60),
    Field("NEW_ZZSXDM", S, 60),
)


def bsm(serial: int) -> str:
    """18-character 标识码: county code + 12-digit serial."""
    return f"{codes.COUNTY_CODE}{serial:012d}"


def round2(v: float) -> float:
    return float(np.floor(abs(v) * 100.0 + 0.5 + 1e-9) / 100.0) * (1 if v >= 0 else -1)


@dataclass
class PatchInfo:
    """Per-patch values sampled from the cell grids (first cell in raster order, or per-patch statistics)."""

    cls: np.ndarray
    vill: np.ndarray
    settle: np.ndarray
    mountain: np.ndarray
    slope: np.ndarray  # 0..1 rank of the mean slope
    river: np.ndarray  # minimum distance to the main river (cells)
    quality: np.ndarray  # 0..1 smooth soil-quality field
    cells: np.ndarray  # number of cells


def patch_info(county: County, comp: np.ndarray, cls_grid: np.ndarray, n: int, fields: dict) -> PatchInfo:
    jj, ii = np.nonzero(comp >= 0)
    lab = comp[jj, ii]
    first = np.full(n, -1, np.int64)
    # first cell in raster order: np.nonzero is raster ordered; assign in reverse so the first wins
    first[lab[::-1]] = np.arange(lab.size)[::-1]
    fj, fi = jj[first], ii[first]
    cells = np.bincount(lab, minlength=n).astype(float)
    slope = np.bincount(lab, weights=fields["slope"][jj, ii], minlength=n) / cells
    rank = np.argsort(np.argsort(slope, kind="stable"), kind="stable") / max(n - 1, 1)
    river = np.full(n, 1e9)
    np.minimum.at(river, lab, county.river_dist[jj, ii])
    quality = np.bincount(lab, weights=fields["quality"][jj, ii], minlength=n) / cells
    return PatchInfo(
        cls=cls_grid[fj, fi],
        vill=county.vill[fj, fi],
        settle=county.settle[fj, fi],
        mountain=county.mountain[fj, fi],
        slope=rank,
        river=river,
        quality=quality,
        cells=cells,
    )


_TKXS = None


def _tkxs() -> object:
    global _TKXS
    if _TKXS is None:
        _TKXS = load_tkxs_table()
    return _TKXS


def _pick(u: float, table: tuple[tuple[str, float], ...]) -> str:
    acc = 0.0
    for code, w in table:
        acc += w
        if u < acc:
            return code
    return table[-1][0]


_ZZSX_FARM = (("LS", 0.78), ("FLS", 0.09), ("LYFL", 0.04), ("XG", 0.02), ("LLJZ", 0.01), ("WG", 0.06))
_INDUSTRY = ("HDGY", "GTGY", "MTGY", "SNGY", "BLGY", "DLGY")
_WIDTH = {
    "1001": (15.0, 25.0),
    "1003": (12.0, 30.0),
    "1004": (6.0, 15.0),
    "1006": (3.0, 6.0),
    "1009": (2.0, 5.0),
    "1101": (15.0, 80.0),
    "1107": (2.0, 6.0),
}


def other_village(county: County) -> np.ndarray:
    """For 飞入地: another village of the same township (or any other village)."""
    nv = county.town_of_vill.size
    out = np.zeros(nv, np.int64)
    for v in range(nv):
        same = np.nonzero(county.town_of_vill == county.town_of_vill[v])[0]
        same = same[same != v]
        out[v] = same[0] if same.size else (v + 1) % nv
    return out


def dltb_row(
    county: County,
    info: PatchInfo,
    k: int,
    code: str,
    u: np.ndarray,
    tbmj: float,
    serial: int,
    tbbh: int,
    sjnf: int,
    other_vill: np.ndarray,
) -> list[object]:
    """One DLTB attribute row (DLTB_FIELDS order) for patch k with class `code` and random numbers u[0..9]."""
    v = int(info.vill[k])
    t = int(county.town_of_vill[v])
    vcode = county.village_codes[v] + "0000000"
    vname = county.village_names[v]
    farmland = code in codes.FARMLAND
    # 权属
    frdbs = ""
    if code in codes.STATE_OWNED or (code in ("0601", "05H1", "0508") and u[0] < 0.3):
        qsxz = "10" if code in codes.STATE_OWNED else "20"
        qsdwdm = county.town_codes[t] + "0000000000"
        qsdwmc = county.town_names[t]
    else:
        qsxz = "30" if u[0] < 0.85 else ("31" if u[0] < 0.95 else "32")
        qsdwdm, qsdwmc = vcode, vname
        if u[1] < 0.005:
            frdbs = "1"
            ov = int(other_vill[v])
            qsdwdm = county.village_codes[ov] + "0000000"
            qsdwmc = county.village_names[ov]
    # 坡度 / 耕地类型 / 田坎
    gdpdjb = gdlx = kcdlbm = ""
    kcxs = 0.0
    gddb = 0
    if farmland:
        s = float(info.slope[k])
        if info.mountain[k]:
            grade = 2 if s < 0.2 else 3 if s < 0.55 else 4 if s < 0.85 else 5
        else:
            grade = 1 if s < 0.7 else 2 if s < 0.93 else 3 if s < 0.99 else 4
        gdpdjb = str(grade)
        if grade > 1:
            gdlx = "TT" if u[4] < (0.65 if info.mountain[k] else 0.3) else "PD"
        kcxs = float(_tkxs().lookup(gdpdjb, gdlx) or 0.0)
        if kcxs > 0:
            kcdlbm = "1203"
        q = float(info.quality[k])
        gddb = (9 + int(q * 5.99)) if info.mountain[k] else (5 + int(q * 4.99))
        if info.river[k] < 10:
            gddb -= 2
        gddb = int(np.clip(gddb + (1 if u[6] > 0.9 else 0), 1, 15))
    kcmj, tbdlmj = fill_deductions(tbmj, kcxs)
    # 种植属性
    zzsxdm = ""
    if farmland:
        zzsxdm = _pick(float(u[2]), _ZZSX_FARM)
    elif code.rstrip("K") in codes.RECOVERABLE and u[2] < 0.2:
        zzsxdm = "JKHF" if u[2] < 0.15 else "GCHF"
    # 图斑细化
    tbxhdm = ""
    if farmland and info.river[k] < 4:
        tbxhdm = "HDGD"
    elif farmland and info.mountain[k] and u[3] < 0.03:
        tbxhdm = "LQGD"
    elif code in ("0201", "0204") and info.mountain[k] and u[3] < 0.1:
        tbxhdm = "LQYD"
    elif code == "0404" and u[3] < 0.05:
        tbxhdm = "GCCD"
    elif code == "0601" and u[3] < 0.1:
        tbxhdm = _INDUSTRY[int(u[5] * len(_INDUSTRY)) % len(_INDUSTRY)]
    elif code in ("0602", "1001", "1003") and u[3] < 0.02:
        tbxhdm = "FQ"
    elif code in ("0301", "0305", "0307", "0404") and u[3] > 0.995:
        tbxhdm = "LJTM"
    # 城镇村属性码
    czcsxm = ""
    settle = int(info.settle[k])
    if code == "0602":
        czcsxm = "204"
    elif code == "09":
        czcsxm = "205"
    elif code in codes.CONSTRUCTION and code not in ("1001", "1003", "1009", "1109") or code == "1201":
        if settle in (2, 3):
            czcsxm = "202"
        elif settle == 4:
            czcsxm = "202A"
        elif settle == 1:
            czcsxm = "203A" if code == "0601" else "203"
        elif code == "0601":
            czcsxm = "203A"
        elif code in ("0701", "0702", "05H1", "08H1", "08H2", "0809", "0810", "0508", "1004", "1201"):
            czcsxm = "203"
    xzdwkd = 0.0
    if code in _WIDTH:
        lo, hi = _WIDTH[code]
        xzdwkd = round(lo + (hi - lo) * float(u[5]), 1)
    return [
        bsm(serial),
        codes.YSDM_DLTB,
        str(tbbh),
        str(tbbh),
        code,
        codes.DLMC[code],
        qsxz,
        qsdwdm,
        qsdwmc,
        vcode,
        vname,
        tbmj,
        kcdlbm,
        kcxs,
        kcmj,
        tbdlmj,
        gdlx,
        gdpdjb,
        xzdwkd,
        tbxhdm,
        codes.TBXH.get(tbxhdm, ""),
        zzsxdm,
        codes.ZZSX.get(zzsxdm, ""),
        gddb,
        frdbs,
        czcsxm,
        sjnf,
        "00",
        "",
        "",
    ]


def class_code(idx: int) -> str:
    return CLASSES[int(idx)]
