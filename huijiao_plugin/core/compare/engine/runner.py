"""The thread pool of a run (chunks, progress, cancel) and feature selections."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from qgis.core import (
    QgsFeedback,
    QgsGeometry,
    QgsRectangle,
    QgsSpatialIndex,
)

from huijiao_plugin.core.compare.engine.geometry import CHUNK, CompareCanceledError

if TYPE_CHECKING:  # reading imports this module
    from huijiao_plugin.core.compare.engine.featureset import FeatureSet

LOG = logging.getLogger(__name__)


def _start_background(func: Callable[[], Any]) -> Future:
    """Run ``func`` on a daemon thread; its result (or exception) in the returned Future."""
    future: Future = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(func())
        except BaseException as error:  # handed to whoever asks for the result
            future.set_exception(error)

    threading.Thread(target=run, name="huijiao-index", daemon=True).start()
    return future


# --- the overlay operations (thread-parallel) ---------------------------------------------------------------


class _Runner:
    """Chunks work over ``workers`` threads and reports progress/cancel through a QgsFeedback."""

    def __init__(self, workers: int, feedback: QgsFeedback | None) -> None:
        self.workers = max(1, workers)
        self.feedback = feedback

    def check(self) -> None:
        if self.feedback is not None and self.feedback.isCanceled():
            raise CompareCanceledError()

    def advance(self, chunks: int) -> None:
        """Monotonic progress without knowing the number of operations ahead: each finished chunk moves the
        bar a share of the remaining way towards 95 %."""
        if self.feedback is not None:
            current = self.feedback.progress()
            self.feedback.setProgress(current + (95.0 - current) * 0.5 / max(chunks, 1))

    def map(
        self, func: Callable[[Sequence[int]], list[Any]], items: Sequence[int], chunk: int = CHUNK
    ) -> list[Any]:
        # at least ~8 chunks per worker, so that a few slow chunks at the end do not leave a core idle
        chunk = max(16, min(chunk, len(items) // (self.workers * 8)))
        chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
        out: list[Any] = []
        if self.workers == 1 or len(chunks) <= 1:
            for part in chunks:
                self.check()
                out.extend(func(part))
                self.advance(len(chunks))
            return out
        with ThreadPoolExecutor(self.workers) as pool:
            futures = [pool.submit(func, part) for part in chunks]
            try:
                for future in futures:
                    self.check()
                    out.extend(future.result())
                    self.advance(len(chunks))
            except CompareCanceledError:
                for future in futures:
                    future.cancel()
                raise
        return out


def _vertex_count(geom: QgsGeometry) -> int:
    return geom.constGet().nCoordinates()  # ``geom`` stays referenced while its abstract geometry is used


def _prepared(geom: QgsGeometry) -> Any:
    """A prepared GEOS engine of ``geom``; it keeps ``geom`` alive (the engine only points to its geometry,
    and geometries of a ``CheckedGeometries`` are temporaries)."""
    engine = QgsGeometry.createGeometryEngine(geom.constGet())
    engine.prepareGeometry()
    engine.huijiao_geometry = geom
    return engine


Pred = Optional[Callable[[int], bool]]


class _SubsetIndex:
    """A spatial index over a few features of a set (those passing a filter), keyed by position; cheaper
    than waiting for the bulk index of a whole 250 000-patch layer when the filter keeps a few thousand."""

    LIMIT = 20000  # more features than this: the set's bulk index and a filter per candidate

    def __init__(self, fs: FeatureSet, items: Sequence[int]) -> None:
        self.index = QgsSpatialIndex()
        self.items = set(items)
        geoms = fs.geoms
        for j in items:
            self.index.addFeature(j, geoms[j].boundingBox())

    def holds(self, j: int) -> bool:
        return j in self.items

    def candidates(self, rect: QgsRectangle) -> list[int]:
        return self.index.intersects(rect)


class Selection:
    """A filter over a layer's features held as a boolean mask: asked per feature like any predicate, and
    its selected features listed without a Python call per feature (``_selected``)."""

    def __init__(self, mask: Any) -> None:
        self.mask = np.asarray(mask, dtype=bool)
        self._flags = self.mask.tolist()  # indexing a list is faster than a numpy array, one at a time

    def __call__(self, i: int) -> bool:
        return self._flags[i]

    def items(self) -> list[int]:
        return np.flatnonzero(self.mask).tolist()


def _selected(n: int, pred: Pred) -> list[int]:
    if pred is None:
        return list(range(n))
    if isinstance(pred, Selection):
        return pred.items()
    return [i for i in range(n) if pred(i)]
