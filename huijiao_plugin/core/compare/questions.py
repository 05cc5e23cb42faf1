"""The policy questions of the 耕地比对 presets, answered from one :class:`CountyOverlay`: one function per
preset, ``func(overlay, options, resolved rule params) -> (pieces, extra fields)``. Pieces under ``min_area``
m² or with mean width (area / perimeter) under ``min_width`` m are slivers (domain.md §6) and are never
reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy
from qgis.core import QgsGeometry

from huijiao_plugin.compat import FieldType
from huijiao_plugin.core.compare import vectorized
from huijiao_plugin.core.compare.engine import (
    CompareError,
    CountyOverlay,
    Selection,
    kept_parts,
    polygonal,
    union_parts,
)
from huijiao_plugin.core.compare.engine.noise import sliver_rule_passes
from huijiao_plugin.core.compare.engine.pairwise import pieces_by_features
from huijiao_plugin.core.compare.engine.reading import Columns
from huijiao_plugin.core.compare.engine.runner import _prepared
from huijiao_plugin.core.compare.engine.unions import difference_by_union
from huijiao_plugin.core.compare.rules import _text, parse_code_list
from huijiao_plugin.core.compare.spec import CompareOptions, Piece
from huijiao_plugin.core.units import M2_PER_MU

LOG = logging.getLogger(__name__)

S = FieldType.String
D = FieldType.Double
INT = FieldType.Int


# --- helpers ------------------------------------------------------------------------------------------------


def _thresholds(ov: CountyOverlay, opt: CompareOptions) -> tuple[float, float, float]:
    """(min_area m², min_width m, noise_width m): options first, else the rule profile."""
    min_area = opt.min_area if opt.min_area is not None else float(ov.profile.get("min_area_m2"))
    min_width = opt.min_width if opt.min_width is not None else float(ov.profile.get("min_width_m"))
    noise = opt.noise_width if opt.noise_width is not None else float(ov.profile.get("noise_width_m"))
    return min_area, min_width, noise


def _attr(ov: CountyOverlay, role: str, i: int, key: str) -> str:
    return ov.text(role, key, i)


def _zl(ov: CountyOverlay, role: str, i: int) -> str:
    return ov.text(role, "ZLDWDM", i) or ov.text(role, "XZQDM", i)


def _id(ov: CountyOverlay, role: str, i: int) -> str:
    return ov.text(role, "BSM", i) or str(ov.features(role).fids[i])


def _pieces_from(
    geom: QgsGeometry | None, category: str, attrs: dict[str, Any], zl: str, thr: tuple[float, float, float]
) -> list[Piece]:
    return [Piece(part, category, dict(attrs), zl) for part in kept_parts(geom, *thr)]


def _row_from(
    geoms: Sequence[QgsGeometry],
    category: str,
    attrs: dict[str, Any],
    zl: str,
    thr: tuple[float, float, float],
) -> list[Piece]:
    """One multipart row (per patch and reason) from the kept parts of the union of ``geoms``."""
    parts = kept_parts(union_parts(list(geoms)), *thr)
    if not parts:
        return []
    geom = parts[0] if len(parts) == 1 else QgsGeometry.collectGeometry(parts)
    return [Piece(geom, category, dict(attrs), zl)]


# --- presets ------------------------------------------------------------------------------------------------


def hsf_not_in_pbf(ov: CountyOverlay, opt: CompareOptions, params: dict[str, Any]) -> Any:
    """(HSF ∩ DLTB farmland) − PBF: 已建高标准农田未划入永农 — candidates to bring into PBF."""
    ov.require("DLTB", "HSF", "PBF")
    thr = _thresholds(ov, opt)
    farm = ov.features("DLTB").attrs.mask(ov.profile.is_farmland, "DLBM")
    # (HSF ∩ farmland) − PBF = (HSF − PBF) ∩ farmland: one difference per plot, not one per plot and patch
    rest = [(i, g) for i, g in ov.by_union("HSF", "PBF", "difference") if g is not None]
    pieces: list[Piece] = []
    for i, j, geom in pieces_by_features(rest, ov.features("DLTB"), ov.runner, Selection(farm)):
        attrs = {
            "XMBH": _attr(ov, "HSF", i, "XMBH"),
            "XMMC": _attr(ov, "HSF", i, "XMMC"),
            "DLTB_BSM": _id(ov, "DLTB", j),
            "DLBM": _attr(ov, "DLTB", j, "DLBM"),
        }
        pieces += _pieces_from(geom, "candidate", attrs, _zl(ov, "DLTB", j), thr)
    fields = [("XMBH", S), ("XMMC", S), ("DLTB_BSM", S), ("DLBM", S)]
    return pieces, fields


def pbf_exit_candidates(ov: CountyOverlay, opt: CompareOptions, params: dict[str, Any]) -> Any:
    """PBF inside each exit reason, one row per PBF patch and reason."""
    ov.require("PBF")
    thr = _thresholds(ov, opt)
    prof = ov.profile
    pbf = ov.features("PBF")
    rows: dict[tuple[int, str], list[QgsGeometry]] = {}

    def add(i: int, reason: str, geom: QgsGeometry | None) -> None:
        if geom is not None:
            rows.setdefault((i, reason), []).append(geom)

    if ov.has("STBHHX"):
        for i, geom in ov.by_union("PBF", "STBHHX", "intersection"):
            add(i, "redline", geom)
    if ov.has("YZGHQ"):
        for i, geom in ov.by_union("PBF", "YZGHQ", "intersection"):
            add(i, "drought", geom)
    if ov.has("TRHJZL"):
        soil = ov.features("TRHJZL")
        strict = soil.attrs.mask(prof.is_strict_soil, "SOIL_CLASS")
        for i, geom in ov.by_union("PBF", "TRHJZL", "intersection", b_pred=lambda j: strict[j], key="strict"):
            add(i, "soil_strict", geom)
    if ov.has("DLTB"):
        dltb = ov.features("DLTB")
        fragile = dltb.attrs.mask(prof.is_fragile, "TBXHDM", "GDPDJB", "GDLX")
        enclave = dltb.attrs.mask(prof.is_enclave_flag, "FRDBS")
        either = Selection(numpy.logical_or(fragile, enclave))
        exits = ov.pairs("PBF", "DLTB", b_pred=either, key="fragile-enclave")
        for i, j, geom in exits:
            if fragile[j]:
                add(i, "fragile", geom)
            if enclave[j]:
                add(i, "enclave", geom)
    if ov.has("XZQ") and prof.get("enclave_outside_township"):
        for i, geom in _outside_own_township(ov):
            add(i, "enclave", geom)
    # 细碎地: contiguous PBF blocks smaller than fragment_max_mu
    tolerance = opt.tolerance if opt.tolerance is not None else float(prof.get("contiguity_tolerance_m"))
    limit = float(prof.get("fragment_max_mu")) * M2_PER_MU
    member_area = ov.areas(pbf.geoms) if limit > 0 else []
    fragment_block: dict[int, tuple[int, float]] = {}
    if limit > 0:
        for b, group in enumerate(ov.groups("PBF", tolerance)):
            area = sum(member_area[i] for i in group)
            if area < limit:
                for i in group:
                    add(i, "fragment", pbf.geoms[i])
                    fragment_block[i] = (b, area)
    pieces: list[Piece] = []
    for (i, reason), geoms in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        attrs = {"PBF_ID": _id(ov, "PBF", i), "reason": reason}
        if reason == "fragment":
            attrs["block_id"] = fragment_block[i][0]
            attrs["block_m2"] = fragment_block[i][1]
        pieces += _row_from(geoms, reason, attrs, _zl(ov, "PBF", i), thr)
    fields = [("PBF_ID", S), ("reason", S), ("block_id", INT), ("block_m2", D)]
    return pieces, fields


def _outside_own_township(ov: CountyOverlay) -> list[tuple[int, QgsGeometry | None]]:
    """PBF parts outside the township (XZQ, by the first 9 digits of ZLDWDM/XZQDM) the patch belongs to."""
    pbf = ov.features("PBF")
    xzq = ov.features("XZQ")
    by_code: dict[str, list[QgsGeometry]] = {}
    for k, attrs in enumerate(xzq.attrs):
        code = _text(attrs.get("XZQDM"))[:9]
        if code:
            by_code.setdefault(code, []).append(xzq.geoms[k])
    unions = {code: g for code, g in ((c, union_parts(gs)) for c, gs in by_code.items()) if g is not None}
    unknown = 0
    items = []
    for i in range(len(pbf)):
        code = _zl(ov, "PBF", i)[:9]
        if code not in unions:
            unknown += 1
            continue
        items.append((i, code))
    if unknown:
        LOG.info("%d PBF patches without a known township code: 插花 (outside township) not checked", unknown)

    def work(chunk: Sequence[int]) -> list[tuple[int, QgsGeometry | None]]:
        out = []
        engines: dict[str, Any] = {}  # prepared geometries are not thread-safe: one set per chunk
        for k in chunk:
            i, code = items[k]
            geom = pbf.geoms[i]
            if code not in engines:
                engines[code] = _prepared(unions[code])
            if engines[code].contains(geom.constGet()):
                continue
            out.append((i, polygonal(geom.difference(unions[code]))))
        return out

    # large chunks: every chunk prepares the (large) township polygons it meets once
    return ov.runner.map(work, list(range(len(items))), 2048)


def pbf_nongrain(ov: CountyOverlay, opt: CompareOptions, params: dict[str, Any]) -> Any:
    """PBF ∩ DLTB farmland with a non-grain planting attribute, or PBF ∩ DLTB that is no longer farmland."""
    ov.require("PBF", "DLTB")
    thr = _thresholds(ov, opt)
    prof = ov.profile
    dltb = ov.features("DLTB")
    nongrain = prof.nongrain_codes()

    def category_of(dlbm: Any, zzsxdm: Any) -> str:
        if prof.is_farmland(dlbm):
            return "nongrain" if _text(zzsxdm) in nongrain else ""
        return "occupied" if prof.is_occupied(dlbm) else ""

    category = dltb.attrs.classify(category_of, "DLBM", "ZZSXDM")
    pieces: list[Piece] = []
    # a PBF patch inside one DLTB patch up to the noise meets the others only in noise (DLTB patches do not
    # overlap: 三调 topology), as versiondiff / farmlandnonagri assume for identical patches
    pbf_all = range(len(ov.features("PBF")))
    cover = ov.cover("PBF", "DLTB", thr[2], pbf_all) if thr[2] > 0 else None
    flagged = Selection([bool(c) for c in category])
    patches: dict[int, tuple[str, str, str, str]] = {}  # one DLTB patch meets many PBF parcels: read once
    for i, j, geom in ov.pairs("PBF", "DLTB", b_pred=flagged, key="nongrain", noise=thr[2], a_cover=cover):
        if not category[j]:
            continue
        patch = patches.get(j)
        if patch is None:
            patch = patches[j] = (
                _id(ov, "DLTB", j),
                _attr(ov, "DLTB", j, "DLBM"),
                _attr(ov, "DLTB", j, "ZZSXDM"),
                _zl(ov, "DLTB", j),
            )
        attrs = {"PBF_ID": _id(ov, "PBF", i), "DLTB_BSM": patch[0], "DLBM": patch[1], "ZZSXDM": patch[2]}
        pieces += _pieces_from(geom, category[j], attrs, patch[3], thr)
    fields = [("PBF_ID", S), ("DLTB_BSM", S), ("DLBM", S), ("ZZSXDM", S)]
    return pieces, fields


def _base(ov: CountyOverlay, opt: CompareOptions, default: str) -> tuple[str, Callable[[int], bool] | None]:
    if (opt.base or default) == "farmland":
        ov.require("DLTB")
        dltb = ov.features("DLTB")
        return "DLTB", Selection(dltb.attrs.mask(ov.profile.is_farmland, "DLBM"))
    ov.require("PBF")
    return "PBF", None


def farmland_nonagri(ov: CountyOverlay, opt: CompareOptions, params: dict[str, Any]) -> Any:
    """Farmland (or PBF) of year N that is construction in year N+1 or under construction-type monitoring
    patches."""
    if not ov.has("DLTB_N1") and not ov.has("JCTB"):
        raise CompareError("非农化比对需要 N+1 年地类图斑（DLTB_N1）或监测图斑（JCTB）之一")
    thr = _thresholds(ov, opt)
    prof = ov.profile
    role, a_pred = _base(ov, opt, "farmland")
    base_pred = a_pred  # a_pred is narrowed below for the year-N+1 overlay
    base = opt.base or "farmland"
    pieces: list[Piece] = []
    if ov.has("DLTB_N1"):
        new = ov.features("DLTB_N1")
        constr = numpy.asarray(new.attrs.mask(prof.is_construction, "DLBM"), dtype=bool)
        found: list[tuple[int, int, QgsGeometry]] = []
        b_pred: Callable[[int], bool] = Selection(constr)
        if role == "DLTB":
            # DLTB is a partition: a patch kept unchanged in N+1 (same geometry) overlaps only its own year-N
            # patch, so those pairs need no overlay and all other pairs involve changed patches only
            same = ov.identical("DLTB", "DLTB_N1")
            old_ids = numpy.fromiter(same.keys(), dtype=numpy.int64, count=len(same))
            new_ids = numpy.fromiter(same.values(), dtype=numpy.int64, count=len(same))
            base_mask = (
                a_pred.mask if isinstance(a_pred, Selection) else numpy.ones(len(ov.features(role)), bool)
            )
            kept = base_mask[old_ids] & constr[new_ids]
            found = [(i, j, new.geoms[j]) for i, j in zip(old_ids[kept].tolist(), new_ids[kept].tolist())]
            changed_old = base_mask.copy()
            changed_old[old_ids] = False
            changed_new = constr.copy()
            changed_new[new_ids] = False
            a_pred, b_pred = Selection(changed_old), Selection(changed_new)
        found += ov.pairs(role, "DLTB_N1", a_pred, b_pred, key=f"{base}-construction", noise=thr[2])
        for i, j, geom in found:
            attrs = {
                "BASE_ID": _id(ov, role, i),
                "OLD_DLBM": _attr(ov, role, i, "DLBM"),
                "NEW_ID": _id(ov, "DLTB_N1", j),
                "NEW_DLBM": _attr(ov, "DLTB_N1", j, "DLBM"),
            }
            pieces += _pieces_from(geom, "to_construction", attrs, _zl(ov, role, i), thr)
    if ov.has("JCTB"):
        jctb = ov.features("JCTB")
        constr_j = jctb.attrs.mask(prof.is_monitoring_construction, "TBLX")
        for i, j, geom in ov.pairs(
            role, "JCTB", base_pred, Selection(constr_j), key=f"{base}-jctb", noise=thr[2]
        ):
            attrs = {
                "BASE_ID": _id(ov, role, i),
                "OLD_DLBM": _attr(ov, role, i, "DLBM"),
                "JCBH": _attr(ov, "JCTB", j, "JCBH"),
                "TBLX": _attr(ov, "JCTB", j, "TBLX"),
            }
            pieces += _pieces_from(geom, "monitoring", attrs, _zl(ov, role, i), thr)
    fields = [("BASE_ID", S), ("OLD_DLBM", S), ("NEW_ID", S), ("NEW_DLBM", S), ("JCBH", S), ("TBLX", S)]
    return pieces, fields


def hsf_coverage(ov: CountyOverlay, opt: CompareOptions, params: dict[str, Any]) -> Any:
    """PBF covered / not covered by HSF, and HSF on non-farmland; coverage % per region in the statistics."""
    ov.require("PBF", "HSF")
    thr = _thresholds(ov, opt)
    prof = ov.profile
    pieces: list[Piece] = []
    for mode, category in (("intersection", "covered"), ("difference", "not_covered")):
        for i, geom in ov.by_union("PBF", "HSF", mode, noise=thr[2] if mode == "difference" else 0.0):
            pieces += _pieces_from(geom, category, {"PBF_ID": _id(ov, "PBF", i)}, _zl(ov, "PBF", i), thr)
    if ov.has("DLTB"):
        # HSF − farmland − PBF: HSF on non-farmland patches and outside every DLTB patch (past the county
        # edge), not counted again where it lies on PBF (that is "covered")
        farm = ov.features("DLTB").attrs.mask(prof.is_farmland, "DLBM")
        off_farm = [
            (i, g)
            for i, g in ov.by_union("HSF", "DLTB", "difference", b_pred=Selection(farm), key="farmland")
            if g is not None
        ]
        rest = difference_by_union([g for _, g in off_farm], ov.features("PBF"), ov.runner)
        for k, geom in rest:
            i = off_farm[k][0]
            attrs = {"XMBH": _attr(ov, "HSF", i, "XMBH"), "DLTB_BSM": "", "DLBM": ""}
            pieces += _pieces_from(geom, "hsf_nonfarmland", attrs, _zl(ov, "HSF", i), thr)
    fields = [("PBF_ID", S), ("XMBH", S), ("DLTB_BSM", S), ("DLBM", S)]
    return pieces, fields


def size_class(mu: float, bounds: Sequence[float]) -> str:
    """ "<10", "10-50", …, "≥1000" (亩)."""
    lower = 0.0
    for bound in bounds:
        if mu < bound:
            return f"<{bound:g}" if lower == 0 else f"{lower:g}-{bound:g}"
        lower = bound
    return f">={lower:g}"


def contiguity(ov: CountyOverlay, opt: CompareOptions, params: dict[str, Any]) -> Any:
    """集中连片: blocks of PBF (or farmland) patches within ``tolerance`` of each other, with size classes."""
    role, pred = _base(ov, opt, "pbf")
    prof = ov.profile
    tolerance = opt.tolerance if opt.tolerance is not None else float(prof.get("contiguity_tolerance_m"))
    params["contiguity_tolerance_m"] = tolerance
    fs = ov.features(role)
    groups = ov.groups(role, tolerance, pred, key=role)
    bounds = [float(b) for b in prof.get("contiguity_size_classes_mu")]

    def blocks(chunk: Sequence[int]) -> list[tuple[int, QgsGeometry, int]]:
        out = []
        for b in chunk:
            members = [fs.geoms[i] for i in groups[b]]
            geom = union_parts(members)
            if geom is not None:
                largest = max(range(len(members)), key=lambda k: members[k].area())
                out.append((b, geom, groups[b][largest]))
        return out

    pieces: list[Piece] = []
    # the unions run on the worker threads (GEOS releases the GIL)
    for b, geom, largest in ov.runner.map(blocks, list(range(len(groups)))):
        attrs = {"block_id": b, "members": len(groups[b])}
        pieces.append(Piece(geom, "block", attrs, _zl(ov, role, largest)))
    fields = [("block_id", INT), ("members", INT), ("size_class", S)]
    params["size_bounds"] = bounds
    return pieces, fields


def version_diff(ov: CountyOverlay, opt: CompareOptions, params: dict[str, Any]) -> Any:
    """DLTB year N vs N+1, matched spatially (not by BSM): added, removed, modified (attributes and/or
    geometry)."""
    ov.require("DLTB", "DLTB_N1")
    min_area, min_width, noise = _thresholds(ov, opt)
    prof = ov.profile
    old, new = ov.features("DLTB"), ov.features("DLTB_N1")
    ratio = float(prof.get("versiondiff_match_ratio"))
    # identical geometry (same WKB) pairs first: 97–99 % of a 变更调查; only the rest is matched by overlay
    # (areas and geometries are touched for the changed patches only)
    same = ov.identical("DLTB", "DLTB_N1")
    same_new = set(same.values())
    best_old: dict[int, tuple[float, int]] = {}
    best_new: dict[int, tuple[float, int]] = {}
    overlap: dict[tuple[int, int], float] = {}
    pairs = ov.pairs(
        "DLTB", "DLTB_N1", lambda i: i not in same, lambda j: j not in same_new, key="changed-geometry"
    )
    for i, j, geom in pairs:
        a = geom.area()
        overlap[(i, j)] = a
        if a > best_old.get(i, (-1.0, -1))[0]:
            best_old[i] = (a, j)
        if a > best_new.get(j, (-1.0, -1))[0]:
            best_new[j] = (a, i)
    matched: dict[int, int] = dict(same)
    for i, (a, j) in best_old.items():
        if best_new.get(j, (0, -1))[1] == i and a >= ratio * max(old.geoms[i].area(), new.geoms[j].area()):
            matched[i] = j
    keys = [k for k in prof.get("versiondiff_fields") if k in old.attrs or k in new.attrs]
    pieces: list[Piece] = []

    def values(prefix: str, fs: Any, i: int | None) -> dict[str, Any]:
        return {f"{prefix}{k}": (_text(fs.attrs.get(i, k)) if i is not None else "") for k in keys}

    changed_fields = _changed_fields(old.attrs, new.attrs, matched, keys)
    # an unmatched patch is always listed (removed / added), however small; the patch that absorbed it (or
    # that it was split from) is then flagged GEOMETRY too, whatever the tolerances: both reported
    matched_new = set(matched.values())
    absorbed_by = {j for i, (_a, j) in best_old.items() if i not in matched}
    split_from = {i for j, (_a, i) in best_new.items() if j not in matched_new}
    params["versiondiff_slivers"] = "absorbed sliver and its survivor both reported"
    for i, j in sorted(matched.items()):
        changed = changed_fields.get(i, [])
        geom_changed = j in absorbed_by or i in split_from
        if i not in same and not geom_changed:
            sym = old.geoms[i].area() + new.geoms[j].area() - 2 * overlap[(i, j)]
            if sym >= min_area:
                diff = old.geoms[i].symDifference(new.geoms[j])
                geom_changed = bool(kept_parts(polygonal(diff), min_area, min_width, noise))
        if geom_changed:
            changed = [*changed, "GEOMETRY"]
        if not changed:
            continue
        attrs = {"change": "modified", "changed_fields": ",".join(changed), "OLD_ID": _id(ov, "DLTB", i)}
        attrs["NEW_ID"] = _id(ov, "DLTB_N1", j)
        attrs.update(values("OLD_", old, i))
        attrs.update(values("NEW_", new, j))
        pieces.append(Piece(new.geoms[j], "modified", attrs, _zl(ov, "DLTB_N1", j)))
    for i in range(len(old)):
        if i not in matched:
            attrs = {"change": "removed", "changed_fields": "", "OLD_ID": _id(ov, "DLTB", i), "NEW_ID": ""}
            attrs.update(values("OLD_", old, i))
            attrs.update(values("NEW_", new, None))
            pieces.append(Piece(old.geoms[i], "removed", attrs, _zl(ov, "DLTB", i)))
    for j in range(len(new)):
        if j not in matched_new:
            attrs = {"change": "added", "changed_fields": "", "OLD_ID": "", "NEW_ID": _id(ov, "DLTB_N1", j)}
            attrs.update(values("OLD_", old, None))
            attrs.update(values("NEW_", new, j))
            pieces.append(Piece(new.geoms[j], "added", attrs, _zl(ov, "DLTB_N1", j)))
    fields = [("change", S), ("changed_fields", S), ("OLD_ID", S), ("NEW_ID", S)]
    fields += [(f"OLD_{k}", S) for k in keys] + [(f"NEW_{k}", S) for k in keys]
    return pieces, fields


def _changed_fields(
    old: Columns, new: Columns, matched: dict[int, int], keys: list[str]
) -> dict[int, list[str]]:
    """For matched patches (old index → new index): the attributes (of ``keys``, in order) whose text
    differs. Compared column by column in numpy; only the differing values go through ``_text`` (which
    ignores surrounding blanks and NULL spellings)."""
    if not matched:
        return {}
    ii = numpy.fromiter(matched.keys(), dtype=numpy.int64, count=len(matched))
    jj = numpy.fromiter(matched.values(), dtype=numpy.int64, count=len(matched))
    out: dict[int, list[str]] = {}
    for key in keys:
        maybe = numpy.nonzero(old.array(key)[ii] != new.array(key)[jj])[0]
        for n in maybe.tolist():
            i, j = int(ii[n]), int(jj[n])
            if _text(old.get(i, key)) != _text(new.get(j, key)):
                out.setdefault(i, []).append(key)
    return out


def boundary_compare(ov: CountyOverlay, opt: CompareOptions, params: dict[str, Any]) -> Any:
    """Two polygon layers without shared ids: only-in-A, only-in-B, both, and 套合率 per feature."""
    ov.require("A", "B")
    thr = _thresholds(ov, opt)
    a, b = ov.features("A"), ov.features("B")
    sel_a, key_a = _side(ov, "A", params["boundary_a_dlbm"])
    sel_b, key_b = _side(ov, "B", params["boundary_b_dlbm"])
    keep_a = sel_a.mask if sel_a is not None else None
    keep_b = sel_b.mask if sel_b is not None else None
    only_a = [
        (i, kept_parts(g, *thr))
        for i, g in ov.by_union("A", "B", "difference", b_pred=sel_b, key=key_b, noise=thr[2])
        if keep_a is None or keep_a[i]
    ]
    only_b = [
        (j, kept_parts(g, *thr))
        for j, g in ov.by_union("B", "A", "difference", b_pred=sel_a, key=key_a, noise=thr[2])
        if keep_b is None or keep_b[j]
    ]
    # 套合率 with the run's tolerances (the pieces themselves may be exact: see partition.py)
    real = (params["min_area_m2"], params["min_width_m"], params["noise_width_m"])
    # (the parts of one overlay result never share an edge: judged as they are, no union needed)
    ratio_a = _overlap_ratios(a.geoms, _passing(only_a, real, ov.runner.workers))
    ratio_b = _overlap_ratios(b.geoms, _passing(only_b, real, ov.runner.workers))
    pieces: list[Piece] = []
    for i, parts in only_a:
        attrs = {"A_ID": _id(ov, "A", i), "B_ID": "", "A_RATIO": ratio_a[i], "B_RATIO": None}
        pieces += [Piece(part, "only_a", dict(attrs), _zl(ov, "A", i)) for part in parts]
    for j, parts in only_b:
        attrs = {"A_ID": "", "B_ID": _id(ov, "B", j), "A_RATIO": None, "B_RATIO": ratio_b[j]}
        pieces += [Piece(part, "only_b", dict(attrs), _zl(ov, "B", j)) for part in parts]
    for i, j, geom in ov.pairs("A", "B", sel_a, sel_b, key=key_a + key_b, noise=thr[2]):
        attrs = {
            "A_ID": _id(ov, "A", i),
            "B_ID": _id(ov, "B", j),
            "A_RATIO": ratio_a[i],
            "B_RATIO": ratio_b[j],
        }
        pieces += _pieces_from(geom, "both", attrs, _zl(ov, "A", i), thr)
    fields = [("A_ID", S), ("B_ID", S), ("A_RATIO", D), ("B_RATIO", D)]
    return pieces, fields


def _passing(
    rows: list[tuple[int, list[QgsGeometry]]], thresholds: tuple[float, float, float], workers: int
) -> list[tuple[int, list[QgsGeometry]]]:
    """The parts of each row that pass the sliver rule on their own (in whole arrays with shapely)."""
    parts = [x for _i, row in rows for x in row]
    shapes = vectorized.read_geometries(parts) if vectorized.enabled() else None
    ok = iter(sliver_rule_passes(parts, shapes, thresholds, workers).tolist())
    return [(i, [x for x in row if next(ok)]) for i, row in rows]


def _side(ov: CountyOverlay, role: str, codes: Any) -> tuple[Selection | None, str]:
    """The features of one side of boundarycompare: DLBM in ``codes`` (a list, or text such as "0101,0102");
    empty: the profile's farmland codes when the side is a DLTB layer, else every feature (a PBF layer
    carries DLBM too, but every parcel of it is compared); "*": every feature."""
    if isinstance(codes, str):
        codes = parse_code_list(codes)
    codes = [str(c) for c in codes or []]
    if codes == ["*"] or (not codes and not _is_dltb(ov, role)):
        return None, ""
    wanted = set(codes)
    test = (lambda v: _text(v) in wanted) if wanted else ov.profile.is_farmland
    return Selection(
        ov.features(role).attrs.mask(test, "DLBM")
    ), f"{role}:{','.join(sorted(wanted)) or 'farm'}"


# area fields that only a 永久基本农田 layer has (domain.md §2); DLTB's own area field is TBMJ
_PBF_FIELDS = {"YJJBNTTBMJ", "YJJBNTMJ", "YJJBNTTBBH", "JBNTTBBH", "JBNTMJ"}


def _is_dltb(ov: CountyOverlay, role: str) -> bool:
    """A DLTB layer: recognised as one (一张图 sets its dataset id), or else a layer with DLBM and none of the
    fields only a PBF layer has."""
    layer = ov.layers[role]
    if layer.dataset_id:
        return layer.dataset_id.startswith("dltb")
    names = {name.upper() for name in layer.fields.names()}
    return "DLBM" in names and not names & _PBF_FIELDS


def _overlap_ratios(
    geoms: Sequence[QgsGeometry], outside: Sequence[tuple[int, list[QgsGeometry]]]
) -> list[float]:
    """套合率 = 1 − (area of the reported only-in-this-layer pieces) / own area (planar, 4 decimals):
    differences below the sliver / noise thresholds count as overlapping."""
    out = [1.0] * len(geoms)
    for i, parts in outside:
        total = geoms[i].area()
        rest = sum(p.area() for p in parts)
        out[i] = round(max(0.0, 1.0 - rest / total), 4) if total > 0 else 0.0
    return out
