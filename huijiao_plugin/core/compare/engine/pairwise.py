"""Pairwise overlays between two roles: candidates by box, predicate shortcuts, intersections
(vectorised with shapely 2 when available)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from qgis.core import (
    QgsGeometry,
    QgsRectangle,
)

from huijiao_plugin.core.compare import vectorized
from huijiao_plugin.core.compare.engine.featureset import FeatureSet
from huijiao_plugin.core.compare.engine.geometry import ERODE_SEGMENTS, polygonal
from huijiao_plugin.core.compare.engine.runner import Pred, _prepared, _Runner, _selected, _SubsetIndex

LOG = logging.getLogger(__name__)


def pairwise_intersection(
    a: FeatureSet,
    b: FeatureSet,
    runner: _Runner,
    a_pred: Pred = None,
    b_pred: Pred = None,
    same: bool = False,
    noise: float = 0.0,
    b_noise: Pred = None,
    a_cover: Callable[[int], int | None] | None = None,
) -> list[tuple[int, int, QgsGeometry]]:
    """Every polygonal ``a_i ∩ b_j`` as (i, j, geometry); ``same=True`` for a layer against itself (i < j).
    ``a_cover(i)``: the feature of ``b`` covering a_i up to the noise (``CountyOverlay.cover``); when ``b``
    is a partition (no overlaps, as a 三调 DLTB layer), a_i gives more than noise only with that one.
    ``b_noise(j)`` true: every piece of ``b_j`` the caller reports would be noise (see
    ``CountyOverlay.covered``); asked in the workers, for intersecting candidates only.

    The side with fewer selected features is walked, the other one queried through a spatial index (its
    bulk index, or an index of just the selected features when they are few).

    With ``noise`` > 0, pairs whose every piece would be digitising noise are skipped without intersecting:
    if ``b_j`` misses ``a_i`` eroded by noise/2, each piece of ``a_i ∩ b_j`` lies within noise/2 of the
    boundary of ``a_i``, so its largest inscribed circle is smaller than noise/2 and the sliver rule
    (``passes_sliver_rule``) would drop it anyway (the same holds with the roles swapped)."""
    items = _selected(len(a), a_pred)
    if same:
        others: Any = b
        b.ensure_index()
    else:
        b_items = _selected(len(b), b_pred)
        if len(b_items) < len(items):
            swapped = _pairs_walk(b, a, b_items, items, a_pred, runner, False, noise, skip_a=b_noise)
            return [(i, j, geom) for j, i, geom in swapped]
        return _pairs_walk(a, b, items, b_items, b_pred, runner, False, noise, skip_b=b_noise, only_b=a_cover)
    return _pairs_walk(a, others, items, None, b_pred, runner, same, noise, skip_b=b_noise)


def _pairs_walk(
    a: FeatureSet,
    b: FeatureSet,
    items: Sequence[int],
    b_items: Sequence[int] | None,
    b_pred: Pred,
    runner: _Runner,
    same: bool,
    noise: float,
    skip_a: Pred = None,
    skip_b: Pred = None,
    only_b: Callable[[int], int | None] | None = None,
) -> list[tuple[int, int, QgsGeometry]]:
    """``pairwise_intersection`` walking ``items`` of ``a``; ``b_items`` are the selected features of ``b``
    (None: filter candidates with ``b_pred``); pairs with a feature for which ``skip_a`` / ``skip_b`` is true
    are left out; ``only_b(i)``: the one feature of ``b`` that a_i can give more than noise with (-1: none;
    None: any)."""
    if not items or (b_items is not None and not b_items):
        return []
    if only_b is None and vectorized.enabled():
        found = _pairs_vectorized(a, b, items, b_items, b_pred, runner, same, noise, skip_a, skip_b)
        if found is not None:
            return found
    if only_b is not None and skip_a is None and vectorized.enabled():
        # a feature covered by one selected b_k overlaps only b_k beyond the noise: those pairs are
        # intersected all at once; the features no feature covers are walked as usual
        chosen = set(b_items) if b_items is not None else None
        direct: list[tuple[int, int]] = []
        rest: list[int] = []
        for i in items:
            k = only_b(i)
            if k is None:
                rest.append(i)
            elif (
                k >= 0
                and (k in chosen if chosen is not None else b_pred is None or b_pred(k))
                and (skip_b is None or not skip_b(k))
            ):
                direct.append((i, k))
        found = _intersect_pairs(a, b, direct, runner)
        if rest:
            found += _pairs_walk(a, b, rest, b_items, b_pred, runner, same, noise, skip_a, skip_b)
        return sorted(found, key=lambda piece: piece[0])
    # features whose cover is already known need no index query
    known = getattr(only_b, "decided", None) or {}
    queries = sum(1 for i in items if known.get(i, -2) == -2) if known else len(items)
    if b_items is not None and len(b_items) <= _SubsetIndex.LIMIT and len(b_items) < len(b) // 2:
        index: Any = _SubsetIndex(b, b_items)
        b_pred = None  # the index holds the selected features only
    else:
        if queries:
            b.ensure_index(queries)  # before the workers share it
        index = b

    def work(chunk: Sequence[int]) -> list[tuple[int, int, QgsGeometry]]:
        out = []
        _decide_many(skip_a, chunk)
        # first the pairs that meet, then (their noise tests decided together) what each pair gives
        meeting: list[tuple[int, QgsGeometry, Any, Any, list[tuple[int, QgsGeometry]]]] = []
        for i in chunk:
            k = only_b(i) if only_b is not None else None
            if k is not None and (
                k < 0 or not (index.holds(k) if index is not b else b_pred is None or b_pred(k))
            ):
                continue  # covered by b_k, which is not selected: nothing of a_i beyond the noise
            ga = a.geoms[i]
            if k is not None:  # covered by b_k: no other candidate matters, no index query needed
                if skip_a is None and (skip_b is None or not skip_b(k)):
                    # the pair overlaps beyond the noise: nothing to prepare or test, intersect it
                    piece = polygonal(ga.intersection(b.geoms[k]))
                    if piece is not None:
                        out.append((i, k, piece))
                    continue
                js = [k]
            else:
                js = [
                    j
                    for j in index.candidates(ga.boundingBox())
                    if (b_pred is None or b_pred(j)) and (not same or j > i)
                ]
            if not js or (skip_a is not None and skip_a(i)):
                continue
            engine = _prepared(ga)
            core = None
            if noise > 0 and len(js) > 1:
                eroded = a.buffered(i, -noise / 2.0)
                if eroded is None:
                    continue  # a_i itself is thinner than the noise: nothing of it can be reported
                core = _prepared(eroded)
            hits = []
            for j in js:
                gb = b.geoms[j]  # stays referenced while its abstract geometry is used
                cb = gb.constGet()  # one wrapper per candidate (each call resolves the subclass again)
                if core is not None:
                    if not core.intersects(cb):  # (core ⊆ a_i: also decides "a_i meets b_j" when it does)
                        continue  # a_i ∩ b_j lies within noise/2 of a_i's boundary
                elif not engine.intersects(cb):
                    continue
                hits.append((j, gb))
            if hits:
                meeting.append((i, ga, engine, core, hits))
        _decide_many(skip_b, (j for *_, hits in meeting for j, _ in hits))
        # eroding b_j pays when it usually proves a pair to be noise (two versions of the same patches); in
        # a chunk where it rarely does (independent boundaries) it is dropped after a few tries
        core_b_tries = core_b_hits = 0
        for i, ga, engine, core, hits in meeting:
            for j, gb in hits:
                if skip_b is not None and skip_b(j):
                    continue
                cb = gb.constGet()
                if engine.contains(cb):
                    out.append((i, j, gb))
                    continue
                if core is not None and (core_b_tries < 32 or core_b_hits * 4 >= core_b_tries):
                    # erosion distributes over intersection: (a_i ∩ b_j) ⊖ r = (a_i ⊖ r) ∩ (b_j ⊖ r); when
                    # that is empty every part of a_i ∩ b_j is noise, dropped by the sliver rule anyway
                    core_b_tries += 1
                    core_b = b.buffered(j, -noise / 2.0)
                    if core_b is None or not core.intersects(core_b.constGet()):
                        core_b_hits += 1
                        continue
                piece = polygonal(ga.intersection(gb))
                if piece is not None:
                    out.append((i, j, piece))
        return out

    return runner.map(work, items)


def _read_shapes(fs: FeatureSet, items: Sequence[int]) -> Any:
    """shapely geometries of ``items`` (distinct, ascending) of ``fs`` as read, before any repair (None where
    shapely cannot read one)."""
    wkbs = fs.geoms.raw_wkbs()
    whole = len(items) == len(wkbs) and (not items or (items[0] == 0 and items[-1] == len(wkbs) - 1))
    return vectorized.read_wkb(wkbs if whole else [wkbs[i] for i in items])


def _shapes(fs: FeatureSet, items: Sequence[int], runner: _Runner) -> Any:
    """shapely geometries of ``items`` of ``fs``, GEOS-valid: an invalid one is repaired as everywhere else
    (``CheckedGeometries``); None when one cannot be read (e.g. curves): then the caller works per feature."""
    geoms = _read_shapes(fs, items)
    valid = vectorized.valid(geoms, runner.workers, runner.check)
    positions = np.asarray(items, dtype=np.int64)
    fs.geoms.mark_valid(positions[valid])
    for p in np.nonzero(~valid)[0].tolist():
        geoms[p] = vectorized.read_wkb([bytes(fs.geoms[int(positions[p])].asWkb())])[0]
    return None if vectorized.any_missing(geoms) else geoms


def _read_pieces(geoms: Sequence[QgsGeometry], runner: _Runner) -> Any:
    """shapely geometries of pieces of an earlier overlay; None when one cannot be read or GEOS would reject
    it (the caller then works one geometry at a time, repairing as it goes)."""
    shapes = vectorized.read_geometries(geoms)
    if shapes is None or not vectorized.valid(shapes, runner.workers, runner.check).all():
        return None
    return shapes


def _near(b: FeatureSet, b_sel: list[int], ga: Any) -> list[int]:
    """The selected features of ``b`` whose boxes meet the boxes of the shapely geometries ``ga``: a few
    geometries against many features read and check only those candidates (from the source's index, as
    the walk per feature does); all of ``b_sel`` when the geometries are not few or queries are dear."""
    if len(ga) * 4 > len(b_sel) or not b.queries_are_cheap(len(ga)):
        return b_sel
    b.ensure_index(len(ga))
    selected = set(b_sel)
    touched: set[int] = set()
    for x0, y0, x1, y1 in vectorized.bounds(ga).tolist():
        touched.update(j for j in b.candidates(QgsRectangle(x0, y0, x1, y1)) if j in selected)
    return sorted(touched)


def _pairs_vectorized(
    a: FeatureSet,
    b: FeatureSet,
    items: Sequence[int],
    b_items: Sequence[int] | None,
    b_pred: Pred,
    runner: _Runner,
    same: bool,
    noise: float,
    skip_a: Pred,
    skip_b: Pred,
) -> list[tuple[int, int, QgsGeometry]] | None:
    """``_pairs_walk`` with vectorised GEOS: the same pairs, the same noise tests, whole arrays per call
    with the GIL released (None: a geometry shapely cannot read, walk per feature instead)."""
    b_sel = list(b_items) if b_items is not None else _selected(len(b), b_pred)
    if not b_sel:
        return []
    ga = _shapes(a, items, runner)
    if ga is None:
        return None
    if not same:
        b_sel = _near(b, b_sel, ga)
        if not b_sel:
            return []
    gb = ga if same and b_sel == list(items) else _shapes(b, b_sel, runner)
    if gb is None:
        return None
    item_ids = np.asarray(items, dtype=np.int64)
    b_ids = np.asarray(b_sel, dtype=np.int64)
    tree = vectorized.index(gb)
    r = noise / 2.0

    def work(chunk: Sequence[int]) -> list[tuple[int, int, QgsGeometry]]:
        at, bt = tree.query(ga[chunk], predicate="intersects")  # positions in chunk / in b_sel
        at = np.asarray(chunk, dtype=np.int64)[at]
        i_ids, j_ids = item_ids[at], b_ids[bt]
        keep = j_ids > i_ids if same else np.ones(len(at), dtype=bool)
        keep &= _mask(skip_a, i_ids) & _mask(skip_b, j_ids)
        at, bt = at[keep], bt[keep]
        vectorized.prepare(ga[chunk])
        if r > 0:
            found = vectorized.pair_pieces(
                ga,
                gb,
                at,
                bt,
                lambda p: _eroded(a, item_ids[p], ga[p], r),
                lambda q: _eroded(b, b_ids[q], gb[q], r),
            )
        else:
            found = vectorized.pair_pieces(ga, gb, at, bt, None, None)
        out = []
        for p, q, wkb in found:
            i, j = int(item_ids[p]), int(b_ids[q])
            if wkb is None:  # b_j inside a_i: the piece is b_j itself
                out.append((i, j, b.geoms[j]))
                continue
            if wkb == vectorized.A_WHOLE:  # a_i inside b_j
                out.append((i, j, a.geoms[i]))
                continue
            piece = polygonal(_from_wkb(wkb))
            if piece is not None:
                out.append((i, j, piece))
        return out

    return runner.map(work, list(range(len(items))), 2048)


def pieces_by_features(
    geoms: Sequence[tuple[int, QgsGeometry]], b: FeatureSet, runner: _Runner, b_pred: Pred = None
) -> list[tuple[int, int, QgsGeometry]]:
    """Every polygonal ``g ∩ b_j`` of the geometries ``(i, g)`` (pieces of an earlier overlay) with the
    selected features of ``b``, as (i, j, piece) in the order of a walk (by i, then j): in whole arrays
    with shapely, else one geometry at a time."""
    b_sel = _selected(len(b), b_pred)
    if not geoms or not b_sel:
        return []
    if vectorized.enabled():
        ga = _read_pieces([g for _, g in geoms], runner)
        b_sel = _near(b, b_sel, ga) if ga is not None else b_sel
        if not b_sel:
            return []
        gb = _shapes(b, b_sel, runner) if ga is not None else None
        if gb is not None:
            ids = np.asarray([i for i, _ in geoms], dtype=np.int64)
            b_ids = np.asarray(b_sel, dtype=np.int64)
            tree = vectorized.index(gb)

            def work(chunk: Sequence[int]) -> list[tuple[int, int, QgsGeometry]]:
                at, bt = tree.query(ga[chunk], predicate="intersects")
                at = np.asarray(chunk, dtype=np.int64)[at]
                vectorized.prepare(ga[chunk])
                out = []
                for p, q, wkb in vectorized.pair_pieces(ga, gb, at, bt, None, None):  # sorted by p, q
                    if wkb is None:  # b_j inside the geometry: the piece is b_j itself
                        piece: QgsGeometry | None = b.geoms[int(b_ids[q])]
                    elif wkb == vectorized.A_WHOLE:  # the geometry inside b_j
                        piece = geoms[p][1]
                    else:
                        piece = polygonal(_from_wkb(wkb))
                    if piece is not None:
                        out.append((int(ids[p]), int(b_ids[q]), piece))
                return out

            return runner.map(work, list(range(len(geoms))), 2048)
    b.ensure_index(len(geoms))
    chosen = set(b_sel)

    def walk(chunk: Sequence[int]) -> list[tuple[int, int, QgsGeometry]]:
        out = []
        for n in chunk:
            i, g = geoms[n]
            engine = _prepared(g)
            for j in sorted(j for j in b.candidates(g.boundingBox()) if j in chosen):
                gb = b.geoms[j]  # kept: the engine reads the geometry behind constGet()
                if engine.intersects(gb.constGet()):
                    piece = polygonal(g.intersection(gb))
                    if piece is not None:
                        out.append((i, j, piece))
        return out

    return runner.map(walk, list(range(len(geoms))))


def _intersect_pairs(
    a: FeatureSet, b: FeatureSet, pairs: Sequence[tuple[int, int]], runner: _Runner
) -> list[tuple[int, int, QgsGeometry]]:
    """``a_i ∩ b_k`` for each pair, as (i, k, piece), vectorised on the runner's threads."""

    def work(chunk: Sequence[int]) -> list[tuple[int, int, QgsGeometry]]:
        todo = [pairs[p] for p in chunk]
        ga = vectorized.read_wkb([a.geoms.wkb(i) for i, _ in todo])
        gb = vectorized.read_wkb([b.geoms.wkb(k) for _, k in todo])
        out = []
        for (i, k), wkb in zip(todo, vectorized.intersections(ga, gb)):  # noqa: B905
            if wkb is not None:
                piece = polygonal(_from_wkb(wkb))
                if piece is not None:
                    out.append((i, k, piece))
        return out

    return runner.map(work, list(range(len(pairs))), 2048)


