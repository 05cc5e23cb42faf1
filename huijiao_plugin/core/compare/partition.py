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
from huijiao_plugin.core.compare.engine.pairwise import _from_wkb
from huijiao_plugin.core.compare.engine.unions import _unions
from huijiao_plugin.core.compare.spec import Piece

WITHIN = "within_tolerance"


def _relate(a: Any, b: Any, workers: int) -> list[str]:
    """The DE-9IM matrix of each pair (a[k], b[k]) of shapely arrays, on ``workers`` threads."""
    parts = vectorized._parallel(
        lambda s: vectorized.shapely.relate(a[s], b[s]).tolist(), len(a), workers, lambda: None
    )
    return [m for part in parts for m in part]


def _candidate_pairs(
    geoms: Sequence[QgsGeometry], workers: int = 1, shapes: Any = None, same: Any = None
) -> tuple[list[tuple[int, int]], set[tuple[int, int]] | None, dict[tuple[int, int], bool]]:
    """Pairs (i < j) whose geometries intersect (touching counts); with vectorised GEOS also the set of
    those whose interiors overlap (else None: decided pair by pair) and, per pair, whether the two share an
    edge (``_share_an_edge``). One DE-9IM matrix per pair answers both: GEOS computes the whole matrix for
    any relate call, so asking twice costs twice. ``shapes``: the geometries as read by shapely (None: read
    here); ``same``: category codes per geometry, when only pairs of one category matter."""
    if shapes is None and vectorized.enabled() and geoms:
        shapes = _read(geoms)
    if shapes is not None:
        tree = vectorized.index(shapes)
        left, right = tree.query(shapes)  # boxes only: the matrix below tells which pairs intersect
        keep = left < right
        if same is not None:
            keep &= same[left] == same[right]
        left, right = left[keep], right[keep]
        try:
            matrices = _relate(shapes[left], shapes[right], workers)
        except vectorized.shapely.errors.GEOSException:  # decided pair by pair
            left, right = tree.query(shapes, predicate="intersects")
            keep = (left < right) & (same[left] == same[right] if same is not None else True)
            return list(zip(left[keep].tolist(), right[keep].tolist())), None, {}
        meet = [not (m[0] == m[1] == m[3] == m[4] == "F") for m in matrices]  # not disjoint
        pairs = [pair for pair, x in zip(zip(left.tolist(), right.tolist()), meet) if x]
        matrices = [m for m, x in zip(matrices, meet) if x]
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


def _read(geoms: Sequence[QgsGeometry]) -> Any:
    """shapely geometries of ``geoms`` (None when one cannot be read here: the caller goes per geometry)."""
    if not geoms:
        return None
    shapes = vectorized.read_wkb([bytes(g.asWkb()) for g in geoms])
    return None if vectorized.any_missing(shapes) else shapes


