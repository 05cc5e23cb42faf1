"""Category assembly: a piece against the union of the other role's features (difference /
intersection), proximity groups."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from qgis.core import (
    QgsGeometry,
)

from huijiao_plugin.core.compare import vectorized
from huijiao_plugin.core.compare.engine.featureset import FeatureSet
from huijiao_plugin.core.compare.engine.geometry import polygonal, union_parts
from huijiao_plugin.core.compare.engine.noise import Cover, _noise_only_difference, _subtract_each
from huijiao_plugin.core.compare.engine.pairwise import _from_wkb, _near, _read_pieces, _shapes
from huijiao_plugin.core.compare.engine.runner import Pred, _prepared, _Runner, _selected, _vertex_count

LOG = logging.getLogger(__name__)


def _union_op(
    geoms: Sequence[QgsGeometry],
    b: FeatureSet,
    runner: _Runner,
    b_pred: Pred,
    mode: str,
    items: Sequence[int] | None = None,
    noise: float = 0.0,
    a: FeatureSet | None = None,
) -> list[tuple[int, QgsGeometry | None]]:
    """Per geometry g: ``g − ∪B`` (mode "difference") or ``g ∩ ∪B`` (mode "intersection"); ``a``: the
    feature set ``geoms`` belong to (its cached erosions are used).

    With ``noise`` > 0 (difference only, for pieces judged one by one by the sliver rule): when g eroded by
    noise/2 lies inside one B feature grown by noise/2, ``g − ∪B`` is digitising noise only (its erosion by
    noise/2 is empty) and is not computed (None)."""
    items = list(range(len(geoms))) if items is None else list(items)
    b.ensure_index(len(items))  # before the workers share it
    # features of ``a`` covered by one B feature up to the noise, decided a chunk at a time (vectorised)
    noise_cover = None
    if a is not None and noise > 0 and mode == "difference" and vectorized.enabled():
        noise_cover = Cover(a, b, noise / 2.0, runner)
    if noise_cover is None and noise <= 0 and vectorized.enabled():
        exact = _union_op_vectorized(geoms, a, b, runner, b_pred, mode, items)
        if exact is not None:
            return exact

    big = 200  # vertices: overlay geometries this large are prepared once per chunk and used as the engine

    def work(chunk: Sequence[int]) -> list[tuple[int, QgsGeometry | None]]:
        out: list[tuple[int, QgsGeometry | None]] = []
        b_engines: dict[int, Any] = {}  # prepared geometries are not thread-safe: one cache per chunk

        def b_engine(j: int) -> Any:
            if j not in b_engines:
                b_engines[j] = _prepared(b.geoms[j])
            return b_engines[j]

        if noise_cover is not None:
            noise_cover.decide_many(chunk)
        for i in chunk:
            if noise_cover is not None:
                k = noise_cover.decided.get(i, -2)
                if k == -1 or (k >= 0 and (b_pred is None or b_pred(k))):
                    out.append((i, None))  # g − ∪B is noise only (see the docstring)
                    continue
            g = geoms[i]
            js = [j for j in b.candidates(g.boundingBox()) if b_pred is None or b_pred(j)]
            if js and noise > 0 and mode == "difference" and _noise_only_difference(g, i, js, b, noise, a):
                out.append((i, None))
                continue
            hits: list[int] = []
            whole = False
            if js:
                engine = _prepared(g)
                box = g.boundingBox()
                for j in js:
                    gb = b.geoms[j]
                    if not engine.intersects(gb.constGet()):
                        continue
                    if gb.boundingBox().contains(box) and b_engine(j).contains(g.constGet()):
                        whole = True
                        break
                    hits.append(j)
            if whole:
                out.append((i, None if mode == "difference" else g))
            elif not hits:
                out.append((i, g if mode == "difference" else None))
            elif len(hits) == 1 and _vertex_count(b.geoms[hits[0]]) > big:
                # one large zone (red line, soil class, township …): its cached GEOS engine does the work
                inside = b_engine(hits[0]).intersection(g.constGet())
                inside = polygonal(QgsGeometry(inside)) if inside is not None else None
                if mode == "intersection":
                    out.append((i, inside))
                else:
                    out.append((i, polygonal(g.difference(inside)) if inside is not None else g))
            elif mode == "difference" and noise > 0 and len(hits) > 1:
                out.append((i, _subtract_each(g, [b.geoms[j] for j in hits], noise)))
            else:
                other = union_parts([b.geoms[j] for j in hits]) or QgsGeometry()
                op = g.difference if mode == "difference" else g.intersection
                out.append((i, polygonal(op(other))))
        return out

    # larger chunks than pairwise: each chunk prepares the large zones (red line, soil …) it meets once
    return runner.map(work, items, 1024)


def _union_op_vectorized(
    geoms: Sequence[QgsGeometry],
    a: FeatureSet | None,
    b: FeatureSet,
    runner: _Runner,
    b_pred: Pred,
    mode: str,
    items: Sequence[int],
) -> list[tuple[int, QgsGeometry | None]] | None:
    """``_union_op`` without noise, in whole arrays: the features of ``b`` meeting each geometry (one tree
    query), their union per geometry, then one difference / intersection call per chunk with the GIL
    released. ``geoms`` are a feature set's own (``a.geoms``: read as the set reads them) or pieces of an
    earlier overlay. None when a geometry cannot be read here (the caller works per feature)."""
    b_sel = _selected(len(b), b_pred)
    if a is not None and geoms is a.geoms:
        ga = _shapes(a, items, runner)
    else:
        ga = _read_pieces([geoms[i] for i in items], runner)
    if ga is None:
        return None
    b_sel = _near(b, b_sel, ga)
    gb = _shapes(b, b_sel, runner) if b_sel else np.empty(0, dtype=object)
    if gb is None:
        return None
    shapely = vectorized.shapely
    tree = vectorized.index(gb)
    b_area = shapely.area(gb)
    item_ids = list(items)
    difference = mode == "difference"

    def work(chunk: Sequence[int]) -> list[tuple[int, QgsGeometry | None]]:
        pos = np.asarray(chunk, dtype=np.int64)
        at, bt = tree.query(ga[pos], predicate="intersects") if len(gb) else (pos[:0], pos[:0])
        order = np.argsort(at, kind="stable")
        at, bt = at[order], bt[order]
        starts = np.searchsorted(at, np.arange(len(pos) + 1))
        other = np.empty(len(pos), dtype=object)
        many = []
        for p in range(len(pos)):
            hits = bt[starts[p] : starts[p + 1]]
            if len(hits) == 1:
                other[p] = gb[hits[0]]
            elif len(hits):
                many.append(p)
        if many:
            other[many] = _unions(gb, b_area, [bt[starts[p] : starts[p + 1]] for p in many])
        met = np.nonzero(starts[1:] > starts[:-1])[0]
        done = np.empty(len(pos), dtype=object)
        if len(met):
            op = shapely.difference if difference else shapely.intersection
            done[met] = vectorized.to_wkbs(op(ga[pos[met]], other[met]))
        out: list[tuple[int, QgsGeometry | None]] = []
        for p, q in enumerate(chunk):
            i = item_ids[q]
            if starts[p + 1] == starts[p]:  # meets nothing of b
                out.append((i, geoms[i] if difference else None))
            else:
                wkb = done[p]
                out.append((i, polygonal(_from_wkb(wkb)) if wkb is not None else None))
        return out

    return runner.map(work, list(range(len(item_ids))), 1024)


def _unions(geoms: Any, areas: Any, groups: Sequence[Any], workers: int = 1) -> Any:
    """The union of ``geoms[g]`` for each group ``g``. Neighbours in a polygon coverage (patches sharing
    their edges vertex for vertex, as a 三调 layer is) are united by coverage union, several times faster
    than an overlay union; a result that is not valid or whose area is not the sum of its parts (overlaps,
    edges not noded alike) is made again by the overlay union. ``workers`` > 1: slices of the groups on
    that many threads (GEOS runs with the GIL released); a caller already on the runner's threads uses 1."""
    if workers > 1 and len(groups) > 1:

        def unite(part: slice) -> Any:
            return _unions(geoms, areas, groups[part])

        parts = vectorized._parallel(unite, len(groups), workers, lambda: None)
        return np.concatenate(parts)
    shapely = vectorized.shapely
    out = _coverage_unions(geoms, groups)
    total = np.asarray([areas[g].sum() for g in groups])
    ok = ~shapely.is_missing(out)
    ok[ok] = shapely.is_valid(out[ok]) & (np.abs(shapely.area(out[ok]) - total[ok]) <= 1e-9 * total[ok])
    for k in np.nonzero(~ok)[0].tolist():
        out[k] = shapely.union_all(geoms[groups[k]])
    return out


