"""Whole-layer noise proofs with vectorised GEOS (shapely ≥ 2, optional).

The overlay engine proves most digitising noise per feature (an erosion, a dilation and a containment,
see ``CountyOverlay.cover``). On a county that is tens of thousands of short GEOS calls, each wrapped in
Python that holds the GIL, so a second thread gains little. shapely runs the same GEOS operations over
whole arrays with the GIL released: the Python cost is per array, and two threads split the arrays.

Nothing here is required: without shapely ≥ 2 (or with ``enabled(False)``) the engine proves the same
facts one feature at a time. Results only decide which pieces are skipped as noise; every reported piece is
still computed by QGIS. A feature whose geometry shapely cannot read or GEOS finds invalid is left
undecided (``UNDECIDED``), so the per-feature path repairs and decides it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from huijiao_plugin.compat import from_wkb_ignoring_curves, vectorised_shapely

# optional: the per-feature path needs neither (None when shapely's array functions are missing)
shapely, np = vectorised_shapely()

THIN = -1  # the feature is thinner than the noise everywhere
NOT_COVERED = -2  # no feature of the other layer covers it up to the noise
UNDECIDED = -3  # not readable or not valid here: decide it one feature at a time

_SLICE = 4096  # features per task: cancel is checked between tasks

_enabled = True


def enabled(value: bool | None = None) -> bool:
    """Whether the vectorised path is used (shapely ≥ 2 installed and not switched off); ``value`` switches
    it (the tests run both paths)."""
    global _enabled
    if value is not None:
        _enabled = bool(value)
    return _enabled and shapely is not None


def describe() -> str:
    """Which GEOS computes a run, for its provenance (the last digits of areas may differ between GEOS
    versions)."""
    if enabled():
        return f"shapely {shapely.__version__}, GEOS {shapely.geos_version_string} (whole arrays)"
    return "QGIS geometry engine (one feature at a time)"


def read_wkb(wkbs: Sequence[bytes]) -> Any:
    """shapely geometries of ``wkbs`` (None where a WKB cannot be read, e.g. curves)."""
    arr = np.empty(len(wkbs), dtype=object)
    arr[:] = wkbs
    # in slices: reading holds the GIL, and threads running GEOS beside it need it between their calls
    return np.concatenate(
        [from_wkb_ignoring_curves(shapely, np, arr[i : i + _SLICE]) for i in range(0, len(arr), _SLICE)]
        or [np.empty(0, dtype=object)]
    )


def read_geometries(geoms: Sequence[Any]) -> Any:
    """shapely geometries of QGIS geometries (through their WKB); None when there are none or one cannot
    be read here (the caller then goes one geometry at a time)."""
    if not geoms:
        return None
    shapes = read_wkb([bytes(g.asWkb()) for g in geoms])
    return None if any_missing(shapes) else shapes


def _parallel(func: Callable[[slice], Any], n: int, workers: int, check: Callable[[], None]) -> list[Any]:
    """``func`` over slices of ``range(n)`` on ``workers`` threads (shapely releases the GIL), in order;
    ``check`` (cancel) runs between slices."""
    slices = [slice(i, min(i + _SLICE, n)) for i in range(0, n, _SLICE)]
    if workers < 2 or len(slices) < 2:
        parts = []
        for part in slices:
            check()
            parts.append(func(part))
        return parts
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(func, part) for part in slices]
        parts = []
        try:
            for future in futures:
                check()
                parts.append(future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return parts


class CoverFinder:
    """Decides ``CountyOverlay.cover`` for arrays of geometries against one layer (``read_by()`` gives its
    geometries; they are read and indexed once, on first use or on a background thread after ``start``).

    For each geometry: the index of the ``by`` geometry whose dilation by ``r`` contains its erosion by ``r``,
    else ``THIN`` / ``NOT_COVERED`` / ``UNDECIDED``. The covering geometry, if any, contains a point inside
    the erosion: only those whose box holds that point are tried. Buffers use ``segments`` per quarter
    circle, so arcs become chords: an erosion comes out a little larger and a dilation a little smaller than
    the exact one, and a cover can be missed, never claimed wrongly."""

    def __init__(self, read_by: Callable[[], Any], r: float, segments: int) -> None:
        self._read_by = read_by
        self.r = r
        self.segments = segments
        self._lock = threading.Lock()
        self._tree: tuple[Any, Any] | None = None

    def start(self) -> None:
        """Read and index the other side on a background thread (it holds the GIL; erosions release it)."""
        threading.Thread(target=self.tree, name="huijiao-cover-index", daemon=True).start()

    def tree(self) -> tuple[Any, Any]:
        with self._lock:
            if self._tree is None:
                by = self._read_by()
                self._tree = (by, shapely.STRtree(by))
            return self._tree

    def release(self) -> None:
        with self._lock:
            self._tree = None

    def decide(self, geoms: Any) -> tuple[Any, Any, Any, Any]:
        """(answer per geometry, validity per geometry, indices of ``by`` geometries found valid, WKB of the
        erosion of each valid geometry, None where nothing is left)."""
        r, segments = self.r, self.segments
        answer = np.full(len(geoms), UNDECIDED, dtype=np.int64)
        valid = shapely.is_valid(geoms)
        live = np.nonzero(valid)[0]
        core = shapely.buffer(geoms[live], -r, quad_segs=segments)
        thin = shapely.is_empty(core)
        core_wkb = to_wkbs(core)
        answer[live[thin]] = THIN
        live, core = live[~thin], core[~thin]
        answer[live] = NOT_COVERED
        points = shapely.point_on_surface(core)
        by_geoms, tree = self.tree()
        at, ks = tree.query(points, predicate="intersects")  # (position in live, index in by_geoms)
        # a candidate must be valid before it is grown; an invalid one leaves the feature undecided
        k_valid = shapely.is_valid(by_geoms[ks])
        answer[live[at[~k_valid]]] = UNDECIDED
        at, ks = at[k_valid], ks[k_valid]
        grown = shapely.buffer(by_geoms[ks], r, quad_segs=segments)
        shapely.prepare(grown)
        inside = shapely.contains(grown, core[at])
        # a point on a shared edge meets two candidates: one that covers decides (the last write wins)
        answer[live[at[inside]]] = ks[inside]
        return answer, valid, ks, core_wkb


def cover_all(
    geoms: Any, finder: CoverFinder, workers: int, check: Callable[[], None]
) -> tuple[Any, Any, Any, Any]:
    """``finder.decide`` over all of ``geoms`` in slices on ``workers`` threads; the other side is indexed
    beside the first erosions."""
    finder.start()
    parts = _parallel(lambda s: finder.decide(geoms[s]), len(geoms), workers, check)
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return empty, np.empty(0, dtype=bool), empty, np.empty(0, dtype=object)
    answer, valid, by_valid, cores = (np.concatenate(column) for column in zip(*parts))
    return answer, valid, np.unique(by_valid), cores


def valid(geoms: Any, workers: int, check: Callable[[], None]) -> Any:
    """GEOS validity of each geometry (False where missing), on ``workers`` threads."""
    parts = _parallel(lambda s: shapely.is_valid(geoms[s]), len(geoms), workers, check)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def any_missing(geoms: Any) -> bool:
    return bool(shapely.is_missing(geoms).any())


def nothing(geoms: Any) -> Any:
    """Where there is no geometry or an empty one (an erosion that left nothing)."""
    return shapely.is_missing(geoms) | shapely.is_empty(geoms)


A_WHOLE = b"A"  # in ``pair_pieces``: the piece is the first geometry itself


def pair_pieces(
    ga: Any,
    gb: Any,
    at: Any,
    bt: Any,
    cores_a: Callable[[Any], Any] | None,
    cores_b: Callable[[Any], Any] | None,
) -> list[tuple[int, int, bytes | None]]:
    """What the intersecting pairs ``(ga[at[k]], gb[bt[k]])`` give, as ``(at[k], bt[k], wkb)``: ``wkb`` None
    when gb[q] lies inside ga[p] (the piece is gb[q] itself), ``A_WHOLE`` when ga[p] lies inside gb[q], else
    the WKB of ``ga[p] ∩ gb[q]``.

    ``cores_a(positions)`` / ``cores_b(positions)``: the erosions by half the noise width of those
    geometries, or None without a noise test. A pair is skipped as noise when the erosion of ga[p] misses
    gb[q] (the piece lies within the noise of ga[p]'s boundary), or, for a pair not taken whole, when the two
    erosions miss each other: ``(a ∩ b) ⊖ r = (a ⊖ r) ∩ (b ⊖ r)``."""
    out: list[tuple[int, int, bytes | None]] = []
    if not len(at):
        return out
    core = None
    if cores_a is not None:
        unique, inverse = np.unique(at, return_inverse=True)
        core_unique = cores_a(unique)
        live_unique = ~nothing(core_unique)
        shapely.prepare(core_unique[live_unique])
        core = core_unique[inverse]
        live = live_unique[inverse]
        live[live] = shapely.intersects(core[live], gb[bt[live]])
        at, bt, core = at[live], bt[live], core[live]
    whole = shapely.contains(ga[at], gb[bt])
    out += [(p, q, None) for p, q in zip(at[whole].tolist(), bt[whole].tolist())]  # noqa: B905
    at, bt = at[~whole], bt[~whole]
    if core is not None and cores_b is not None and len(at):
        core = core[~whole]
        unique, inverse = np.unique(bt, return_inverse=True)
        core_b = cores_b(unique)[inverse]
        live = ~nothing(core_b)
        live[live] = shapely.intersects(core[live], core_b[live])
        at, bt = at[live], bt[live]
    inside = shapely.within(ga[at], gb[bt])  # (ga is prepared) the piece is ga[p] itself
    out += [(p, q, A_WHOLE) for p, q in zip(at[inside].tolist(), bt[inside].tolist())]  # noqa: B905
    at, bt = at[~inside], bt[~inside]
    pieces = shapely.to_wkb(shapely.intersection(ga[at], gb[bt]))
    out += zip(at.tolist(), bt.tolist(), pieces.tolist())  # noqa: B905
    out.sort(key=lambda pair: (pair[0], pair[1]))  # the order of a walk feature by feature
    return out


def index(geoms: Any) -> Any:
    """An STR-packed tree over ``geoms`` (``query(..., predicate="intersects")`` gives candidate pairs)."""
    return shapely.STRtree(geoms)


def prepare(geoms: Any) -> None:
    shapely.prepare(geoms)


def eroded(geoms: Any, r: float, segments: int) -> Any:
    return shapely.buffer(geoms, -r, quad_segs=segments)


def to_wkbs(geoms: Any) -> Any:
    """WKB of each geometry (an object array: never numpy's fixed-width bytes, which drop trailing zero
    bytes); None where there is nothing (missing or empty)."""
    return shapely.to_wkb(np.where(nothing(geoms), None, geoms))


def bounds(geoms: Any) -> Any:
    """(xmin, ymin, xmax, ymax) per geometry."""
    return shapely.bounds(geoms)


def near_pairs(geoms: Any, tolerance: float, workers: int, check: Callable[[], None]) -> Any:
    """Pairs of positions (p < q) whose geometries are within ``tolerance`` of each other (touching counts),
    as two arrays."""
    tree = shapely.STRtree(geoms)

    def near(s: slice) -> Any:
        if tolerance > 0:
            p, q = tree.query(geoms[s], predicate="dwithin", distance=tolerance)
        else:
            p, q = tree.query(geoms[s], predicate="intersects")
        p = p + s.start
        keep = p < q
        return np.stack([p[keep], q[keep]])

    parts = _parallel(near, len(geoms), workers, check)
    return np.concatenate(parts, axis=1) if parts else np.zeros((2, 0), dtype=np.int64)


def intersections(ga: Any, gb: Any) -> Any:
    """WKB of ``ga[k] ∩ gb[k]`` for each k; None where that is empty."""
    return to_wkbs(shapely.intersection(ga, gb))
