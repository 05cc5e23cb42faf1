"""Feature sets of the comparison engine: a role's attributes as columns, its geometries checked lazily,
its bounding-box index (QgsSpatialIndex or the GeoPackage's own R*Tree)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any
from urllib.request import pathname2url

import numpy as np
from qgis.core import (
    QgsGeometry,
    QgsRectangle,
    QgsSpatialIndex,
)

from huijiao_plugin.core.compare.engine.geometry import (
    ERODE_SEGMENTS,
    polygonal,
)

LOG = logging.getLogger(__name__)

# --- feature sets -------------------------------------------------------------------------------------------


class GpkgRtree:
    """Bounding-box queries against a GeoPackage layer's own R*Tree (``rtree_<table>_<column>``), one
    read-only SQLite connection per thread: no index to build for a few thousand queries against a 250 000
    patch layer. The R*Tree stores 32-bit bounds rounded outwards, so it may return a few extra candidates,
    never miss one."""

    def __init__(self, path: str, rtree_table: str) -> None:
        self.uri = "file:" + pathname2url(path) + "?mode=ro"
        quoted = '"' + rtree_table.replace('"', '""') + '"'
        self.sql = f"SELECT id FROM {quoted} WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?"
        self._local = threading.local()

    @classmethod
    def find(cls, path: str, table: str) -> GpkgRtree | None:
        """The R*Tree of ``table`` in the GeoPackage ``path``, or None when it has none."""
        try:
            with closing(sqlite3.connect("file:" + pathname2url(path) + "?mode=ro", uri=True)) as conn:
                sql = "SELECT column_name FROM gpkg_geometry_columns WHERE lower(table_name) = lower(?)"
                row = conn.execute(sql, (table,)).fetchone()
                if row is None:
                    return None
                name = f"rtree_{table}_{row[0]}"
                found = conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND lower(name) = lower(?)", (name,)
                ).fetchone()
                return cls(path, found[0]) if found else None
        except sqlite3.Error:
            return None

    def fids(self, rect: QgsRectangle) -> list[int]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(self.uri, uri=True, check_same_thread=False)
        bounds = (rect.xMaximum(), rect.xMinimum(), rect.yMaximum(), rect.yMinimum())
        return [row[0] for row in conn.execute(self.sql, bounds)]


@dataclass
class FeatureSet:
    """One input layer in memory: repaired geometries in the base CRS, the attributes the rules need, an
    index."""

    role: str
    name: str
    geoms: CheckedGeometries
    attrs: Columns
    fids: list[int]
    info: dict[str, Any] = field(default_factory=dict)
    repaired: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    _index: QgsSpatialIndex | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    bulk: Callable[[], QgsSpatialIndex] | None = None  # builds an STR-packed index keyed by feature id
    _pos: dict[int, int] | None = None
    prefetch: Future | None = None  # the bulk index, already being built on a background thread
    _buffers: dict[float, dict[int, bytes]] = field(default_factory=dict)
    _boxes: dict[int, QgsRectangle] = field(default_factory=dict)
    rtree: GpkgRtree | None = None  # the source's own spatial index (GeoPackage), queried by feature id

    def __len__(self) -> int:
        return len(self.geoms)

    @property
    def index(self) -> QgsSpatialIndex:
        with self._lock:
            if self._index is None:
                if self.bulk is not None:
                    # bulk loading (STR) from the source is ~4× faster than inserting one by one
                    self._ensure_positions()
                    built = None
                    if self.prefetch is not None:
                        try:
                            built = self.prefetch.result()
                        except Exception:  # the background build failed: build it here (same index)
                            LOG.debug("background index build failed for %s", self.name, exc_info=True)
                        self.prefetch = None
                    self._index = built if built is not None else self.bulk()
                else:
                    index = QgsSpatialIndex()
                    for i, geom in enumerate(self.geoms):
                        index.addFeature(i, geom.boundingBox())
                    self._index = index
            return self._index

    def ensure_index(self, queries: int | None = None) -> None:
        """Make ``candidates`` ready before worker threads share it (queries are thread-safe). A GeoPackage
        layer answers a few queries (about one per 25 features: building the index costs more) from its own
        R*Tree; more queries, or ``queries`` unknown, build the in-memory index once."""
        if self._index is not None:
            return
        if self.rtree is not None and queries is not None and queries * 25 <= len(self):
            with self._lock:
                self._ensure_positions()
            return
        _ = self.index

    def queries_are_cheap(self, queries: int) -> bool:
        """Whether ``queries`` candidate queries need no index to be built first (``ensure_index``)."""
        return self._index is not None or (self.rtree is not None and queries * 25 <= len(self))

    def _ensure_positions(self) -> None:
        """feature id -> position, for indexes keyed by feature id (call with the lock held)."""
        if self._pos is None:
            self._pos = dict(zip(self.fids, range(len(self.fids))))

    def candidates(self, rect: QgsRectangle) -> list[int]:
        if self._index is None and self.rtree is not None and self._pos is not None:
            ids = self.rtree.fids(rect)
        else:
            ids = self.index.intersects(rect)
        if self._pos is None:
            return ids
        pos = self._pos
        return [pos[f] for f in ids if f in pos]

    def value(self, i: int, key: str) -> Any:
        return self.attrs.get(i, key)

    def grown_box(self, i: int, r: float) -> QgsRectangle:
        """The bounding box of feature ``i`` grown by ``r`` (contains the box of its dilation by ``r``); the
        boxes are cached, so testing a feature against many others does not rebuild its geometry."""
        box = self._boxes.get(i)
        if box is None:
            box = self._boxes[i] = self.geoms.box(i)
        grown = QgsRectangle(box)
        grown.grow(r)
        return grown

    def cache_buffers(self, distance: float, positions: list[int], wkbs: Iterable[bytes | None]) -> None:
        """Buffers of ``positions`` computed elsewhere (vectorised), as WKB (None: nothing left)."""
        cache = self._buffers.setdefault(distance, {})
        cache.update(zip(positions, (w or b"" for w in wkbs)))  # noqa: B905

    def buffered(self, i: int, distance: float) -> QgsGeometry | None:
        """Feature ``i`` eroded (``distance`` < 0) or dilated (> 0) with ``ERODE_SEGMENTS``; None when
        nothing is left. Kept as WKB (a quarter of the memory of geometry objects: a suite keeps hundreds of
        thousands) and shared by every overlay of the run (thread-safe: a race computes the same geometry
        twice)."""
        cache = self._buffers.get(distance)
        if cache is None:
            cache = self._buffers.setdefault(distance, {})
        wkb = cache.get(i)
        if wkb is None:
            geom = self.geoms[i].buffer(distance, ERODE_SEGMENTS)
            wkb = b"" if geom is None or geom.isEmpty() else bytes(geom.asWkb())
            cache[i] = wkb
            return geom if wkb else None
        if not wkb:
            return None
        geom = QgsGeometry()
        geom.fromWkb(wkb)
        return geom


class Columns:
    """The attributes of one layer, column by column (a fraction of the memory and time of one Python
    object per feature): ``column(key)`` is one attribute of every feature, ``mask(func, *keys)`` a rule
    decided once per distinct value (DLBM, ZZSXDM …: a few dozen codes among 250 000 patches), ``self[i]`` a
    row view with ``.get(key)``. Byte-string columns from the Arrow reader are decoded on first use."""

    def __init__(self, length: int, columns: dict[str, Any]) -> None:
        self._length = length
        self._raw = columns  # key -> list, or a numpy array straight from the reader
        self._decoded: dict[str, list[Any]] = {}

    def __len__(self) -> int:
        return self._length

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def __getitem__(self, i: int) -> _Row:
        return _Row(self, i)

    def __iter__(self) -> Any:
        return (_Row(self, i) for i in range(self._length))

    def column(self, key: str) -> list[Any]:
        col = self._decoded.get(key)
        if col is None:
            raw = self._raw.get(key)
            if raw is None:
                col = [None] * self._length
            elif isinstance(raw, list):
                col = raw
            elif raw.dtype.kind == "S":
                # decode each distinct value once and share the str; a dict lookup per value in C (map) is
                # ~4× faster than numpy.unique on byte strings
                col = list(map(_Decoded().__getitem__, raw.tolist()))
            else:
                col = raw.tolist()
            self._decoded[key] = col  # a race decodes twice, with the same result
        return col

    def array(self, key: str) -> Any:
        """The column as a numpy array (byte strings as read, or Python objects), for vectorised tests."""
        import numpy

        raw = self._raw.get(key)
        if raw is None or isinstance(raw, list):
            values = numpy.empty(self._length, dtype=object)
            values[:] = raw if raw is not None else None
            return values
        return raw

    def get(self, i: int, key: str) -> Any:
        col = self._decoded.get(key)
        if col is not None:
            return col[i]
        raw = self._raw.get(key)
        if raw is None or isinstance(raw, list):
            return None if raw is None else raw[i]
        # one value of a column not decoded yet (attributes of a few result pieces): decode just that one
        value = raw[i]
        return value.decode("utf-8", "replace") if raw.dtype.kind == "S" else value.item()

    def classify(self, func: Callable[..., Any], *keys: str) -> list[Any]:
        """``[func(row[k1], row[k2] …) for every row]``, calling ``func`` once per distinct value tuple."""
        if len(keys) == 1:
            col: Any = self.column(keys[0])
            decided = {value: func(value) for value in set(col)}
        else:
            col = list(zip(*(self.column(k) for k in keys)))
            decided = {values: func(*values) for values in set(col)}
        return list(map(decided.__getitem__, col))

    def mask(self, func: Callable[..., Any], *keys: str) -> list[bool]:
        """``classify`` with the answers as booleans."""
        return self.classify(lambda *values: bool(func(*values)), *keys)


class _Row:
    """One feature's attributes: ``row.get(key)``, ``key in row``."""

    __slots__ = ("_columns", "_i")

    def __init__(self, columns: Columns, i: int) -> None:
        self._columns = columns
        self._i = i

    def get(self, key: str, default: Any = None) -> Any:
        return self._columns.get(self._i, key) if key in self._columns else default

    def __contains__(self, key: object) -> bool:
        return key in self._columns


