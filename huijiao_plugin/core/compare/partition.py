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

from qgis.core import QgsGeometry, QgsSpatialIndex

from huijiao_plugin.core.compare import vectorized
from huijiao_plugin.core.compare.engine import passes_sliver_rule, polygonal, single_parts
from huijiao_plugin.core.compare.spec import Piece

WITHIN = "within_tolerance"


def _relate(a: Any, b: Any, workers: int) -> list[str]:
    """The DE-9IM matrix of each pair (a[k], b[k]) of shapely arrays, on ``workers`` threads."""
    parts = vectorized._parallel(
        lambda s: vectorized.shapely.relate(a[s], b[s]).tolist(), len(a), workers, lambda: None
    )
    return [m for part in parts for m in part]


def _candidate_pairs(
    geoms: Sequence[QgsGeometry], workers: int = 1
) -> tuple[list[tuple[int, int]], set[tuple[int, int]] | None, dict[tuple[int, int], bool]]:
    """Pairs (i < j) whose geometries intersect (touching counts); with vectorised GEOS also the set of
    those whose interiors overlap (else None: decided pair by pair) and, per pair, whether the two share an
    edge (``_share_an_edge``). One DE-9IM matrix per pair answers both: GEOS computes the whole matrix for
    any relate call, so asking twice costs twice."""
    if vectorized.enabled() and geoms:
        shapes = vectorized.read_wkb([bytes(g.asWkb()) for g in geoms])
        if not vectorized.any_missing(shapes):
            left, right = vectorized.index(shapes).query(shapes, predicate="intersects")
            keep = left < right
            left, right = left[keep], right[keep]
            pairs = list(zip(left.tolist(), right.tolist()))
            try:
                matrices = _relate(shapes[left], shapes[right], workers)
            except vectorized.shapely.errors.GEOSException:  # decided pair by pair
                return pairs, None, {}
            inner = [m[0] == "2" for m in matrices]
            edges = {pair: m[0] == "2" or m[4] == "1" for pair, m in zip(pairs, matrices)}
            return pairs, {pair for pair, x in zip(pairs, inner) if x}, edges
    index = QgsSpatialIndex()
    for n, g in enumerate(geoms):
        index.addFeature(n, g.boundingBox())
    out = []
    for i, g in enumerate(geoms):
        for j in index.intersects(g.boundingBox()):
            if j > i and g.intersects(geoms[j]):
                out.append((i, j))
    return out, None, {}


def _interiors_meet(a: QgsGeometry, b: QgsGeometry) -> bool:
    engine = QgsGeometry.createGeometryEngine(a.constGet())
    return bool(engine.relatePattern(b.constGet(), "2********"))


