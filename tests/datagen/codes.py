"""Code tables used by the synthetic county generator (domain.md §1.4, §1.5, §2, §3, §4, §8, §9).

Code names come from the plugin's shipped catalog code tables (``huijiao_plugin/data/codes/*.json``, one
place); this module keeps only what the generator itself decides: which classes count as what, which
codes it draws from and the county it places the data in.
"""

from __future__ import annotations

from huijiao_plugin.core.catalog import Catalog

_CATALOG = Catalog.load()  # the shipped tables only: generated data must not depend on a user's override


def _names(table_id: str) -> dict[str, str]:
    table = _CATALOG.code_table(table_id)
    if table is None:
        raise KeyError(f"the shipped catalog has no code table {table_id}")
    return dict(table.codes)


# §1.4 三调 工作分类 (including the extended 5-character codes)
DLMC: dict[str, str] = _names("dlbm")

FARMLAND = ("0101", "0102", "0103")
# classes whose ZZSXDM may hold JKHF/GCHF (耕地恢复潜力), §1.5
RECOVERABLE = ("0201", "0202", "0203", "0204", "0301", "0302", "0305", "0307", "0403", "0404", "1104")
LINEAR = ("1001", "1003", "1004", "1006", "1009", "1101", "1107")
CONSTRUCTION = (
    "05H1",
    "0508",
    "0601",
    "0602",
    "0701",
    "0702",
    "08H1",
    "08H2",
    "0809",
    "0810",
    "09",
    "1001",
    "1003",
    "1004",
    "1005",
    "1009",
    "1109",
)
STATE_OWNED = ("1001", "1003", "1101", "1103", "1109", "0701", "08H1", "09", "1009")

ZZSX: dict[str, str] = _names("zzsxdm")
ZZSX_FARMLAND = ("LS", "FLS", "LYFL", "XG", "LLJZ", "WG")

TBXH: dict[str, str] = _names("tbxhdm")
# which DLBM prefixes each TBXHDM may be used on
TBXH_APPLIES: dict[str, tuple[str, ...]] = {
    "HDGD": FARMLAND,
    "HQGD": FARMLAND,
    "LQGD": FARMLAND,
    "MQGD": FARMLAND,
    "SHGD": FARMLAND,
    "SMGD": FARMLAND,
    "YJGD": FARMLAND,
    "LQYD": ("0201", "0202", "0203", "0204"),
    "GCCD": ("0401", "0403", "0404"),
    "HDGY": ("0601",),
    "GTGY": ("0601",),
    "MTGY": ("0601",),
    "SNGY": ("0601",),
    "BLGY": ("0601",),
    "DLGY": ("0601",),
    "FQ": ("0602", "1001", "1003"),
    "LJTM": ("0301", "0302", "0305", "0307", "0404"),
}

QSXZ = tuple(_names("qsxz"))
GDPDJB = tuple(_names("gdpdjb"))
GDLX = tuple(_names("gdlx"))
CZCSXM = tuple(_names("czcsxm"))

# §4: 土壤环境质量类别 and 高标准农田 地块类型
# (TRHJ_LB[i] has the code str(i + 1) in the trhjzl table)
TRHJ_LB = tuple(_names("trhjzl").values())
GBZNT_DKLX = tuple(_names("dklx").values())
BCGD_XMLX = ("土地开发", "土地整理", "土地复垦")

# §9 monitoring patch types (TBLX) and the subset that means construction
TBLX: dict[str, str] = _names("tblx")
TBLX_CONSTRUCTION = tuple(_CATALOG.code_table("tblx").raw["sets"]["construction"])

# §1.2 / §2 要素代码
YSDM_DLTB = "2001010100"
YSDM_XZQ = "1000600100"
YSDM_YJJBNTTB = "2005010300"

# A real Shaanxi county on the 108°E central meridian (EPSG:4545): 咸阳市 武功县
_REGIONS = _names("regions_shaanxi")
PROVINCE_CODE = "610000"
PROVINCE_NAME = _REGIONS[PROVINCE_CODE]  # 陕西省
CITY_CODE = "610400"
CITY_NAME = _REGIONS[CITY_CODE]  # 咸阳市
COUNTY_CODE = "610431"
COUNTY_NAME = _REGIONS[COUNTY_CODE]  # 武功县
# centre of the synthetic county (EPSG:4545, about 108.20°E 34.26°N)
CENTER_E = 518500.0
CENTER_N = 3791500.0
EPSG = 4545

# syllables for synthetic place names (deterministic, no real village names are claimed)
NAME_HEAD = "东西南北上下前后新老大小王李张刘陈杨赵黄周吴郭马孙胡朱高林何罗郑梁谢宋唐韩冯董"
NAME_TAIL = "家庄寨堡坡沟河原湾营店桥坊集铺渠塬峪"
