"""Checks of a layer against its catalog dataset (the standard), streaming and fast.

Two passes over the features:

1. attributes only (``QgsFeatureRequest.NoGeometry`` + the subset of checked fields): codes outside
   their domain (counted per value), DLMC not matching DLBM, duplicate BSM;
2. geometry + the area field: empty and invalid geometries (GEOS), and the area field (TBMJ …) against the
   recomputed 三调 ellipsoidal area, tolerance ``max(0.1 m², 1e-6·TBMJ)`` (domain.md §5.3).

Plus layer-level rules: CRS (CGCS2000 geographic and Gauss-Krüger 3°/6° zones accepted; Xian-80, Beijing-54,
WGS84 and a missing CRS are errors with the fix), required fields missing, field types.

Every :class:`Finding` has a rule id, a severity (``error`` blocks a submission, ``warning`` does not),
a Chinese message that says what to fix, the field and value concerned, a count and the feature ids.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeatureRequest,
    QgsGeometry,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QVariant

from huijiao_plugin.core.catalog import Catalog, DatasetSpec, get_catalog
from huijiao_plugin.core.checks_layer import (  # noqa: F401 - re-exported
    check_crs,
    check_fields,
    crs_is_missing,
    field_label,
    is_cgcs2000,
    suggest_cgcs2000,
)
from huijiao_plugin.core.checks_model import (  # noqa: F401 - re-exported
    AREA_BATCH,
    AREA_TOLERANCE_ABS,
    AREA_TOLERANCE_REL,
    ERROR,
    RULE_AREA_MISMATCH,
    RULE_AREA_MISSING,
    RULE_BSM_DUPLICATE,
    RULE_CODE_DOMAIN,
    RULE_CRS_LEGACY,
    RULE_CRS_MISSING,
    RULE_CRS_OTHER,
    RULE_CRS_WGS84,
    RULE_DLMC_MISMATCH,
    RULE_FIELD_MISSING,
    RULE_FIELD_TYPE,
    RULE_GEOMETRY_EMPTY,
    RULE_GEOMETRY_INVALID,
    RULE_IDS,
    RULE_NAMES_ZH,
    RULE_REQUIRED_EMPTY,
    WARNING,
    CheckCanceledError,
    CheckError,
    CheckReport,
    Finding,
    Progress,
)
from huijiao_plugin.core.ellipsoidal_area import EllipsoidalAreaCalculator, ZoneDetectionError

log = logging.getLogger(__name__)


# ---- the check --------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, QVariant) and value.isNull():
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, QVariant) and value.isNull()) or _text(value) == ""


_VALID, _INVALID, _EMPTY = 0, 1, 2


def _classify(value: Any, table: Any) -> tuple[int, str]:
    if _is_null(value):
        return _EMPTY, ""
    text = _text(value)
    if table.is_empty(text):
        return _EMPTY, ""
    return (_VALID if table.is_valid(text) else _INVALID), text


def _dlmc_mismatch(code_value: Any, name_value: Any, table: Any) -> tuple[str, str] | None:
    """(DLBM, DLMC) when DLMC is not the name of a known DLBM; None otherwise (unknown codes are
    reported by the domain rule)."""
    code = _text(code_value)
    expected = table.name(code) if code else None
    name = _text(name_value)
    if expected is not None and name != expected:
        return code, name
    return None


def _step(progress: Progress | None, value: float) -> None:
    if progress is None:
        return
    if progress.isCanceled():
        raise CheckCanceledError()
    progress.setProgress(value)


def check_layer(
    layer: QgsVectorLayer,
    dataset: str | DatasetSpec,
    catalog: Catalog | None = None,
    mapping: dict[str, str] | None = None,
    progress: Progress | None = None,
    area_tolerance_abs: float = AREA_TOLERANCE_ABS,
    area_tolerance_rel: float = AREA_TOLERANCE_REL,
    layer_label: str = "",
) -> CheckReport:
    """Check ``layer`` against catalog dataset ``dataset``. ``layer_label``: the layer's name as the user
    knows it (in the Layers panel), used in the messages; default ``layer.name()``.

    Raises CheckCanceledError when ``progress`` is cancelled, CheckError for an unusable layer.
    """
    from huijiao_plugin.core.recognition import describe_layer, map_fields

    catalog = catalog or get_catalog()
    spec = catalog.dataset(dataset) if isinstance(dataset, str) else dataset
    if not layer.isValid():
        raise CheckError(f"图层无效,无法检查:{layer.source()}")
    started = time.perf_counter()
    if mapping is None:
        mapping = map_fields(spec, describe_layer(layer))
    total = max(1, int(layer.featureCount()))
    findings: list[Finding] = []
    findings += check_crs(layer)
    findings += check_fields(layer, spec, mapping)
    _step(progress, 1)

    fields = layer.fields()
    # ---- pass 1: attributes -------------------------------------------------------------------------------
    domain_fields = []  # (spec field, actual name, code table)
    for f in spec.fields:
        if f.domain and f.name in mapping and catalog.code_table(f.domain) is not None:
            domain_fields.append((f, mapping[f.name], catalog.code_table(f.domain)))
    # required fields without a code table: an empty value is a warning (coded ones: the domain rule)
    required_fields = [
        (f, mapping[f.name]) for f in spec.fields if f.required and not f.domain and f.name in mapping
    ]
    dlbm_actual = mapping.get("DLBM")
    dlmc_actual = mapping.get("DLMC")
    bsm_actual = mapping.get("BSM")
    dlbm_table = catalog.code_table("dlbm")
    attr_names = sorted(
        {a for _, a, _ in domain_fields}
        | {a for _, a in required_fields}
        | {n for n in (dlbm_actual, dlmc_actual, bsm_actual) if n}
    )
    required_empty: dict[str, list[int]] = defaultdict(list)
    bad_codes: dict[tuple[str, str], list[int]] = defaultdict(list)
    bad_names: dict[tuple[str, str], list[int]] = defaultdict(list)
    bsm_seen: dict[str, list[int]] = {}
    if attr_names:
        idx = {name: fields.indexOf(name) for name in attr_names}
        request = QgsFeatureRequest().setFlags(QgsFeatureRequest.Flag.NoGeometry)
        request.setSubsetOfAttributes([idx[n] for n in attr_names])
        domain_plan = [
            (f.name, idx[actual], table, f.required) for f, actual, table in domain_fields if idx[actual] >= 0
        ]
        dlbm_i = idx.get(dlbm_actual, -1) if dlbm_actual else -1
        dlmc_i = idx.get(dlmc_actual, -1) if dlmc_actual else -1
        bsm_i = idx.get(bsm_actual, -1) if bsm_actual else -1
        required_plan = [(f.name, idx[actual]) for f, actual in required_fields if idx[actual] >= 0]
        # per domain field: raw value -> (status, text); values repeat a lot, so each is classified once
        caches: list[dict[Any, tuple[int, str]]] = [{} for _ in domain_plan]
        pair_cache: dict[tuple[Any, Any], tuple[str, str] | None] = {}
        for n, feat in enumerate(layer.getFeatures(request)):
            attrs = feat.attributes()
            fid = feat.id()
            for k, (std_name, i, table, required) in enumerate(domain_plan):
                value = attrs[i]
                if value.__class__ is QVariant:  # NULL
                    status, text = _EMPTY, ""
                else:
                    cached = caches[k].get(value)
                    if cached is None:
                        cached = caches[k][value] = _classify(value, table)
                    status, text = cached
                if status == _VALID:
                    continue
                if status == _EMPTY:
                    if required:
                        bad_codes[(std_name, "")].append(fid)
                    continue
                bad_codes[(std_name, text)].append(fid)
            if dlbm_i >= 0 and dlmc_i >= 0 and dlbm_table is not None:
                key = (attrs[dlbm_i], attrs[dlmc_i])
                try:
                    mismatch = pair_cache[key]
                except KeyError:
                    mismatch = pair_cache[key] = _dlmc_mismatch(key[0], key[1], dlbm_table)
                except TypeError:  # a NULL (unhashable QVariant) on either side
                    mismatch = _dlmc_mismatch(key[0], key[1], dlbm_table)
                if mismatch is not None:
                    bad_names[mismatch].append(fid)
            for std_name, i in required_plan:
                if _is_null(attrs[i]):
                    required_empty[std_name].append(fid)
            if bsm_i >= 0:
                bsm = attrs[bsm_i]
                if bsm.__class__ is not str:
                    bsm = _text(bsm)
                if bsm:
                    bsm_seen.setdefault(bsm, []).append(fid)
            if n % 20000 == 0:
                _step(progress, 1 + 44 * n / total)
    for (std_name, value), ids in sorted(bad_codes.items()):
        f = spec.field_spec(std_name)
        table = catalog.code_table(f.domain) if f and f.domain else None
        severity = ERROR if (f and f.confidence == "H" and table and table.confidence == "H") else WARNING
        label = "{}({})".format(mapping.get(std_name, std_name), table.name_zh if table else "")
        if value == "":
            msg = f"必填代码字段 {label} 为空:{len(ids)} 个要素,请按代码表填写"
        else:
            msg = f"字段 {label} 的值 {value} 不在代码表中:{len(ids)} 个要素,请改为代码表中的代码"
        findings.append(Finding(RULE_CODE_DOMAIN, severity, msg, std_name, value, len(ids), ids))
    for (code, name), ids in sorted(bad_names.items()):
        expected = dlbm_table.name(code) if dlbm_table else ""
        findings.append(
            Finding(
                RULE_DLMC_MISMATCH,
                ERROR,
                f"地类名称与地类编码不符:DLBM={code} 应为“{expected}”,"
                f"实为“{name}”({len(ids)} 个要素),请修正 DLMC",
                "DLMC",
                f"{code}/{name}",
                len(ids),
                ids,
            )
        )
    for bsm, ids in sorted(bsm_seen.items()):
        if len(ids) > 1:
            findings.append(
                Finding(
                    RULE_BSM_DUPLICATE,
                    ERROR,
                    f"标识码 BSM={bsm} 重复 {len(ids)} 次:标识码在图层内必须唯一,请重新编号",
                    "BSM",
                    bsm,
                    len(ids),
                    ids,
                )
            )
    label = layer_label or layer.name()
    for std_name, ids in sorted(required_empty.items()):
        f = spec.field_spec(std_name)
        findings.append(
            Finding(
                RULE_REQUIRED_EMPTY,
                WARNING,
                f"图层“{label}”中 {len(ids)} 个要素的必填字段{field_label(f, mapping[std_name])}为空：请填写",
                std_name,
                "",
                len(ids),
                ids,
            )
        )
    _step(progress, 45)

    # ---- pass 2: geometry and area ------------------------------------------------------------------------
    area_std = spec.geometry_area_field
    area_spec = spec.field_spec(area_std) if area_std else None
    area_actual = mapping.get(area_std) if area_std else None
    check_area = (
        spec.geometry == "polygon"
        and area_actual is not None
        and spec.area_semantics.get("method") == "ellipsoidal"
        and area_spec is not None
        and area_spec.confidence in ("H", "M")
        and fields.indexOf(area_actual) >= 0
    )
    empty_ids: list[int] = []
    invalid_ids: list[int] = []
    area_bad: list[tuple[int, float, float]] = []
    area_missing: list[int] = []
    if layer.isSpatial():
        crs = QgsCoordinateReferenceSystem() if crs_is_missing(layer.crs()) else layer.crs()
        calc = EllipsoidalAreaCalculator(crs) if check_area else None
        request = QgsFeatureRequest()
        area_i = fields.indexOf(area_actual) if check_area else -1
        request.setSubsetOfAttributes([area_i] if area_i >= 0 else [])
        batch: list[tuple[int, QgsGeometry, Any]] = []

        def flush() -> None:
            nonlocal calc
            if not batch or calc is None:
                batch.clear()
                return
            try:
                areas = calc.areas([g for _, g, _ in batch])
            except ZoneDetectionError:  # no CRS and no zone prefix: reported by the CRS rule
                log.warning("area check skipped for %s: zone unknown", layer.name())
                calc = None
                batch.clear()
                return
            for (fid, _, recorded), computed in zip(batch, areas):
                if _is_null(recorded):
                    area_missing.append(fid)
                    continue
                try:
                    value = float(recorded)
                except (TypeError, ValueError):
                    area_missing.append(fid)
                    continue
                if value <= 0:
                    area_missing.append(fid)
                    continue
                if abs(value - computed) > max(area_tolerance_abs, area_tolerance_rel * value):
                    area_bad.append((fid, value, computed))
            batch.clear()

        for n, feat in enumerate(layer.getFeatures(request)):
            geom = feat.geometry()
            fid = feat.id()
            if geom is None or geom.isNull() or geom.isEmpty():
                empty_ids.append(fid)
                continue
            if not geom.isGeosValid():
                invalid_ids.append(fid)
            if calc is not None:
                batch.append((fid, geom, feat.attributes()[area_i]))
                if len(batch) >= AREA_BATCH:
                    flush()
            if n % 5000 == 0:
                _step(progress, 45 + 54 * n / total)
        flush()
    if empty_ids:
        findings.append(
            Finding(
                RULE_GEOMETRY_EMPTY,
                ERROR,
                f"{len(empty_ids)} 个要素没有几何(空几何):请补绘图形或删除这些要素",
                count=len(empty_ids),
                feature_ids=empty_ids,
            )
        )
    if invalid_ids:
        findings.append(
            Finding(
                RULE_GEOMETRY_INVALID,
                ERROR,
                f"{len(invalid_ids)} 个要素几何无效(自相交、环方向或洞位置错误):请用“修复几何”修正后再检查",
                count=len(invalid_ids),
                feature_ids=invalid_ids,
            )
        )
    if area_missing:
        findings.append(
            Finding(
                RULE_AREA_MISSING,
                ERROR,
                f"{len(area_missing)} 个要素的面积字段 {area_actual} 为空或不大于 0:请按椭球面积重新计算",
                field=area_std or "",
                count=len(area_missing),
                feature_ids=area_missing,
            )
        )
    if area_bad:
        worst = max(area_bad, key=lambda t: abs(t[1] - t[2]))
        findings.append(
            Finding(
                RULE_AREA_MISMATCH,
                ERROR,
                f"{len(area_bad)} 个要素的 {area_actual} 与椭球面积之差超过容差 max(0.1 m², 1e-6×面积)"
                f"(最大差 {worst[1] - worst[2]:.2f} m²):"
                f"请用椭球面积重新计算 {area_actual}",
                field=area_std or "",
                value=f"{worst[1] - worst[2]:.2f}",
                count=len(area_bad),
                feature_ids=[t[0] for t in area_bad],
            )
        )
    _step(progress, 100)
    return CheckReport(
        dataset_id=spec.id,
        layer_name=layer.name(),
        feature_count=int(layer.featureCount()),
        findings=findings,
        field_mapping=dict(mapping),
        elapsed_s=time.perf_counter() - started,
        crs=layer.crs().authid(),
    )
