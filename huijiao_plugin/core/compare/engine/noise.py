"""Tolerance and noise: the sliver rule, digitising-noise tests and covers (a feature inside a partner up to
the noise width)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from qgis.core import (
    QgsGeometry,
    QgsRectangle,
)

from huijiao_plugin.core.compare import vectorized
from huijiao_plugin.core.compare.engine.featureset import FeatureSet
from huijiao_plugin.core.compare.engine.geometry import ERODE_SEGMENTS, polygonal, single_parts
from huijiao_plugin.core.compare.engine.pairwise import _read_shapes
from huijiao_plugin.core.compare.engine.runner import _prepared, _Runner

LOG = logging.getLogger(__name__)


def passes_sliver_rule(
    geom: QgsGeometry, min_area: float, min_width: float, noise_width: float = 0.0
) -> bool:
    """domain.md §6: keep a piece only if its area ≥ ``min_area`` m² and its mean width (area / perimeter) ≥
    ``min_width`` m (planar, in the projected CRS); with ``noise_width`` > 0 also drop pieces that are
    thinner than
    ``noise_width`` everywhere (erosion by half of it leaves nothing): the slivers between two departments'
    boundaries that differ by digitising noise. A piece with area / perimeter > noise_width / 2 always
    survives
    the erosion, so only thin pieces pay for the buffer."""
    area = geom.area()
    if area < min_area:
        return False
    perimeter = geom.length()
    if perimeter <= 0:
        return True
    width = area / perimeter
    if width < min_width:
        return False
    if noise_width <= 0 or width > noise_width / 2.0:
        return True
    core = geom.buffer(-noise_width / 2.0, 4)
    return core is not None and not core.isEmpty() and core.area() > 0.01


def sliver_rule_passes(
    geoms: Sequence[QgsGeometry], shapes: Any, thresholds: tuple[float, float, float], workers: int = 1
) -> Any:
    """``passes_sliver_rule`` of each geometry as a boolean array; over the whole array when shapely has
    read them (``shapes``; only the thin ones are eroded, on ``workers`` threads), else one at a time."""
    if shapes is None:
        return np.asarray([passes_sliver_rule(g, *thresholds) for g in geoms], dtype=bool)
    shapely = vectorized.shapely
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
    return ok


def kept_parts(
    geom: QgsGeometry | None, min_area: float, min_width: float, noise_width: float = 0.0
) -> list[QgsGeometry]:
    if min_area <= 0 and min_width <= 0 and noise_width <= 0:
        return single_parts(geom)  # tolerances off: every part passes (exact pieces, judged later)
    return [p for p in single_parts(geom) if passes_sliver_rule(p, min_area, min_width, noise_width)]


def _noise_only_difference(
    g: QgsGeometry, i: int, js: Sequence[int], b: FeatureSet, noise: float, a: FeatureSet | None
) -> bool:
    """True when ``g − ∪B`` is digitising noise only: g eroded by noise/2 lies inside one of the candidates
    ``js`` grown by noise/2, since ``(g − B_j) ⊖ r = (g ⊖ r) − (B_j ⊕ r)``. The boxes rule out most
    candidates before any of them is grown."""
    r = noise / 2.0
    core = a.buffered(i, -r) if a is not None else g.buffer(-r, ERODE_SEGMENTS)
    if core is None or core.isEmpty():
        return True  # g itself is thinner than the noise everywhere
    return _grown_cover(core, js, b, r) is not None


def _grown_cover(core: QgsGeometry, candidates: Iterable[int], b: FeatureSet, r: float) -> int | None:
    """The first of ``candidates`` whose dilation by ``r`` contains ``core``, or None. The boxes rule out
    most candidates before any of them is grown."""
    rect = core.boundingBox()
    for k in candidates:
        if not b.grown_box(k, r).contains(rect):
            continue
        grown = b.buffered(k, r) if r > 0 else b.geoms[k]
        if grown is not None and _prepared(grown).contains(core.constGet()):
            return k
    return None


def _is_noise(part: QgsGeometry, noise: float) -> bool:
    """True if ``part`` is thinner than ``noise`` everywhere (erosion by noise/2 leaves nothing)."""
    perimeter = part.length()
    if perimeter <= 0 or part.area() / perimeter > noise / 2.0:
        return False
    core = part.buffer(-noise / 2.0, 4)
    return core is None or core.isEmpty() or core.area() <= 0.01


def _subtract_each(g: QgsGeometry, others: list[QgsGeometry], noise: float) -> QgsGeometry | None:
    """``g − ∪others`` by subtracting one at a time (largest overlap first), dropping after each step the
    parts that are digitising noise: a part thinner than the noise stays so when cut further, and is dropped
    by the sliver rule in the end anyway. Usually the first difference leaves only noise: no union needed."""
    box = g.boundingBox()
    others = sorted(others, key=lambda o: -o.boundingBox().intersect(box).area())
    rest: QgsGeometry | None = g
    for other in others:
        if rest is None:
            return None
        if not rest.boundingBox().intersects(other.boundingBox()):
            continue
        diff = polygonal(rest.difference(other))
        parts = [p for p in single_parts(diff) if not _is_noise(p, noise)]
        if not parts:
            return None
        rest = parts[0] if len(parts) == 1 else QgsGeometry.collectGeometry(parts)
    return rest


class Cover:
    """``cover(i)``: the index k of a feature of ``by`` whose dilation by ``r`` contains feature i of ``fs``
    eroded by ``r``; -1 when feature i is thinner than 2r everywhere; None when no feature covers it. Then
    every piece of feature i outside b_k is digitising noise: ``(g − b_k) ⊖ r = (g ⊖ r) − (b_k ⊕ r) = ∅``.

    With vectorised GEOS (``vectorized``), ``decide_all`` / ``decide_many`` decide whole arrays of features
    with the GIL released; otherwise, and for features it leaves undecided (invalid or unreadable there),
    each is decided on first use. Thread-safe (a race decides twice, the same way)."""

    def __init__(self, fs: FeatureSet, by: FeatureSet, r: float, runner: _Runner) -> None:
        self.fs, self.by, self.r, self.runner = fs, by, r, runner
        self.decided: dict[int, int] = {}  # feature -> k, -1 (thin) or -2 (not covered)
        self.finder = (
            vectorized.CoverFinder(lambda: vectorized.read_wkb(by.geoms.raw_wkbs()), r, ERODE_SEGMENTS)
            if r > 0 and vectorized.enabled()
            else None
        )

    def __call__(self, i: int) -> int | None:
        answer = self.decided.get(i)
        if answer is None:
            answer = self.decided[i] = self._decide_one(i)
        return None if answer == -2 else answer

    def _decide_one(self, i: int) -> int:
        fs, by, r = self.fs, self.by, self.r
        by.ensure_index()
        core = fs.buffered(i, -r) if r > 0 else fs.geoms[i]
        if core is None:
            return -1  # thinner than the noise everywhere
        # the covering feature, if any, contains a point inside the core: only the few whose box holds that
        # point are tried (no geometry of the other neighbours is built)
        point = core.pointOnSurface().asPoint()
        near = by.candidates(QgsRectangle(point.x(), point.y(), point.x(), point.y()))
        k = _grown_cover(core, near, by, r)
        return -2 if k is None else k

    def decide_all(self, items: Sequence[int]) -> None:
        """Decide ``items`` up front, vectorised on the runner's threads (a no-op without shapely)."""
        if self.finder is None:
            return
        todo = sorted({i for i in items if i not in self.decided})
        if todo:
            geoms = _read_shapes(self.fs, todo)
            runner = self.runner
            self._store(todo, *vectorized.cover_all(geoms, self.finder, runner.workers, runner.check))
        self.finder.release()  # every later question is asked one by one: its index is not needed now

    def decide_many(self, items: Iterable[int]) -> None:
        """Decide the undecided among ``items`` at once, on the calling thread (a no-op without shapely)."""
        if self.finder is None:
            return
        todo = sorted({i for i in items if i not in self.decided})
        if len(todo) > 1:
            self._store(todo, *self.finder.decide(_read_shapes(self.fs, todo)))

    def _store(self, todo: Sequence[int], answer: Any, valid: Any, by_valid: Any, cores: Any) -> None:
        positions = np.asarray(todo, dtype=np.int64)
        self.fs.geoms.mark_valid(positions[valid])
        self.by.geoms.mark_valid(by_valid)
        undecided = vectorized.UNDECIDED
        self.decided.update((i, k) for i, k in zip(todo, answer.tolist()) if k != undecided)
        # the erosions serve later overlays of the run (``FeatureSet.buffered``)
        self.fs.cache_buffers(-self.r, positions[valid].tolist(), cores)


class Covered:
    """``covered(i)``: ``cover(i) is not None``; ``decide_many`` as ``Cover.decide_many``."""

    def __init__(self, cover: Cover) -> None:
        self.cover = cover
        self.decide_many = cover.decide_many

    def __call__(self, i: int) -> bool:
        return self.cover(i) is not None