def _from_wkb(wkb: bytes) -> QgsGeometry:
    geom = QgsGeometry()
    geom.fromWkb(wkb)
    return geom


def _eroded(fs: FeatureSet, ids: Any, geoms: Any, r: float) -> Any:
    """shapely erosions by ``r`` of features ``ids`` of ``fs`` (``geoms``): those some overlay of the run
    already computed (``FeatureSet.buffered``) are reused, the others computed and kept for the next."""
    cache = fs._buffers.setdefault(-r, {})
    known = [cache.get(i) for i in ids.tolist()]
    missing = [p for p, wkb in enumerate(known) if wkb is None]
    cores = vectorized.read_wkb([wkb or b"" for wkb in known])
    if missing:
        computed = vectorized.eroded(geoms[missing], r, ERODE_SEGMENTS)
        cores[missing] = computed
        fs.cache_buffers(-r, ids[missing].tolist(), vectorized.to_wkbs(computed))
    return cores


def _mask(pred: Pred, ids: Any) -> Any:
    """``pred`` over feature ids as a boolean array of where it is false (all true without ``pred``)."""
    if pred is None or not len(ids):
        return np.ones(len(ids), dtype=bool)
    unique = np.unique(ids).tolist()
    _decide_many(pred, unique)
    skipped = {j for j in unique if pred(j)}
    if not skipped:
        return np.ones(len(ids), dtype=bool)
    return ~np.isin(ids, np.fromiter(skipped, dtype=np.int64, count=len(skipped)))


def _decide_many(pred: Pred, items: Iterable[int]) -> None:
    """Let a predicate that can (``Covered``) decide many features at once before they are asked."""
    decide_many = getattr(pred, "decide_many", None)
    if decide_many is not None:
        decide_many(items)
