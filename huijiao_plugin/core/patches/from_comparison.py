"""Turn a comparison output (any polygon layer with a ``rule_id`` field) into change patches.

Steps: pieces are grouped by (patch type, rule id); adjacent or overlapping pieces of a group are merged;
merged patches under the minimum patch area of their type (``schema.DEFAULT_MIN_AREA_M2``, domain.md §6,
configurable) are dropped; the rest are matched against the store (same type and rule, intersection over union
≥ ``match_iou``): a match is kept as it is, everything else becomes a new, numbered patch. Running the same
comparison again therefore creates nothing new.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from qgis.core import (
    QgsCoordinateTransform,
    QgsFeatureSource,
    QgsFeedback,
    QgsGeometry,
    QgsProject,
    QgsRectangle,
    QgsSpatialIndex,
)

from huijiao_plugin.core.patches import schema
from huijiao_plugin.core.patches.geometry import RegionLookup, polygon_parts, single_parts
from huijiao_plugin.core.patches.store import NewPatch, PatchStore, sql_literal
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

RULE_FIELDS = ("rule_id", "RULE_ID", "ruleid", "rule")
PARAM_FIELDS = ("rule_params", "RULE_PARAMS", "params")
INPUT_FIELDS = ("inputs", "INPUTS", "input_versions")
REASON_FIELDS = ("reason", "REASON", "category", "CATEGORY", "category_name", "reason_label", "yy")

# category codes of the comparison presets -> the Chinese reason stored on the patch (unknown codes are kept)
REASON_LABELS = {
    "candidate": "建议划入永久基本农田",
    "redline": "生态保护红线内",
    "fragile": "生态脆弱区",
    "drought": "严重干旱区",
    "soil_strict": "严格管控类耕地",
    "enclave": "插花地",
    "fragment": "细碎地块",
    "nongrain": "种植非粮作物",
    "occupied": "已非耕地（园林坑塘等占用）",
    "to_construction": "耕地变为建设用地",
    "monitoring": "建设类监测图斑",
    "covered": "已建高标准农田",
    "not_covered": "未建高标准农田",
    "hsf_nonfarmland": "高标准农田内非耕地",
    "block": "集中连片地块",
    "added": "新增",
    "removed": "减少",
    "modified": "变化",
    "only_a": "仅A有",
    "only_b": "仅B有",
    "both": "两者均有",
}
TYPE_FIELDS = ("patch_type", "PATCH_TYPE", "tblx_type")
WITHIN_TOLERANCE = "within_tolerance"  # the comparison's category for what its tolerances judged noise

# substring of a rule id (lower case) -> patch type; checked in order. Exact entries of ``type_map`` win.
DEFAULT_RULE_PATTERNS: tuple[tuple[str, str], ...] = (
    ("nongrain", schema.TYPE_NONGRAIN),
    ("feiliang", schema.TYPE_NONGRAIN),
    ("nonagri", schema.TYPE_NONAGRI),
    ("nonfarm", schema.TYPE_NONAGRI),
    ("feinong", schema.TYPE_NONAGRI),
    ("construction", schema.TYPE_NONAGRI),
    ("notinpbf", schema.TYPE_INCLUDE),
    ("include", schema.TYPE_INCLUDE),
    ("notpbf", schema.TYPE_INCLUDE),
    ("not_pbf", schema.TYPE_INCLUDE),
    ("hbf", schema.TYPE_INCLUDE),
    ("exclude", schema.TYPE_EXCLUDE),
    ("exit", schema.TYPE_EXCLUDE),
    ("fragile", schema.TYPE_EXCLUDE),
    ("slope", schema.TYPE_EXCLUDE),
    ("drought", schema.TYPE_EXCLUDE),
    ("polluted", schema.TYPE_EXCLUDE),
    ("soil", schema.TYPE_EXCLUDE),
    ("enclave", schema.TYPE_EXCLUDE),
    ("fragment", schema.TYPE_EXCLUDE),
    ("version", schema.TYPE_VERSION),
    ("diff", schema.TYPE_VERSION),
    ("boundary", schema.TYPE_BOUNDARY),
    ("mismatch", schema.TYPE_BOUNDARY),
)


def patch_type_for_rule(
    rule_id: str, type_map: dict[str, str] | None = None, default: str | None = None
) -> str | None:
    """The patch type of a rule id: ``type_map`` (exact), then ``DEFAULT_RULE_PATTERNS``, then ``default``."""
    if type_map and rule_id in type_map:
        return type_map[rule_id]
    lowered = (rule_id or "").lower()
    if lowered:
        for pattern, patch_type in DEFAULT_RULE_PATTERNS:
            if pattern in lowered:
                return patch_type
    return default


@dataclass
class ComparisonImport:
    created: list[str] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)
    dropped_small: int = 0
    pieces: int = 0
    skipped_no_type: int = 0
    invalid: int = 0

    def summary(self) -> str:
        return tr(
            "{created} patches created, {matched} already present, {dropped} under the minimum area dropped"
        ).format(created=len(self.created), matched=len(self.matched), dropped=self.dropped_small)


def _first_field(source: QgsFeatureSource, candidates: tuple[str, ...]) -> str | None:
    names = [f.name() for f in source.fields()]
    for candidate in candidates:
        if candidate in names:
            return candidate
    lowered = {n.lower(): n for n in names}
    for candidate in candidates:
        if candidate.lower() in lowered:
            return lowered[candidate.lower()]
    return None


def _merge_values(values: list[Any]) -> Any:
    distinct: list[Any] = []
    for value in values:
        if value is None or value == "":
            continue
        try:
            parsed = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            parsed = value
        if parsed not in distinct:
            distinct.append(parsed)
    if not distinct:
        return None
    return distinct[0] if len(distinct) == 1 else distinct


def _iou(a: QgsGeometry, b: QgsGeometry) -> float:
    inter = a.intersection(b)
    if inter is None or inter.isEmpty():
        return 0.0
    union_area = a.area() + b.area() - inter.area()
    return inter.area() / union_area if union_area > 0 else 0.0


def patches_from_comparison(
    store: PatchStore,
    source: QgsFeatureSource,
    default_type: str | None = None,
    type_map: dict[str, str] | None = None,
    min_areas: dict[str, float] | None = None,
    min_area_override: float | None = None,
    year: int | None = None,
    county_code: str = "",
    regions: RegionLookup | None = None,
    user: str = "",
    match_iou: float = 0.9,
    feedback: QgsFeedback | None = None,
    record: dict[str, Any] | None = None,
) -> ComparisonImport:
    """Create patches from ``source`` in ``store`` (see module doc). ``min_area_override`` (m²) replaces the
    per-type minimum areas when given. ``record`` is the comparison output's provenance (written once per
    output): each patch takes its rule values and source versions from it when the pieces carry none."""
    result = ComparisonImport()
    run_params = run_inputs = None
    if record:
        run_params = json.dumps(
            record.get("rule_profile", {}).get("values", {}), ensure_ascii=False, sort_keys=True
        )
        run_inputs = json.dumps(record.get("inputs", {}), ensure_ascii=False, sort_keys=True)
    rule_field = _first_field(source, RULE_FIELDS)
    if rule_field is None and default_type is None:
        raise ValueError(tr("The comparison output has no rule_id field; choose the patch type to use."))
    if default_type is not None and default_type not in schema.PATCH_TYPES:
        raise ValueError(tr("Unknown patch type: {value}").format(value=default_type))
    param_field = _first_field(source, PARAM_FIELDS)
    input_field = _first_field(source, INPUT_FIELDS)
    reason_field = _first_field(source, REASON_FIELDS)
    type_field = _first_field(source, TYPE_FIELDS)
    minimums = dict(schema.DEFAULT_MIN_AREA_M2)
    minimums.update(min_areas or {})

    transform = None
    if source.sourceCrs().isValid() and source.sourceCrs() != store.crs:
        transform = QgsCoordinateTransform(
            source.sourceCrs(), store.crs, QgsProject.instance().transformContext()
        )

    # 1. read and group pieces
    groups: dict[tuple[str, str], list[tuple[QgsGeometry, dict[str, Any]]]] = {}
    total = max(source.featureCount(), 1)
    for i, feature in enumerate(source.getFeatures()):
        if feedback is not None:
            if feedback.isCanceled():
                return result
            feedback.setProgress(30.0 * i / total)
        result.pieces += 1
        if reason_field and feature[reason_field] == WITHIN_TOLERANCE:
            result.skipped_no_type += 1  # judged noise by the comparison's tolerances: nothing to check
            continue
        geom = QgsGeometry(feature.geometry())
        if transform is not None and not geom.isNull():
            geom.transform(transform)
        geom = polygon_parts(geom)
        if geom is None:
            result.invalid += 1
            continue
        rule_id = str(feature[rule_field]) if rule_field and feature[rule_field] not in (None, "") else ""
        patch_type = None
        if type_field and feature[type_field] in schema.PATCH_TYPES:
            patch_type = feature[type_field]
        patch_type = patch_type or patch_type_for_rule(rule_id, type_map, default_type)
        if patch_type is None:
            result.skipped_no_type += 1
            continue
        attrs = {
            "rule_params": feature[param_field] if param_field else run_params,
            "inputs": feature[input_field] if input_field else run_inputs,
            "reason": feature[reason_field] if reason_field else None,
        }
        groups.setdefault((patch_type, rule_id), []).append((geom, attrs))

    # 2. merge adjacent pieces per group, 3. drop small ones, 4. match or create
    new_patches: list[NewPatch] = []
    done_groups = 0
    for (patch_type, rule_id), pieces in groups.items():
        done_groups += 1
        if feedback is not None:
            if feedback.isCanceled():
                return result
            feedback.setProgress(30.0 + 50.0 * done_groups / max(len(groups), 1))
        index = QgsSpatialIndex()
        for n, (geom, _attrs) in enumerate(pieces):
            index.addFeature(n, geom.boundingBox())
        merged = QgsGeometry.unaryUnion([geom for geom, _ in pieces])
        parts = single_parts(merged) if merged is not None and not merged.isEmpty() else []
        areas = store.derived.calculator.areas(parts) if parts else []
        minimum = min_area_override if min_area_override is not None else minimums.get(patch_type, 0.0)
        where = f"patch_type = {sql_literal(patch_type)} AND " + (
            f"rule_id = {sql_literal(rule_id)}" if rule_id else "rule_id IS NULL"
        )
        existing = [row for row in store.patches(where) if row["geometry"] is not None]
        existing_index = QgsSpatialIndex()
        for n, row in enumerate(existing):
            existing_index.addFeature(n, row["geometry"].boundingBox())
        for part, area in zip(parts, areas):
            if area < minimum:
                result.dropped_small += 1
                continue
            match = next(
                (
                    existing[n]
                    for n in existing_index.intersects(QgsRectangle(part.boundingBox()))
                    if _iou(existing[n]["geometry"], part) >= match_iou
                ),
                None,
            )
            if match is not None:
                result.matched.append(match["uuid"])
                continue
            members = [
                pieces[n][1]
                for n in index.intersects(QgsRectangle(part.boundingBox()))
                if pieces[n][0].intersects(part)
            ]
            reasons = _merge_values([REASON_LABELS.get(str(m["reason"]), m["reason"]) for m in members])
            reason_text = "；".join(str(r) for r in reasons) if isinstance(reasons, list) else (reasons or "")
            new_patches.append(
                NewPatch(
                    geometry=part,
                    patch_type=patch_type,
                    reason=str(reason_text),
                    rule_id=rule_id,
                    rule_params=_merge_values([m["rule_params"] for m in members]),
                    inputs=_merge_values([m["inputs"] for m in members]),
                    source=schema.SOURCE_COMPARISON,
                    year=year,
                )
            )
    if new_patches:
        # stable numbering: west→east, north→south within a run
        new_patches.sort(
            key=lambda p: (
                -round(p.geometry.centroid().asPoint().y(), 1),
                p.geometry.centroid().asPoint().x(),
            )
        )
        result.created = store.add_patches(
            new_patches,
            user=user,
            regions=regions,
            county_code=county_code,
            edit_source=schema.EDIT_COMPARISON,
        )
    if feedback is not None:
        feedback.setProgress(100.0)
    return result
