"""The 耕地比对 policy presets, declared once (:class:`PresetSpec`, see ``spec.py``), and running them on one
:class:`CountyOverlay` (domain.md §10 defaults, configurable).

Each run returns a :class:`PresetResult`: pieces (geometry, category, attributes, region codes, 三调
ellipsoidal area) plus the rule parameters and the inputs (names / versions) used. The Processing algorithms
and the dock's parameter widgets are generated from ``PRESETS``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP

from huijiao_plugin.compat import FieldType, release_freed_memory
from huijiao_plugin.core.compare import provenance
from huijiao_plugin.core.compare.engine import CompareError, CountyOverlay
from huijiao_plugin.core.compare.partition import WITHIN, partition
from huijiao_plugin.core.compare.questions import (
    _thresholds,
    boundary_compare,
    contiguity,
    farmland_nonagri,
    hsf_coverage,
    hsf_not_in_pbf,
    pbf_exit_candidates,
    pbf_nongrain,
    size_class,
    version_diff,
)
from huijiao_plugin.core.compare.rules import _text
from huijiao_plugin.core.compare.spec import (
    CHOICE,
    CODE_LENGTH,
    CODES,
    LEVELS,
    NUMBER,
    CategorySpec,
    CompareOptions,
    ParamSpec,
    Piece,
    PresetResult,
    PresetSpec,
    RoleSpec,
)
from huijiao_plugin.core.units import M2_PER_MU, rounded_area
from huijiao_plugin.toolbelt.i18n import tr

LOG = logging.getLogger(__name__)

__all__ = [
    "CODE_LENGTH",
    "LEVELS",
    "PRESETS",
    "SUITE_ORDER",
    "CompareOptions",
    "Piece",
    "PresetResult",
    "PresetSpec",
    "run_preset",
    "run_suite",
    "size_class",
]


# fmt: off
# (one-line QT_TRANSLATE_NOOP calls: pylupdate5 does not extract them when split with a trailing comma)
REGION_ROLES = (RoleSpec("XZQ", True), RoleSpec("CJDCQ", True))
FARMLAND_CODES = ParamSpec("FARMLAND_CODES", QT_TRANSLATE_NOOP("@default", "Farmland DLBM codes (comma separated)"), CODES, "farmland_codes")  # noqa: E501
BASE = (("farmland", QT_TRANSLATE_NOOP("@default", "Farmland in DLTB")), ("pbf", QT_TRANSLATE_NOOP("@default", "Permanent basic farmland")))  # noqa: E501
TOLERANCE = ParamSpec("TOLERANCE", QT_TRANSLATE_NOOP("@default", "Contiguity tolerance (m)"), NUMBER, "contiguity_tolerance_m", "tolerance", help=QT_TRANSLATE_NOOP("@default", "Patches closer than this belong to one contiguous block."))  # noqa: E501
FARMLAND_FILTER = QT_TRANSLATE_NOOP("@default", "DLBM in the farmland codes")
SIDE_FILTER = QT_TRANSLATE_NOOP("@default", "DLBM in the side's codes (default: the farmland codes when the layer is a DLTB layer)")  # noqa: E501


def _reads_farmlandnonagri(options: CompareOptions) -> tuple[str, ...]:
    return ("PBF",) if options.base == "pbf" else ("DLTB",)


PRESETS: dict[str, PresetSpec] = {
    spec.id: spec
    for spec in (
        PresetSpec(
            id="hsfnotinpbf",
            title=QT_TRANSLATE_NOOP("@default", "Candidates to bring into PBF"),
            roles=(RoleSpec("DLTB", filter=FARMLAND_FILTER), RoleSpec("HSF"), RoleSpec("PBF"), *REGION_ROLES),
            categories=(CategorySpec("candidate", QT_TRANSLATE_NOOP("@default", "Candidate to bring into PBF")),),  # noqa: E501
            params=(FARMLAND_CODES,),
            param_keys=["farmland_codes", "farmland_include_adjustable"],
            func=hsf_not_in_pbf,
            help=QT_TRANSLATE_NOOP("@default", "Built high-standard farmland on farmland that is not permanent basic farmland."),  # noqa: E501
        ),
        PresetSpec(
            id="pbfexitcandidates",
            title=QT_TRANSLATE_NOOP("@default", "PBF exit candidates"),
            roles=(RoleSpec("PBF"), RoleSpec("DLTB", True), RoleSpec("STBHHX", True), RoleSpec("YZGHQ", True), RoleSpec("TRHJZL", True), *REGION_ROLES),  # noqa: E501
            categories=(
                CategorySpec("redline", QT_TRANSLATE_NOOP("@default", "Ecological protection red line")),
                CategorySpec("fragile", QT_TRANSLATE_NOOP("@default", "Ecologically fragile")),
                CategorySpec("drought", QT_TRANSLATE_NOOP("@default", "Severe drought area")),
                CategorySpec("soil_strict", QT_TRANSLATE_NOOP("@default", "Strictly controlled soil")),
                CategorySpec("enclave", QT_TRANSLATE_NOOP("@default", "Enclave")),
                CategorySpec("fragment", QT_TRANSLATE_NOOP("@default", "Fragmented plot")),
            ),
            params=(
                ParamSpec("FRAGILE_CODES", QT_TRANSLATE_NOOP("@default", "Ecologically fragile TBXHDM codes"), CODES, "fragile_tbxhdm"),  # noqa: E501
                ParamSpec("SOIL_STRICT_VALUES", QT_TRANSLATE_NOOP("@default", "Values of the strictly controlled soil category"), CODES, "soil_strict_values"),  # noqa: E501
                ParamSpec("ENCLAVE_FRDBS_VALUES", QT_TRANSLATE_NOOP("@default", "FRDBS values marking enclaves"), CODES, "enclave_frdbs_values"),  # noqa: E501
                ParamSpec("FRAGMENT_MAX_MU", QT_TRANSLATE_NOOP("@default", "Fragment threshold: blocks under this many mu"), CODES, "fragment_max_mu"),  # noqa: E501
                TOLERANCE,
            ),
            param_keys=["fragile_tbxhdm", "steep_slope_grade", "steep_slope_gdlx", "soil_strict_values", "enclave_frdbs_values", "enclave_outside_township", "fragment_max_mu", "contiguity_tolerance_m"],  # noqa: E501
            func=pbf_exit_candidates,
            exclusive=False,
            help=QT_TRANSLATE_NOOP("@default", "PBF inside each exit reason: red line, fragile, drought, strictly controlled soil, enclave, fragment."),  # noqa: E501
        ),
        PresetSpec(
            id="pbfnongrain",
            title=QT_TRANSLATE_NOOP("@default", "PBF non-grain use"),
            roles=(RoleSpec("PBF"), RoleSpec("DLTB"), *REGION_ROLES),
            categories=(
                CategorySpec("nongrain", QT_TRANSLATE_NOOP("@default", "Non-grain crops")),
                CategorySpec("occupied", QT_TRANSLATE_NOOP("@default", "No longer farmland")),
            ),
            params=(
                ParamSpec("NONGRAIN_CODES", QT_TRANSLATE_NOOP("@default", "Non-grain ZZSXDM codes (e.g. FLS,WG)"), CODES, "nongrain_codes"),  # noqa: E501
                FARMLAND_CODES,
                ParamSpec("OCCUPATION_PREFIXES", QT_TRANSLATE_NOOP("@default", "DLBM prefixes counted as occupation (empty = all)"), CODES, "nongrain_occupation_prefixes"),  # noqa: E501
            ),
            param_keys=["farmland_codes", "nongrain_codes", "nongrain_include_lyfl", "nongrain_include_lljz", "nongrain_occupation", "nongrain_occupation_prefixes"],  # noqa: E501
            func=pbf_nongrain,
            help=QT_TRANSLATE_NOOP("@default", "PBF on farmland with a non-grain planting attribute, or on land that is no longer farmland."),  # noqa: E501
        ),
        PresetSpec(
            id="farmlandnonagri",
            title=QT_TRANSLATE_NOOP("@default", "Farmland turned non-agricultural"),
            roles=(RoleSpec("DLTB", filter=FARMLAND_FILTER), RoleSpec("PBF", True), RoleSpec("DLTB_N1", True), RoleSpec("JCTB", True), *REGION_ROLES),  # noqa: E501
            categories=(
                CategorySpec("to_construction", QT_TRANSLATE_NOOP("@default", "Farmland turned into construction land")),  # noqa: E501
                CategorySpec("monitoring", QT_TRANSLATE_NOOP("@default", "Under construction-type monitoring patch")),  # noqa: E501
            ),
            params=(
                ParamSpec("BASE", QT_TRANSLATE_NOOP("@default", "Base layer"), CHOICE, option="base", choices=BASE, default="farmland"),  # noqa: E501
                ParamSpec("CONSTRUCTION_PREFIXES", QT_TRANSLATE_NOOP("@default", "Construction DLBM prefixes"), CODES, "construction_prefixes"),  # noqa: E501
                ParamSpec("MONITORING_TBLX", QT_TRANSLATE_NOOP("@default", "Construction-type TBLX codes of monitoring patches"), CODES, "monitoring_construction_tblx"),  # noqa: E501
                FARMLAND_CODES,
            ),
            param_keys=["farmland_codes", "construction_prefixes", "construction_include_1006", "construction_include_1202", "monitoring_construction_tblx"],  # noqa: E501
            func=farmland_nonagri,
            help=QT_TRANSLATE_NOOP("@default", "Farmland or PBF of year N that is construction land in year N+1 or under construction-type monitoring patches."),  # noqa: E501
            reads=lambda o: (*_reads_farmlandnonagri(o), "DLTB_N1", "JCTB", "XZQ", "CJDCQ"),
            applicable=lambda has: has("DLTB") and (has("DLTB_N1") or has("JCTB")),
        ),
        PresetSpec(
            id="hsfcoverage",
            title=QT_TRANSLATE_NOOP("@default", "HSF coverage of PBF"),
            roles=(RoleSpec("PBF"), RoleSpec("HSF"), RoleSpec("DLTB", True, FARMLAND_FILTER), *REGION_ROLES),
            categories=(
                CategorySpec("covered", QT_TRANSLATE_NOOP("@default", "PBF covered by HSF")),
                CategorySpec("not_covered", QT_TRANSLATE_NOOP("@default", "PBF not covered by HSF")),
                CategorySpec("hsf_nonfarmland", QT_TRANSLATE_NOOP("@default", "HSF on non-farmland")),
            ),
            params=(FARMLAND_CODES,),
            param_keys=["farmland_codes"],
            func=hsf_coverage,
            help=QT_TRANSLATE_NOOP("@default", "PBF covered and not covered by high-standard farmland, HSF on non-farmland, coverage per region."),  # noqa: E501
        ),
        PresetSpec(
            id="contiguity",
            title=QT_TRANSLATE_NOOP("@default", "Contiguous blocks"),
            roles=(RoleSpec("PBF", True), RoleSpec("DLTB", True, FARMLAND_FILTER), *REGION_ROLES),
            categories=(CategorySpec("block", QT_TRANSLATE_NOOP("@default", "Contiguous block")),),
            params=(
                ParamSpec("BASE", QT_TRANSLATE_NOOP("@default", "Base layer"), CHOICE, option="base", choices=BASE, default="pbf"),  # noqa: E501
                TOLERANCE,
                ParamSpec("SIZE_CLASSES", QT_TRANSLATE_NOOP("@default", "Block size class bounds in mu (e.g. 10,50,100,500,1000)"), CODES, "contiguity_size_classes_mu"),  # noqa: E501
            ),
            param_keys=["contiguity_tolerance_m", "contiguity_size_classes_mu", "farmland_codes"],
            func=contiguity,
            help=QT_TRANSLATE_NOOP("@default", "Blocks of adjacent PBF or farmland within a tolerance and their size distribution."),  # noqa: E501
            statistics=("size_class",),
            reads=lambda o: ("DLTB",) if o.base == "farmland" else ("PBF",),
            applicable=lambda has: has("PBF"),
        ),
        PresetSpec(
            id="versiondiff",
            title=QT_TRANSLATE_NOOP("@default", "Version differences"),
            roles=(RoleSpec("DLTB"), RoleSpec("DLTB_N1"), *REGION_ROLES),
            categories=(
                CategorySpec("added", QT_TRANSLATE_NOOP("@default", "Added")),
                CategorySpec("removed", QT_TRANSLATE_NOOP("@default", "Removed")),
                CategorySpec("modified", QT_TRANSLATE_NOOP("@default", "Modified")),
            ),
            params=(
                ParamSpec("COMPARE_FIELDS", QT_TRANSLATE_NOOP("@default", "Attributes to compare (e.g. DLBM,ZZSXDM)"), CODES, "versiondiff_fields"),  # noqa: E501
                ParamSpec("MATCH_RATIO", QT_TRANSLATE_NOOP("@default", "Minimum overlap ratio of a matched pair (0–1)"), CODES, "versiondiff_match_ratio"),  # noqa: E501
            ),
            param_keys=["versiondiff_fields", "versiondiff_match_ratio"],
            func=version_diff,
            partition=False,
            help=QT_TRANSLATE_NOOP("@default", "DLTB year N against year N+1, matched spatially: added, removed and modified patches."),  # noqa: E501
        ),
        PresetSpec(
            id="boundarycompare",
            title=QT_TRANSLATE_NOOP("@default", "Boundary comparison"),
            roles=(RoleSpec("A", filter=SIDE_FILTER), RoleSpec("B", filter=SIDE_FILTER), *REGION_ROLES),
            categories=(
                CategorySpec("only_a", QT_TRANSLATE_NOOP("@default", "Only in A")),
                CategorySpec("only_b", QT_TRANSLATE_NOOP("@default", "Only in B")),
                CategorySpec("both", QT_TRANSLATE_NOOP("@default", "In both")),
            ),
            params=(
                ParamSpec("A_DLBM", QT_TRANSLATE_NOOP("@default", "Layer A: DLBM codes to compare (empty: farmland codes if A is a DLTB layer, else all; * = all)"), CODES, "boundary_a_dlbm"),  # noqa: E501
                ParamSpec("B_DLBM", QT_TRANSLATE_NOOP("@default", "Layer B: DLBM codes to compare (empty: farmland codes if B is a DLTB layer, else all; * = all)"), CODES, "boundary_b_dlbm"),  # noqa: E501
            ),
            param_keys=["boundary_a_dlbm", "boundary_b_dlbm", "farmland_codes"],
            func=boundary_compare,
            disjoint_by_definition=True,
            help=QT_TRANSLATE_NOOP("@default", "Any two polygon layers: only in A, only in B, in both, and the overlap ratio per feature."),  # noqa: E501
        ),
    )
}
# fmt: on

# category value -> English label (translated at use)
CATEGORY_LABELS = {c.value: c.label for spec in PRESETS.values() for c in spec.all_categories}

SUITE_ORDER = [
    "versiondiff",
    "pbfnongrain",
    "pbfexitcandidates",
    "hsfcoverage",
    "hsfnotinpbf",
    "farmlandnonagri",
    "contiguity",
    "boundarycompare",
]


# --- running ------------------------------------------------------------------------------------------------


class RegionResolver:
    """Region codes (county 6 / township 9 / village 12 digits) of a piece: from its ZLDWDM, else from the
    CJDCQ / XZQ polygon under its point-on-surface."""

    def __init__(self, ov: CountyOverlay) -> None:
        self.ov = ov
        self.names: dict[str, str] = {}
        self._layers = []
        for role, code_key, name_key in (("CJDCQ", "CJDM", "CJMC"), ("XZQ", "XZQDM", "XZQMC")):
            if ov.has(role):
                fs = ov.features(role)
                self._layers.append((fs, code_key))
                for attrs in fs.attrs:
                    # the level comes from the code, not from the layer: 9 digits a township, 12 (or a
                    # 19-digit ZLDWDM) a village; a village layer offered as XZQ is aggregated to townships
                    # by code prefix (``codes``) and its names stay village names
                    code = _text(attrs.get(code_key))
                    length = 12 if len(code) >= 12 else 9 if len(code) >= 9 else 0
                    if length:
                        self.names.setdefault(code[:length], _text(attrs.get(name_key)))

    def code(self, piece: Piece) -> str:
        if piece.zldwdm:
            return piece.zldwdm
        if not self._layers:
            return ""
        point = piece.geom.pointOnSurface()
        for fs, key in self._layers:
            for k in fs.candidates(point.boundingBox()):
                if fs.geoms[k].contains(point):
                    return _text(fs.attrs[k].get(key))
        return ""

    def codes(self, piece: Piece) -> tuple[str, str, str]:
        code = self.code(piece)
        return (code[:6], code[:9] if len(code) >= 9 else "", code[:12] if len(code) >= 12 else "")


def _reads(spec: PresetSpec, options: CompareOptions) -> tuple[str, ...]:
    """The layers a preset reads (some optional layers only with some options), regions last."""
    if spec.reads is not None:
        return spec.reads(options)
    return (*spec.required, *spec.optional)


def run_preset(
    preset_id: str,
    ov: CountyOverlay,
    options: CompareOptions | None = None,
    overrides: dict[str, Any] | None = None,
) -> PresetResult:
    """Run one preset on ``ov``; ``overrides`` replace rule-profile keys for this run."""
    if preset_id not in PRESETS:
        raise CompareError(f"未知的比对规则: {preset_id}")
    spec = PRESETS[preset_id]
    options = dataclasses.replace(options) if options else CompareOptions()  # filled in below: a copy
    base_profile = ov.profile
    if overrides:
        ov.profile = base_profile.with_overrides(overrides)
    try:
        min_area, min_width, noise = _thresholds(ov, options)
        params = ov.profile.subset(spec.param_keys)
        params.update({"min_area_m2": min_area, "min_width_m": min_width, "noise_width_m": noise})
        for p in spec.all_params:
            if p.kind == CHOICE and p.option:  # e.g. the base layer: recorded with the rule parameters
                params[p.option] = getattr(options, p.option) or p.default
                setattr(options, p.option, params[p.option])
        ov.preload(_reads(spec, options))  # read at once, in parallel
        if spec.partition:
            # exact pieces first; the tolerances then judge each category's union (partition.py)
            exact = dataclasses.replace(options, min_area=0.0, min_width=0.0, noise_width=0.0)
            pieces, fields = spec.func(ov, exact, params)
            ov.check()
            pieces = partition(
                pieces,
                spec.category_values(),
                spec.exclusive and not spec.disjoint_by_definition,
                (min_area, min_width, noise),
                ov.runner.workers,
            )
            fields = [*fields, ("shared_m2", FieldType.Double), ("tolerance_of", FieldType.String)]
        else:
            pieces, fields = spec.func(ov, options, params)
        ov.check()
        areas = ov.areas(p.geom for p in pieces)
        resolver = RegionResolver(ov)
        for piece, area in zip(pieces, areas):
            piece.area_m2 = area
            piece.codes = resolver.codes(piece)
        bounds = params.pop("size_bounds", None)
        if bounds is not None:  # blocks sized by their ellipsoidal area
            for piece in pieces:
                mu = piece.area_m2 / M2_PER_MU
                piece.attrs["size_class"] = WITHIN if piece.category == WITHIN else size_class(mu, bounds)
        roles = [r for r in spec.required + spec.optional if ov.loaded(r)]
        inputs = ov.input_info(roles)
        rule_id = f"huijiao:{preset_id}"
        extra = {"options": dataclasses.asdict(options), "partition": spec.partition}
        return PresetResult(
            rule_id=rule_id,
            title=tr(spec.title),
            pieces=pieces,
            extra_fields=fields,
            rule_params=params,
            inputs=inputs,
            repaired=ov.repaired_report(),
            region_names=resolver.names,
            provenance=provenance.build(preset_id, rule_id, params, ov.profile.sources, inputs, extra),
        )
    finally:
        ov.profile = base_profile
        release_freed_memory()


def run_suite(
    ov: CountyOverlay, preset_ids: Sequence[str] | None = None, options: CompareOptions | None = None
) -> dict[str, PresetResult]:
    """Every applicable preset on one overlay (shared pieces); presets whose inputs are missing are
    skipped."""
    ids = list(preset_ids) if preset_ids else [p for p in SUITE_ORDER if applicable(p, ov)]
    out: dict[str, PresetResult] = {}
    for n, preset_id in enumerate(ids):
        ov.check()
        out[preset_id] = run_preset(preset_id, ov, options)
        ov.progress(100.0 * (n + 1) / len(ids))
    return out


def applicable(preset_id: str, ov: CountyOverlay) -> bool:
    spec = PRESETS[preset_id]
    if not all(ov.has(r) for r in spec.required):
        return False
    return spec.applicable is None or bool(spec.applicable(ov.has))


def category_label(category: str) -> str:
    return tr(CATEGORY_LABELS.get(category, category))


def area_values(m2: float) -> tuple[float, float, float]:
    """(m², 亩, 公顷) rounded as in statistics tables (2, 2, 4 decimals)."""
    return rounded_area(m2, "m2"), rounded_area(m2, "mu"), rounded_area(m2, "ha")
