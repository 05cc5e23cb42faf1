"""The partition invariant of a preset's output: its categories partition the documented union of its inputs,
at every tolerance.

A preset computes its pieces exactly (tolerances off). Then, per category:

1. Overlaps are counted once: a piece loses the area already held by an earlier piece of its category (two
   overlapping HSF plots give one area, the later plot's row lists only what the earlier did not cover, its
   ``shared_m2`` attribute the area it shared); in a preset whose categories exclude each other, a piece also
   loses what an earlier category holds (categories in their declared order).
2. The tolerances (MIN_AREA, MIN_WIDTH, NOISE_WIDTH: the sliver rule of domain.md §6) judge each connected
   part of the category's union, not each piece: a part holding a piece that passes the rule on its own is
   reported whole; the other parts are united and judged. A part judged noise is not dropped: it becomes a
   piece of the category ``within_tolerance`` (容差内一致) in the same output, with the category it was taken
   from in ``tolerance_of``.
3. Rows are not split finer than the question needs: a sliver reported because it shares an edge with a real
   piece joins that piece's row, and what was judged noise is one row per category and 坐落单位 (ZLDWDM).

So the areas of all categories, ``within_tolerance`` included, add up to the area of the documented union.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from qgis.core import QgsGeometry, QgsSpatialIndex

from huijiao_plugin.core.compare import vectorized
from huijiao_plugin.core.compare.engine import passes_sliver_rule, polygonal, single_parts
from huijiao_plugin.core.compare.engine.noise import sliver_rule_passes
from huijiao_plugin.core.compare.engine.pairwise import _from_wkb
from huijiao_plugin.core.compare.engine.unions import _unions
from huijiao_plugin.core.compare.spec import Piece

WITHIN = "within_tolerance"


def _relate(a: Any, b: Any) -> Any:
    """The DE-9IM matrix of each pair (a[k], b[k]) of shapely arrays, as an (n, 9) array of characters. One
    thread: shapely holds the GIL while it makes a string per pair, and a second thread only slowed it."""
    return vectorized.shapely.relate(a, b).astype("U9").view("U1").reshape(-1, 9)


class _Pairs:
    """The pairs (left[k] < right[k]) of pieces whose geometries meet (touching counts) and, when one DE-9IM
    matrix per pair has told it, whether their interiors overlap and whether they share an edge (None:
    decided pair by pair)."""

    def __init__(self, left: Any, right: Any, overlap: Any = None, edge: Any = None) -> None:
        self.left, self.right, self.overlap, self.edge = left, right, overlap, edge


def _candidate_pairs(geoms: Sequence[QgsGeometry], shapes: Any, same: Any) -> _Pairs:
    """Pairs of pieces that meet; ``shapes``: the geometries as read by shapely (None: per geometry with
    QGIS); ``same``: category codes per piece when only pairs of one category matter, else None. One DE-9IM
    matrix per pair answers overlap and shared edge at once: GEOS computes the whole matrix for any relate
    call, so asking twice costs twice."""
    if shapes is not None:
        tree = vectorized.index(shapes)
        left, right = tree.query(shapes)  # boxes only: the matrix below tells which pairs meet
        keep = left < right
        if same is not None:
            keep &= same[left] == same[right]
        left, right = left[keep], right[keep]
        try:
            m = _relate(shapes[left], shapes[right])
        except vectorized.shapely.errors.GEOSException:  # decided pair by pair
            left, right = tree.query(shapes, predicate="intersects")
            keep = (left < right) & (same[left] == same[right] if same is not None else True)
            return _Pairs(left[keep], right[keep])
        meet = ~((m[:, 0] == "F") & (m[:, 1] == "F") & (m[:, 3] == "F") & (m[:, 4] == "F"))
        inner = m[:, 0] == "2"
        return _Pairs(left[meet], right[meet], inner[meet], (inner | (m[:, 4] == "1"))[meet])
    index = QgsSpatialIndex()
    for n, g in enumerate(geoms):
        index.addFeature(n, g.boundingBox())
    out = []
    for i, g in enumerate(geoms):
        for j in index.intersects(g.boundingBox()):
            if j > i and (same is None or same[i] == same[j]) and g.intersects(geoms[j]):
                out.append((i, j))
    pairs = np.asarray(out, dtype=np.int64).reshape(-1, 2)
    return _Pairs(pairs[:, 0], pairs[:, 1])


def _interiors_meet(a: QgsGeometry, b: QgsGeometry) -> bool:
    engine = QgsGeometry.createGeometryEngine(a.constGet())
    return bool(engine.relatePattern(b.constGet(), "2********"))


def _components(n: int, a: Any, b: Any) -> Any:
    """The connected components of the graph on ``range(n)`` with edges (a[k], b[k]): per node, the smallest
    node of its component (roots hooked under the smaller root, then paths halved, until no edge joins two
    roots)."""
    label = np.arange(n)
    while len(a):
        la, lb = label[a], label[b]
        differ = la != lb
        if not differ.any():
            break
        la, lb = la[differ], lb[differ]
        np.minimum.at(label, np.maximum(la, lb), np.minimum(la, lb))
        while True:
            up = label[label]
            if (up == label).all():
                break
            label = up
    return label


def partition(
    pieces: list[Piece],
    order: Sequence[str],
    exclusive: bool,
    thresholds: tuple[float, float, float],
    workers: int = 1,
) -> list[Piece]:
    """The pieces of one run, overlaps counted once and tolerances applied per category union (see the
    module docstring); ``order``: the declared categories; ``thresholds``: (min_area, min_width, noise);
    ``workers``: threads for the vectorised GEOS calls."""
    rank = {c: n for n, c in enumerate(order)}
    pieces = sorted(
        (p for p in pieces if p.geom is not None and not p.geom.isEmpty()),
        key=lambda p: rank.get(p.category, len(rank)),
    )  # stable: a category's pieces keep their order
    geoms = [p.geom for p in pieces]
    shapes = vectorized.read_geometries(geoms) if vectorized.enabled() else None
    codes = {c: n for n, c in enumerate(dict.fromkeys(p.category for p in pieces))}
    category = np.asarray([codes[p.category] for p in pieces], dtype=np.int64)
    # categories that exclude each other: pairs across categories matter too
    pairs = _candidate_pairs(geoms, shapes, None if exclusive else category)
    # 1. overlaps counted once
    earlier: dict[int, list[int]] = {}
    if pairs.overlap is not None:
        for i, j in zip(pairs.left[pairs.overlap].tolist(), pairs.right[pairs.overlap].tolist()):
            earlier.setdefault(j, []).append(i)
    else:
        for i, j in zip(pairs.left.tolist(), pairs.right.tolist()):
            if _interiors_meet(geoms[i], geoms[j]):
                earlier.setdefault(j, []).append(i)
    for j, before in earlier.items():
        original = pieces[j].geom
        rest = polygonal(original.difference(QgsGeometry.unaryUnion([geoms[i] for i in before])))
        pieces[j].attrs["shared_m2"] = round(original.area() - (rest.area() if rest else 0.0), 3)
        pieces[j].geom = rest  # None when wholly shared
    kept = [n for n, p in enumerate(pieces) if p.geom is not None and not p.geom.isEmpty()]
    if not any(thresholds):
        return [pieces[n] for n in kept]
    # 2. tolerances per connected part of each category's union, judged on single parts ("units")
    units = _Units(pieces, kept, shapes, earlier)
    passes = sliver_rule_passes(units.parts, units.shapes, thresholds, workers)
    # units sharing an edge, one of them failing the rule on its own
    ju, jv = _joined(pairs, units, passes, category)
    group = _components(len(passes), ju, jv)
    verdict = passes.copy()
    sizes = np.bincount(group, minlength=len(passes))
    with_passing = np.zeros(len(passes), dtype=bool)
    with_passing[group[passes]] = True
    verdict |= with_passing[group]  # a part holding a unit that passes alone is reported whole
    alone = ~with_passing[group] & (sizes[group] > 1)
    order_ = np.argsort(group[alone], kind="stable")
    members = np.nonzero(alone)[0][order_]
    together = (
        [g.tolist() for g in np.split(members, np.nonzero(np.diff(group[members]))[0] + 1)]
        if len(members)
        else []
    )

    def unite(jobs: list[list[int]]) -> list[QgsGeometry | None]:
        """The union of the units of each job: in whole arrays when shapely has read the units."""
        if units.shapes is not None and jobs:
            unions = _unions(units.shapes, units.areas, [np.asarray(job) for job in jobs], workers)
            return [polygonal(_from_wkb(w)) if w is not None else None for w in vectorized.to_wkbs(unions)]
        return [polygonal(QgsGeometry.unaryUnion([units.geom(u) for u in job])) for job in jobs]

    if units.shapes is not None and together:
        for u, ok in _judged_together(units.shapes, units.areas, together, thresholds, workers):
            verdict[u] = ok
    else:
        for members_, union in zip(together, unite(together)):
            # judged together: each connected part of their union
            parts = single_parts(union)
            ok = [passes_sliver_rule(part, *thresholds) for part in parts]
            for u in members_:
                verdict[u] = ok[_part_of(units.geom(u), parts)]
    host = _hosts(units.piece, passes, verdict, ju, jv)
    # a unit reported in another piece's row: the slivers kept with a piece join its row
    moved = (host >= 0) & (host != units.piece)
    received: dict[int, list[int]] = {}
    for u, n in zip(np.nonzero(moved)[0].tolist(), host[moved].tolist()):
        received.setdefault(n, []).append(u)
    units_of = units.of
    hosts = [n for n in kept if n in received]
    joined_rows = dict(
        zip(
            hosts,
            unite([[u for u in units_of(n) if verdict[u] and host[u] == n] + received[n] for n in hosts]),
        )
    )
    # a piece all of whose units stay in its own row, with none received, is reported as it is
    as_is = np.zeros(len(pieces), dtype=bool)
    mine = verdict & (host == units.piece)
    as_is[kept] = np.bincount(units.piece, weights=mine, minlength=len(pieces))[kept] == units.count[kept]
    out: list[Piece] = []
    judged: dict[tuple[str, str], list[int]] = {}
    for n in kept:
        p = pieces[n]
        if as_is[n] and n not in received:
            out.append(p)
            continue
        good = [units.geom(u) for u in units_of(n) if verdict[u] and host[u] == n]
        noisy = [u for u in units_of(n) if not verdict[u]]
        if n in received:
            p.geom = joined_rows[n]
            out.append(p)
        elif good:
            p.geom = good[0] if len(good) == 1 else QgsGeometry.collectGeometry(good)
            out.append(p)
        if noisy and p.zldwdm:  # one row per category and 坐落单位: what was judged noise there
            judged.setdefault((p.category, p.zldwdm), []).extend(noisy)
        elif noisy:  # no 坐落单位: its region comes from its own geometry, so it keeps its own row
            noise = [units.geom(u) for u in noisy]
            geom = noise[0] if len(noise) == 1 else QgsGeometry.collectGeometry(noise)
            out.append(Piece(geom, WITHIN, {"tolerance_of": p.category}, p.zldwdm))
    # noise units share an edge only inside their group: only those are united, the rest collected
    rows: list[tuple[str, str, list[list[int]]]] = []
    for (category_, zl), noisy in judged.items():
        by_group: dict[int, list[int]] = {}
        for u in noisy:
            by_group.setdefault(int(group[u]), []).append(u)
        rows.append((category_, zl, list(by_group.values())))
    merged = iter(unite([g for _c, _z, gs in rows for g in gs if len(g) > 1]))
    for category_, zl, gs in rows:
        polys = [
            part for g in gs for part in ([units.geom(g[0])] if len(g) == 1 else single_parts(next(merged)))
        ]
        geom = polys[0] if len(polys) == 1 else QgsGeometry.collectGeometry(polys)
        out.append(Piece(geom, WITHIN, {"tolerance_of": category_}, zl))
    return out


class _Units:
    """The single parts ("units") of the kept pieces, in piece order: ``piece[u]`` the piece of unit u,
    ``of(n)`` the units of piece n (consecutive), ``shapes`` the units as shapely geometries (None without
    shapely) and ``geom(u)`` one as a QGIS geometry (made on first use: most units are reported as their
    piece, whole)."""

    def __init__(self, pieces: list[Piece], kept: list[int], shapes: Any, changed: dict[int, Any]) -> None:
        self.pieces = pieces
        self.shapes = self.areas = None
        self.parts: list[QgsGeometry] = []
        self._geoms: dict[int, QgsGeometry] = {}
        if shapes is not None and kept:
            source = shapes.copy()
            redo = [n for n in kept if n in changed]  # cut by step 1: read again
            if redo:
                source[redo] = vectorized.read_wkb([bytes(pieces[n].geom.asWkb()) for n in redo])
            if not vectorized.any_missing(source[kept]):
                parts, at = vectorized.shapely.get_parts(source[kept], return_index=True)
                live = ~vectorized.shapely.is_empty(parts)
                self.shapes, piece = parts[live], np.asarray(kept, dtype=np.int64)[at[live]]
                self.areas = vectorized.shapely.area(self.shapes)
        if self.shapes is None:
            pairs = [(n, part) for n in kept for part in single_parts(pieces[n].geom)]
            self.parts = [part for _n, part in pairs]
            piece = np.asarray([n for n, _part in pairs], dtype=np.int64)
        self.piece = piece
        self.changed = np.zeros(len(pieces), dtype=bool)
        self.changed[list(changed)] = True
        self.count = (
            np.bincount(piece, minlength=len(pieces)) if len(piece) else np.zeros(len(pieces), dtype=np.int64)
        )
        self.first = np.full(len(pieces), -1, dtype=np.int64)
        self.first[piece[::-1]] = np.arange(len(piece) - 1, -1, -1)

    def of(self, n: int) -> range:
        start = int(self.first[n])
        return range(start, start + int(self.count[n])) if start >= 0 else range(0)

    def geom(self, u: int) -> QgsGeometry:
        if self.shapes is None:
            return self.parts[u]
        g = self._geoms.get(u)
        if g is None:
            n = int(self.piece[u])
            if self.count[n] == 1 and not self.pieces[n].geom.isMultipart():
                g = self.pieces[n].geom
            else:
                g = _from_wkb(vectorized.shapely.to_wkb(self.shapes[u]))
            self._geoms[u] = g
        return g


def _joined(pairs: _Pairs, units: _Units, passes: Any, category: Any) -> tuple[Any, Any]:
    """The pairs of units (u, v) of one category that share an edge, one of them failing the sliver rule on
    its own, as two arrays. A pair of pieces each left whole in one part by step 1 is a pair of units whose
    matrix is already known; the other pairs of units are asked here."""
    left, right = pairs.left, pairs.right
    same = category[left] == category[right]
    count, first = units.count, units.first
    whole = (count[left] == 1) & (count[right] == 1) & ~units.changed[left] & ~units.changed[right]
    if pairs.edge is not None:
        k = np.nonzero(same & whole & pairs.edge)[0]
        u, v = first[left[k]], first[right[k]]  # each piece is its one unit
        one_fails = ~(passes[u] & passes[v])
        ku, kv = u[one_fails], v[one_fails]
        rest = same & ~whole & (count[left] > 0) & (count[right] > 0)
    else:
        ku = kv = np.zeros(0, dtype=np.int64)
        rest = same & (count[left] > 0) & (count[right] > 0)
    asked = []
    units_of = units.of
    for i, j in zip(left[rest].tolist(), right[rest].tolist()):
        for u in units_of(i):
            for v in units_of(j):
                if not (passes[u] and passes[v]):
                    asked.append((u, v))
    if not asked:
        return ku, kv
    au = np.asarray([u for u, _ in asked], dtype=np.int64)
    av = np.asarray([v for _, v in asked], dtype=np.int64)
    shared = _edges_of(units.shapes[au], units.shapes[av]) if units.shapes is not None else None
    if shared is None:
        shared = _edges_shared([units.geom(u) for u in au.tolist()], [units.geom(v) for v in av.tolist()])
    shared = np.asarray(shared, dtype=bool)
    return np.concatenate([ku, au[shared]]), np.concatenate([kv, av[shared]])


def _judged_together(
    unit_shapes: Any,
    areas: Any,
    together: Sequence[Sequence[int]],
    thresholds: tuple[float, float, float],
    workers: int,
) -> list[tuple[int, bool]]:
    """For the units of each group (none passing the rule alone): the verdict of the connected part of the
    group's union that holds the unit, in whole arrays (``_part_of`` and ``passes_sliver_rule`` per part)."""
    np, shapely = vectorized.np, vectorized.shapely
    unions = _unions(unit_shapes, areas, [np.asarray(g) for g in together], workers)
    parts, group_of = _polygon_parts(unions)
    ok = sliver_rule_passes([], parts, thresholds, workers)
    members = np.concatenate([np.asarray(g, dtype=np.int64) for g in together])
    member_group = np.repeat(np.arange(len(together)), [len(g) for g in together])
    points = shapely.point_on_surface(unit_shapes[members])  # units are single parts: their own largest
    at, hit = vectorized.index(parts).query(points, predicate="intersects")
    same = group_of[hit] == member_group[at]
    first = np.full(len(members), len(parts), dtype=np.int64)
    np.minimum.at(first, at[same], hit[same])  # the first part in order wins, as in _part_of
    out = []
    for m, (u, k) in enumerate(zip(members.tolist(), member_group.tolist())):
        part = int(first[m])
        if part == len(parts):  # no part holds the point (GEOS rounding): the part it overlaps most
            mine = np.nonzero(group_of == k)[0]
            part = int(mine[np.argmax(shapely.area(shapely.intersection(parts[mine], unit_shapes[u])))])
        out.append((u, ok[part]))
    return out