def _coverage_unions(geoms: Any, groups: Sequence[Any]) -> Any:
    """The coverage union of ``geoms[g]`` for each group ``g`` (None where GEOS refuses one). Groups of
    similar size go in one call, as the rows of a table padded with missing values (ignored by the union):
    tens of thousands of small groups cost one call per size class instead of one each."""
    out = np.empty(len(groups), dtype=object)
    if not len(groups):
        return out
    sizes = np.fromiter((len(g) for g in groups), dtype=np.int64, count=len(groups))
    size_class = np.ceil(np.log2(np.maximum(sizes, 1))).astype(np.int64)  # rows of 2^(c-1)+1 … 2^c members
    for c in np.unique(size_class).tolist():
        rows = np.nonzero(size_class == c)[0]
        for start in range(0, len(rows), _ROWS):
            _coverage_union_rows(geoms, groups, sizes, rows[start : start + _ROWS], out)
    return out


_ROWS = 64  # groups per call: where GEOS refuses one (GEOS 3.11 raises on a non-coverage) only these redo


def _coverage_union_rows(geoms: Any, groups: Sequence[Any], sizes: Any, rows: Any, out: Any) -> None:
    """``_coverage_unions`` of the groups ``rows`` in one call; when GEOS refuses one of them, each group
    alone (a refused one is None: ``_unions`` makes it by the overlay union)."""
    shapely = vectorized.shapely
    members = np.concatenate([np.asarray(groups[k], dtype=np.int64) for k in rows.tolist()])
    counts = sizes[rows]
    row = np.repeat(np.arange(len(rows)), counts)
    column = np.arange(len(members)) - np.repeat(np.cumsum(counts) - counts, counts)
    table = np.full((len(rows), int(counts.max())), None, dtype=object)
    table[row, column] = geoms[members]
    try:
        out[rows] = shapely.coverage_union_all(table, axis=1)
    except shapely.errors.GEOSException:
        for k in rows.tolist():
            try:
                out[k] = shapely.coverage_union_all(geoms[groups[k]])
            except shapely.errors.GEOSException:
                out[k] = None