def _passes(
    units: Sequence[QgsGeometry], shapes: Any, thresholds: tuple[float, float, float], workers: int = 1
) -> list[bool]:
    """``passes_sliver_rule`` of each unit, over the whole array when shapely has read them (only the thin
    ones are eroded, on ``workers`` threads)."""
    if shapes is None:
        return [passes_sliver_rule(u, *thresholds) for u in units]
    np, shapely = vectorized.np, vectorized.shapely
    min_area, min_width, noise = thresholds
    area, perimeter = shapely.area(shapes), shapely.length(shapes)
    flat = perimeter <= 0
    width = np.where(flat, np.inf, area / np.where(flat, 1.0, perimeter))
    ok = (area >= min_area) & (flat | (width >= min_width))
    if noise > 0:
        thin = np.nonzero(ok & ~flat & (width <= noise / 2.0))[0]
        if len(thin):
            thin_shapes = shapes[thin]
            cores = vectorized._parallel(
                lambda s: shapely.area(shapely.buffer(thin_shapes[s], -noise / 2.0, quad_segs=4)),
                len(thin),
                workers,
                lambda: None,
            )
            ok[thin] = np.concatenate(cores) > 0.01
    return ok.tolist()


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
    shapes = _read(geoms) if vectorized.enabled() else None
    same = None  # categories that exclude each other: pairs across categories matter too
    if not exclusive and shapes is not None:
        codes = {c: n for n, c in enumerate(dict.fromkeys(p.category for p in pieces))}
        same = vectorized.np.asarray([codes[p.category] for p in pieces])
    pairs, overlapping, edges = _candidate_pairs(geoms, workers, shapes, same)
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
    unit_shapes = None
    if shapes is not None:  # a piece left whole and in one part is its own unit: read once
        unit_shapes = vectorized.np.empty(len(units), dtype=object)
        again = []
        for u, (n, _part) in enumerate(units):
            if n not in earlier and len(by_piece[n]) == 1:
                unit_shapes[u] = shapes[n]
            else:
                again.append(u)
        if again:
            unit_shapes[again] = vectorized.read_wkb([bytes(units[u][1].asWkb()) for u in again])
        if vectorized.any_missing(unit_shapes):
            unit_shapes = None
    passes = _passes([part for _n, part in units], unit_shapes, thresholds, workers)
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
    if unit_shapes is not None and asked:
        left = vectorized.np.asarray([u for u, _ in asked])
        right = vectorized.np.asarray([v for _, v in asked])
        shared = _edges_of(unit_shapes[left], unit_shapes[right], workers)
    else:
        shared = None
    if shared is None:
        shared = _edges_shared([units[u][1] for u, _ in asked], [units[v][1] for _, v in asked], workers)
    for (u, v), edge in zip(asked, shared):
        if edge:
            groups.join(u, v)
            joined.append((u, v))
    members: dict[int, list[int]] = {}
    for u in range(len(units)):
        members.setdefault(groups.find(u), []).append(u)
    verdict = passes[:]

    def unite(jobs: list[list[int]]) -> list[QgsGeometry | None]:
        """The union of the units of each job: in whole arrays when shapely has read the units."""
        if unit_shapes is not None and jobs:
            areas = vectorized.shapely.area(unit_shapes)
            unions = _unions(unit_shapes, areas, [vectorized.np.asarray(job) for job in jobs], workers)
            return [polygonal(_from_wkb(w)) if w is not None else None for w in vectorized.to_wkbs(unions)]
        return [polygonal(QgsGeometry.unaryUnion([units[u][1] for u in job])) for job in jobs]

    together = [g for g in members.values() if len(g) > 1 and not any(passes[u] for u in g)]
    for group in members.values():
        if len(group) > 1 and any(passes[u] for u in group):
            for u in group:
                verdict[u] = True
    if unit_shapes is not None and together:
        for u, ok in _judged_together(unit_shapes, together, thresholds, workers):
            verdict[u] = ok
    else:
        for group, union in zip(together, unite(together)):
            # judged together: each connected part of their union
            parts = single_parts(union)
            ok = [passes_sliver_rule(part, *thresholds) for part in parts]
            for u in group:
                verdict[u] = ok[_part_of(units[u][1], parts)]
    host = _hosts(units, passes, verdict, joined)
    received: dict[int, list[int]] = {}
    for u, n in enumerate(host):
        if n is not None and n != units[u][0]:
            received.setdefault(n, []).append(u)
    hosts = [n for n in kept if n in received]
    # slivers kept with a piece join its row: not split finer than needed
    joined_rows = dict(
        zip(
            hosts,
            unite([[u for u in by_piece[n] if verdict[u] and host[u] == n] + received[n] for n in hosts]),
        )
    )
    out: list[Piece] = []
    judged: dict[tuple[str, str], list[int]] = {}
    for n in kept:
        p = pieces[n]
        good = [units[u][1] for u in by_piece[n] if verdict[u] and host[u] == n]
        noisy = [u for u in by_piece[n] if not verdict[u]]
        noise = [units[u][1] for u in noisy]
        if n in received:
            p.geom = joined_rows[n]
            out.append(p)
        elif good:
            p.geom = good[0] if len(good) == 1 else QgsGeometry.collectGeometry(good)
            out.append(p)
        if noise and p.zldwdm:  # one row per category and 坐落单位: what was judged noise there
            judged.setdefault((p.category, p.zldwdm), []).extend(noisy)
        elif noise:  # no 坐落单位: its region comes from its own geometry, so it keeps its own row
            geom = noise[0] if len(noise) == 1 else QgsGeometry.collectGeometry(noise)
            out.append(Piece(geom, WITHIN, {"tolerance_of": p.category}, p.zldwdm))
    # noise units share an edge only inside their group: only those are united, the rest collected
    rows: list[tuple[str, str, list[list[int]]]] = []
    for (category, zl), noisy in judged.items():
        by_group: dict[int, list[int]] = {}
        for u in noisy:
            by_group.setdefault(groups.find(u), []).append(u)
        rows.append((category, zl, list(by_group.values())))
    merged = iter(unite([g for _c, _z, gs in rows for g in gs if len(g) > 1]))
    for category, zl, gs in rows:
        polys = [
            part for g in gs for part in ([units[g[0]][1]] if len(g) == 1 else single_parts(next(merged)))
        ]
        geom = polys[0] if len(polys) == 1 else QgsGeometry.collectGeometry(polys)
        out.append(Piece(geom, WITHIN, {"tolerance_of": category}, zl))
    return out


def _judged_together(
    unit_shapes: Any, together: Sequence[Sequence[int]], thresholds: tuple[float, float, float], workers: int
) -> list[tuple[int, bool]]:
    """For the units of each group (none passing the rule alone): the verdict of the connected part of the
    group's union that holds the unit, in whole arrays (``_part_of`` and ``passes_sliver_rule`` per part)."""
    np, shapely = vectorized.np, vectorized.shapely
    unions = _unions(unit_shapes, shapely.area(unit_shapes), [np.asarray(g) for g in together], workers)
    parts, group_of = _polygon_parts(unions)
    ok = _passes([], parts, thresholds, workers)
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
            found = _edges_of(sa, sb, workers)
            if found is not None:
                return found
    return [_share_an_edge(x, y) for x, y in zip(a, b)]


def _edges_of(sa: Any, sb: Any, workers: int) -> list[bool] | None:
    """Whether each pair (sa[k], sb[k]) of shapely geometries shares more than points (None: GEOS rejects
    one here, decide pair by pair)."""
    try:  # the common part is more than points: a shared edge (dimension ≥ 1); one matrix a pair
        return [m[0] == "2" or m[4] == "1" for m in _relate(sa, sb, workers)]
    except vectorized.shapely.errors.GEOSException:
        return None


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