def _polygon_parts(geoms: Any) -> tuple[Any, Any]:
    """The polygons of each geometry (collections and multipolygons taken apart, lines and points left out)
    and, for each, the position of the geometry it came from."""
    np, shapely = vectorized.np, vectorized.shapely
    parts, index = shapely.get_parts(geoms, return_index=True)
    nested = shapely.get_type_id(parts) == 6  # a multipolygon inside a collection
    if nested.any():
        inner, k = shapely.get_parts(parts[nested], return_index=True)
        parts = np.concatenate([parts[~nested], inner])
        index = np.concatenate([index[~nested], index[nested][k]])
        order = np.argsort(index, kind="stable")
        parts, index = parts[order], index[order]
    polygon = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
    return parts[polygon], index[polygon]


def _hosts(piece: Any, passes: Any, verdict: Any, ju: Any, jv: Any) -> Any:
    """The piece whose row reports each unit (-1: noise). A unit that passes the rule on its own stays in its
    piece. The kept units that fail it alone (slivers reported because they share an edge with a real piece,
    or judged with their neighbours) join rows so that slivers do not become rows of their own: each
    connected set of them (through shared edges) joins the row of the first unit passing alone that it
    touches, else the row of its own first unit."""
    host = np.full(len(passes), -1, dtype=np.int64)
    host[passes] = piece[passes]
    sliver = verdict & ~passes
    both = sliver[ju] & sliver[jv]
    label = _components(len(passes), ju[both], jv[both])  # sets of kept slivers
    best = np.full(len(passes), len(passes), dtype=np.int64)  # per set: the first passing unit it touches
    for a, b in ((ju, jv), (jv, ju)):
        touch = passes[a] & sliver[b]
        np.minimum.at(best, label[b[touch]], a[touch])
    units = np.nonzero(sliver)[0]
    host[units] = piece[label[units]]  # the set's own first unit (its label) ...
    first = best[label[units]]
    touches = first < len(passes)
    host[units[touches]] = piece[first[touches]]  # ... unless it touches a unit passing alone
    return host


