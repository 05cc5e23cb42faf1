"""Layer-level checks: the CRS (CGCS2000 accepted, legacy and missing ones with the fix) and the fields
(required fields present, types) (re-exported by ``checks``)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsVectorLayer,
)

from huijiao_plugin.compat import field_type
from huijiao_plugin.core.catalog import DatasetSpec
from huijiao_plugin.core.checks_model import (
    _DATE_TYPES,
    _DOUBLE_TYPES,
    _INTEGER_TYPES,
    _LEGACY_TO_CGCS2000,
    _STRING_TYPES,
    ERROR,
    RULE_CRS_LEGACY,
    RULE_CRS_MISSING,
    RULE_CRS_OTHER,
    RULE_CRS_WGS84,
    RULE_FIELD_MISSING,
    RULE_FIELD_TYPE,
    WARNING,
    Finding,
)

# ---- CRS --------------------------------------------------------------------------------------------------


def _epsg(crs: QgsCoordinateReferenceSystem) -> int | None:
    authid = crs.authid().upper()
    if authid.startswith("EPSG:") and authid[5:].isdigit():
        return int(authid[5:])
    return None


def is_cgcs2000(crs: QgsCoordinateReferenceSystem) -> bool:
    """EPSG:4490 or a CGCS2000 Gauss-Krüger zone (EPSG:4491–4554)."""
    code = _epsg(crs)
    if code is not None:
        return code == 4490 or 4491 <= code <= 4554
    proj = crs.toProj()
    desc = crs.description().upper()
    return "CGCS" in desc or ("+ellps=GRS80" in proj and "+towgs84" not in proj and "tmerc" in proj)


def suggest_cgcs2000(crs: QgsCoordinateReferenceSystem, x: float | None = None) -> str:
    """The CGCS2000 CRS to reproject/assign to, as 'EPSG:xxxx'."""
    code = _epsg(crs)
    if code in _LEGACY_TO_CGCS2000:
        return f"EPSG:{_LEGACY_TO_CGCS2000[code]}"
    if x is not None:
        if x > 1e7:  # 8-digit easting with the 3° zone prefix
            zone = int(x // 1_000_000)
            if 25 <= zone <= 45:
                return f"EPSG:{4513 + zone - 25}"
        elif abs(x) <= 180:
            return "EPSG:4490"
    return "EPSG:4524"


def crs_is_missing(crs: QgsCoordinateReferenceSystem) -> bool:
    """No CRS, or a GeoPackage 'Undefined geographic/cartesian SRS' placeholder."""
    if not crs.isValid():
        return True
    return "undefined" in crs.description().lower() or (not crs.authid() and not crs.toProj())


def check_crs(layer: QgsVectorLayer) -> list[Finding]:
    crs = layer.crs()
    extent = layer.extent()
    x = extent.center().x() if not extent.isEmpty() else None
    if crs_is_missing(crs):
        target = suggest_cgcs2000(crs, x)
        return [
            Finding(
                RULE_CRS_MISSING,
                ERROR,
                f"图层没有坐标系:请按数据实际坐标系为图层指定坐标系(按坐标推断应为 {target}),不要重投影",
                value="",
            )
        ]
    if is_cgcs2000(crs):
        return []
    proj = crs.toProj()
    desc = crs.description()
    target = suggest_cgcs2000(crs, x)
    code = _epsg(crs)
    legacy = (
        code in _LEGACY_TO_CGCS2000
        or "+ellps=IAU76" in proj
        or "+ellps=krass" in proj
        or "xian" in desc.lower()
        or "beijing" in desc.lower()
    )
    if legacy:
        name = "西安80" if ("IAU76" in proj or "xian" in desc.lower()) else "北京54"
        return [
            Finding(
                RULE_CRS_LEGACY,
                ERROR,
                f"坐标系为{name}({crs.authid() or desc}):"
                f"请使用省级转换参数将数据转换到 CGCS2000 ({target})后再提交",
                value=crs.authid() or desc,
            )
        ]
    if code in (4326, 3857) or "WGS 84" in desc or "+datum=WGS84" in proj:
        return [
            Finding(
                RULE_CRS_WGS84,
                ERROR,
                f"坐标系为 WGS84({crs.authid() or desc}):请重投影到 CGCS2000 ({target})",
                value=crs.authid() or desc,
            )
        ]
    return [
        Finding(
            RULE_CRS_OTHER,
            WARNING,
            f"坐标系 {crs.authid() or desc} 不是 CGCS2000:请重投影到 CGCS2000 ({target})",
            value=crs.authid() or desc,
        )
    ]


# ---- fields -----------------------------------------------------------------------------------------------


def _type_matches(expected: str, qtype: int) -> bool:
    if expected == "string":
        return qtype in _STRING_TYPES
    if expected == "integer":
        return qtype in _INTEGER_TYPES
    if expected == "double":
        return qtype in _DOUBLE_TYPES
    if expected == "date":
        return qtype in _DATE_TYPES or qtype in _STRING_TYPES
    return True


_TYPE_ZH = {"string": "文本", "integer": "整数", "double": "浮点数", "date": "日期"}


def field_label(field_spec: Any, actual: str = "") -> str:
    """A field as a person reads it: its Chinese alias, the name in brackets (“坐落单位代码”（ZLDWDM））."""
    name = actual or field_spec.name
    alias = next((a for a in field_spec.aliases if any("\u4e00" <= ch <= "\u9fff" for ch in a)), "")
    return f"“{alias}”（{name}）" if alias else name


def check_fields(layer: QgsVectorLayer, spec: DatasetSpec, mapping: dict[str, str]) -> list[Finding]:
    findings = []
    fields = layer.fields()
    for f in spec.fields:
        actual = mapping.get(f.name)
        if actual is None:
            if f.required:
                findings.append(
                    Finding(
                        RULE_FIELD_MISSING,
                        ERROR,
                        f"缺少必填字段 {f.name}({f.aliases[0] if f.aliases else f.name}):请添加该字段并填写",
                        field=f.name,
                    )
                )
            continue
        idx = fields.indexOf(actual)
        if idx < 0:
            continue
        qtype = field_type(fields.at(idx))
        if not _type_matches(f.type, qtype):
            findings.append(
                Finding(
                    RULE_FIELD_TYPE,
                    WARNING,
                    f"字段 {actual} 类型为 {fields.at(idx).typeName()},"
                    f"标准为{_TYPE_ZH.get(f.type, f.type)}:请按标准修改字段类型",
                    field=f.name,
                    value=fields.at(idx).typeName(),
                )
            )
    return findings