def difference_by_union(
    geoms: Sequence[QgsGeometry], b: FeatureSet, runner: _Runner, b_pred: Pred = None, noise: float = 0.0
) -> list[tuple[int, QgsGeometry | None]]:
    return _union_op(geoms, b, runner, b_pred, "difference", noise=noise)


def intersection_by_union(
    geoms: Sequence[QgsGeometry], b: FeatureSet, runner: _Runner, b_pred: Pred = None
) -> list[tuple[int, QgsGeometry | None]]:
    return _union_op(geoms, b, runner, b_pred, "intersection")


def proximity_groups(
    a: FeatureSet, runner: _Runner, tolerance: float, items: Sequence[int]
) -> list[list[int]]:
    """Connected groups of features whose distance is ≤ ``tolerance`` (touching counts), union-find."""
    geoms = _shapes(a, items, runner) if vectorized.enabled() else None
    if geoms is not None:
        ids = np.asarray(items, dtype=np.int64)
        near = vectorized.near_pairs(geoms, tolerance, runner.workers, runner.check)
        return _union_find(items, zip(ids[near[0]].tolist(), ids[near[1]].tolist()))  # noqa: B905
    allowed = set(items)
    a.ensure_index(len(items))

    def work(chunk: Sequence[int]) -> list[tuple[int, int]]:
        edges = []
        for i in chunk:
            gi = a.geoms[i]
            rect = gi.boundingBox()
            rect.grow(tolerance)
            js = [j for j in a.candidates(rect) if j > i and j in allowed]
            if not js:
                continue
            engine = _prepared(gi)
            for j in js:
                gj = a.geoms[j]
                if engine.intersects(gj.constGet()) or (tolerance > 0 and gi.distance(gj) <= tolerance):
                    edges.append((i, j))
        return edges

    return _union_find(items, runner.map(work, list(items)))


def _union_find(items: Sequence[int], edges: Iterable[tuple[int, int]]) -> list[list[int]]:
    """The connected groups of ``items`` linked by ``edges``, each sorted, ordered by their first item."""
    parent = {i: i for i in items}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in edges:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = {}
    for i in items:
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])