def _edges_shared(a: Sequence[QgsGeometry], b: Sequence[QgsGeometry]) -> Any:
    """``_share_an_edge`` for each pair (a[k], b[k]), in vectorised calls when shapely is available."""
    if vectorized.enabled() and a:
        sa, sb = vectorized.read_geometries(a), vectorized.read_geometries(b)
        if sa is not None and sb is not None:
            found = _edges_of(sa, sb)
            if found is not None:
                return found
    return [_share_an_edge(x, y) for x, y in zip(a, b)]


def _edges_of(sa: Any, sb: Any) -> Any:
    """Whether each pair (sa[k], sb[k]) of shapely geometries shares more than points, as a boolean array
    (None: GEOS rejects one here, decide pair by pair)."""
    try:  # the common part is more than points: a shared edge (dimension ≥ 1); one matrix a pair
        m = _relate(sa, sb)
    except vectorized.shapely.errors.GEOSException:
        return None
    return (m[:, 0] == "2") | (m[:, 4] == "1")


def _share_an_edge(a: QgsGeometry, b: QgsGeometry) -> bool:
    """True when ``a`` and ``b`` are in one connected part of their union (more than a corner shared)."""
    if not a.intersects(b):
        return False
    common = a.intersection(b)
    return common is not None and (common.length() > 0 or common.area() > 0)


def _part_of(geom: QgsGeometry, parts: Sequence[QgsGeometry]) -> int:
    """The part of the union holding ``geom`` (a point inside its largest part)."""
    largest = max(single_parts(geom), key=lambda g: g.area(), default=geom)
    point = largest.pointOnSurface()
    for k, part in enumerate(parts):
        if part.intersects(point):
            return k
    return max(range(len(parts)), key=lambda k: parts[k].intersection(geom).area())