class CheckedGeometries:
    """The geometries of one layer kept compact as WKB (a quarter of the memory of QgsGeometry objects) and
    materialised on access. GEOS validity is checked on first access: an invalid geometry is repaired with
    ``makeValid`` (an unrepairable one becomes empty), kept, and its feature id recorded in ``repaired``.
    Thread-safe."""

    def __init__(self, fids: list[int]) -> None:
        self._wkbs: list[bytes] = []
        self._state = bytearray()
        self._fixed: dict[int, QgsGeometry] = {}
        self._fids = fids
        self._lock = threading.Lock()
        self.repaired: list[int] = []

    def append(self, wkb: bytes) -> None:
        self._wkbs.append(wkb)
        self._state.append(0)

    def extend(self, wkbs: list[bytes]) -> None:
        self._wkbs.extend(wkbs)
        self._state.extend(bytes(len(wkbs)))

    def __len__(self) -> int:
        return len(self._state)

    def wkb(self, index: int) -> bytes:
        fixed = self._fixed.get(index)
        if fixed is not None:
            return bytes(fixed.asWkb())
        return self._wkbs[index]

    def box(self, index: int) -> QgsRectangle:
        """The bounding box of geometry ``index`` (no validity check: a repair never grows the box)."""
        fixed = self._fixed.get(index)
        if fixed is not None:
            return fixed.boundingBox()
        geom = QgsGeometry()
        geom.fromWkb(self._wkbs[index])
        return geom.boundingBox()

    def mark_valid(self, indices: Any) -> None:
        """Geometries found GEOS-valid elsewhere (vectorised): not checked again on access."""
        if len(indices):
            view = np.frombuffer(self._state, dtype=np.uint8)
            view[indices] = 1

    def raw_wkbs(self) -> list[bytes]:
        """The WKB as read (before any repair), e.g. to find identical geometries."""
        return self._wkbs

    def __getitem__(self, index: int) -> QgsGeometry:
        if index < 0:
            index += len(self)
        fixed = self._fixed.get(index)
        if fixed is not None:
            return fixed
        geom = QgsGeometry()
        geom.fromWkb(self._wkbs[index])
        if self._state[index]:
            return geom
        if not geom.isGeosValid():
            with self._lock:
                if index not in self._fixed:
                    self._fixed[index] = polygonal(geom.makeValid()) or QgsGeometry.fromWkt("Polygon EMPTY")
                    self.repaired.append(self._fids[index])
                    LOG.warning("invalid geometry (feature %s) repaired with makeValid", self._fids[index])
            return self._fixed[index]
        self._state[index] = 1
        return geom

    def __iter__(self) -> Any:
        for index in range(len(self)):
            yield self[index]


class _Decoded(dict):
    """bytes -> str (UTF-8, bad bytes replaced), each distinct value decoded once."""

    def __missing__(self, key: bytes) -> str:
        value = key.decode("utf-8", "replace")
        self[key] = value
        return value