class _Groups:
    """Union-find over positions."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


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
    pairs, overlapping, edges = _candidate_pairs(geoms, workers)
    # 1. overlaps counted once
    earlier: dict[int, list[int]] = {}
    for i, j in pairs:
        if not (exclusive or pieces[i].category == pieces[j].category):
            continue
        if (i, j) in overlapping if overlapping is not None else _interiors_meet(geoms[i], geoms[j]):
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
    units: list[tuple[int, QgsGeometry]] = [(n, part) for n in kept for part in single_parts(pieces[n].geom)]
    by_piece: dict[int, list[int]] = {}
    for u, (n, _part) in enumerate(units):
        by_piece.setdefault(n, []).append(u)
    passes = [passes_sliver_rule(part, *thresholds) for _n, part in units]
    groups = _Groups(len(units))
    joined: list[tuple[int, int]] = []  # units sharing an edge, one of them failing the rule on its own
    # a piece left whole by step 1 and in one part is its own unit: its pair's matrix already answers
    whole = {n for n in kept if n not in earlier and len(by_piece[n]) == 1}
    asked = []
    for i, j in pairs:
        if pieces[i].category != pieces[j].category or i not in by_piece or j not in by_piece:
            continue
        known = edges.get((i, j)) if i in whole and j in whole else None
        for u in by_piece[i]:
            for v in by_piece[j]:
                if passes[u] and passes[v]:
                    continue
                if known is None:
                    asked.append((u, v))
                elif known:
                    groups.join(u, v)
                    joined.append((u, v))
    for (u, v), edge in zip(
        asked, _edges_shared([units[u][1] for u, _ in asked], [units[v][1] for _, v in asked], workers)
    ):
        if edge:
            groups.join(u, v)
            joined.append((u, v))
    members: dict[int, list[int]] = {}
    for u in range(len(units)):
        members.setdefault(groups.find(u), []).append(u)
    verdict = passes[:]
    for group in members.values():
        if len(group) == 1 or any(passes[u] for u in group):
            for u in group:
                verdict[u] = len(group) > 1 or passes[u]
            continue
        # judged together: each connected part of their union
        parts = single_parts(polygonal(QgsGeometry.unaryUnion([units[u][1] for u in group])))
        ok = [passes_sliver_rule(part, *thresholds) for part in parts]
        for u in group:
            verdict[u] = ok[_part_of(units[u][1], parts)]
    host = _hosts(units, passes, verdict, joined)
    received: dict[int, list[QgsGeometry]] = {}
    for u, n in enumerate(host):
        if n is not None and n != units[u][0]:
            received.setdefault(n, []).append(units[u][1])
    out: list[Piece] = []
    judged: dict[tuple[str, str], list[int]] = {}
    for n in kept:
        p = pieces[n]
        good = [units[u][1] for u in by_piece[n] if verdict[u] and host[u] == n]
        noisy = [u for u in by_piece[n] if not verdict[u]]
        noise = [units[u][1] for u in noisy]
        if n in received:  # slivers kept with this piece join its row: not split finer than needed
            p.geom = polygonal(QgsGeometry.unaryUnion(good + received[n]))
            out.append(p)
        elif good:
            p.geom = good[0] if len(good) == 1 else QgsGeometry.collectGeometry(good)
            out.append(p)
        if noise and p.zldwdm:  # one row per category and 坐落单位: what was judged noise there
            judged.setdefault((p.category, p.zldwdm), []).extend(noisy)
        elif noise:  # no 坐落单位: its region comes from its own geometry, so it keeps its own row
            geom = noise[0] if len(noise) == 1 else QgsGeometry.collectGeometry(noise)
            out.append(Piece(geom, WITHIN, {"tolerance_of": p.category}, p.zldwdm))
    for (category, zl), noisy in judged.items():
        # noise units share an edge only inside their group: only those are united, the rest collected
        by_group: dict[int, list[QgsGeometry]] = {}
        for u in noisy:
            by_group.setdefault(groups.find(u), []).append(units[u][1])
        polys = [
            part
            for geoms in by_group.values()
            for part in (geoms if len(geoms) == 1 else single_parts(QgsGeometry.unaryUnion(geoms)))
        ]
        geom = polys[0] if len(polys) == 1 else QgsGeometry.collectGeometry(polys)
        out.append(Piece(geom, WITHIN, {"tolerance_of": category}, zl))
    return out


def _hosts(
    units: Sequence[tuple[int, QgsGeometry]],
    passes: Sequence[bool],
    verdict: Sequence[bool],
    joined: Sequence[tuple[int, int]],
) -> list[int | None]:
    """The piece whose row reports each kept unit (None: noise). A unit that passes the rule on its own stays
    in its piece; a kept unit that fails it alone (a sliver reported because it shares an edge with a real
    piece, or judged with its neighbours) joins the row of the piece it reaches first through shared edges,
    so slivers do not become rows of their own."""
    near: dict[int, list[int]] = {}
    for u, v in joined:
        near.setdefault(u, []).append(v)
        near.setdefault(v, []).append(u)
    host: list[int | None] = [units[u][0] if passes[u] else None for u in range(len(units))]
    seeds = [u for u in range(len(units)) if passes[u]]
    seeds += [u for u in range(len(units)) if verdict[u] and not passes[u]]
    for seed in seeds:
        if host[seed] is not None and not passes[seed]:
            continue  # reached from an earlier seed
        if host[seed] is None:
            host[seed] = units[seed][0]
        queue = [seed]
        while queue:  # breadth-first over kept slivers only: a real piece never joins another row
            u = queue.pop()
            for v in near.get(u, ()):
                if host[v] is None and verdict[v] and not passes[v]:
                    host[v] = host[seed]
                    queue.append(v)
    return host


def _edges_shared(a: Sequence[QgsGeometry], b: Sequence[QgsGeometry], workers: int = 1) -> list[bool]:
    """``_share_an_edge`` for each pair (a[k], b[k]), in vectorised calls when shapely is available."""
    if vectorized.enabled() and a:
        sa = vectorized.read_wkb([bytes(g.asWkb()) for g in a])
        sb = vectorized.read_wkb([bytes(g.asWkb()) for g in b])
        if not (vectorized.any_missing(sa) or vectorized.any_missing(sb)):
            shapely = vectorized.shapely
            try:  # the common part is more than points: a shared edge (dimension ≥ 1); one matrix a pair
                return [m[0] == "2" or m[4] == "1" for m in _relate(sa, sb, workers)]
            except shapely.errors.GEOSException:  # a geometry GEOS rejects here: pair by pair below
                pass
    return [_share_an_edge(x, y) for x, y in zip(a, b)]


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
