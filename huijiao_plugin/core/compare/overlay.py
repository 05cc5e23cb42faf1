"""The shared overlay engine of the 耕地比对 presets.

The county's layers are loaded once (geometries repaired with ``makeValid``, reprojected to the base CRS,
indexed
with ``QgsSpatialIndex``) into a :class:`CountyOverlay`. Overlays between two roles are computed once and
cached, so a
suite of presets answers every question from the same pairwise pieces (e.g. PBF × DLTB serves 非粮化,
生态脆弱 and
插花地). Every overlay uses prepared geometries (``QgsGeometryEngine.prepareGeometry``) and predicate
shortcuts:
a candidate fully inside is taken whole, a disjoint candidate is skipped, only the rest is intersected. The
geometry
work runs on worker threads (GEOS calls release the GIL).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.request import pathname2url

import numpy as np
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsFeedback,
    QgsFields,
    QgsGeometry,
    QgsProject,
    QgsProviderRegistry,
    QgsRectangle,
    QgsSpatialIndex,
    QgsVectorLayer,
    QgsVectorLayerFeatureSource,
    QgsWkbTypes,
)

from huijiao_plugin.core.compare import vectorized
from huijiao_plugin.core.compare.rules import RuleProfile, _text

LOG = logging.getLogger(__name__)

CHUNK = 256  # features per worker task
# Segments per quarter circle of the erosions that decide which pairs can only give noise. An inner buffer
# approximates its arcs (around concave corners) by chords inside the circle, so fewer segments give a
# slightly larger core: fewer pairs skipped, never a piece lost. 2 costs about half of 8.
ERODE_SEGMENTS = 2


class CompareError(Exception):
    """Bad input for a comparison; ``str(error)`` is a Chinese message for the user."""


class CompareCanceledError(Exception):
    """The user canceled the run."""


# --- geometry helpers ---------------------------------------------------------------------------------------


def polygonal(geom: QgsGeometry | None) -> QgsGeometry | None:
    """The polygon part of an overlay result (lines/points from touching boundaries dropped), or None."""
    if geom is None or geom.isNull() or geom.isEmpty():
        return None
    if geom.type() == QgsWkbTypes.GeometryType.PolygonGeometry:
        return geom
    if QgsWkbTypes.flatType(geom.wkbType()) == QgsWkbTypes.Type.GeometryCollection:
        out = QgsGeometry(geom)
        if (
            out.convertGeometryCollectionToSubclass(QgsWkbTypes.GeometryType.PolygonGeometry)
            and not out.isEmpty()
        ):
            return out
    return None


def single_parts(geom: QgsGeometry | None) -> list[QgsGeometry]:
    if geom is None or geom.isNull() or geom.isEmpty():
        return []
    if geom.isMultipart():
        return [part for part in geom.asGeometryCollection() if not part.isEmpty()]
    return [geom]


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


def kept_parts(
    geom: QgsGeometry | None, min_area: float, min_width: float, noise_width: float = 0.0
) -> list[QgsGeometry]:
    return [p for p in single_parts(geom) if passes_sliver_rule(p, min_area, min_width, noise_width)]


def union_parts(parts: Sequence[QgsGeometry]) -> QgsGeometry | None:
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return polygonal(QgsGeometry.unaryUnion(list(parts)))


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


class LayerSnapshot:
    """What the engine needs of a layer, taken in the layer's own (main) thread: fields, CRS, name, source
    and a thread-safe feature source (``QgsVectorLayerFeatureSource``), so a QgsTask can read it in the
    background."""

    def __init__(self, layer: QgsVectorLayer) -> None:
        if layer is None or not layer.isValid():
            raise CompareError("图层无效或无法打开: " + (layer.name() if layer is not None else ""))
        self.name = layer.name()
        self.fields = layer.fields()
        self.crs = layer.crs()
        self.geometry_type = layer.geometryType()
        self.source = layer.source()
        self.provider = layer.providerType()
        self.subset = layer.subsetString()
        self.feature_count = layer.featureCount()
        self.features = QgsVectorLayerFeatureSource(layer)


FAST_SUFFIXES = (".gpkg", ".gdb")


def read_ogr_columns(
    snap: LayerSnapshot,
    fields: dict[str, int],
    accept: Callable[[list[int], list[bytes | None]], list[bool] | None],
) -> dict[str, Any] | None:
    """Fast path for GeoPackage / FileGDB layers without a filter: read fids, WKB and the wanted columns in
    batches through GDAL's Arrow stream (``GetArrowStreamAsNumPy``, GDAL ≥ 3.6) instead of one QgsFeature at a
    time (~10× faster). ``accept(fids, wkbs)`` takes each batch's geometries and says which rows it kept
    (None: all); the columns of the kept rows are returned as numpy arrays. None when not applicable (other
    providers, filters, old GDAL): the caller falls back to the QGIS reader."""
    if snap.provider != "ogr" or snap.subset:
        return None
    parts = QgsProviderRegistry.instance().decodeUri("ogr", snap.source)
    path = str(parts.get("path") or "")
    if not path.lower().rstrip("/").endswith(FAST_SUFFIXES):
        return None
    try:
        import numpy
        from osgeo import ogr

        dataset = ogr.Open(path)
        if dataset is None:
            return None
        name = parts.get("layerName")
        layer = dataset.GetLayerByName(name) if name else dataset.GetLayer(int(parts.get("layerId") or 0))
        if layer is None or not hasattr(layer, "GetArrowStreamAsNumPy"):
            return None
        wanted = {key: snap.fields.at(index).name() for key, index in fields.items()}
        defn = layer.GetLayerDefn()
        names = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
        fid_name = layer.GetFIDColumn() or "OGC_FID"
        if any(n not in names for n in wanted.values() if n.lower() != fid_name.lower()):
            return None
        layer.SetIgnoredFields([n for n in names if n not in set(wanted.values())])
        geom_name = layer.GetGeometryColumn() or "wkb_geometry"
        stream = layer.GetArrowStreamAsNumPy(options=["USE_MASKED_ARRAYS=NO", "INCLUDE_FID=YES"])
    except Exception:  # any surprise before reading: the generic QGIS reader is always correct
        LOG.debug("Arrow fast path not used for %s", snap.source, exc_info=True)
        return None
    chunks: dict[str, list[Any]] = {key: [] for key in wanted}
    for batch in stream:
        keep = accept(batch[fid_name].tolist(), batch[geom_name].tolist())
        mask = None if keep is None else numpy.array(keep, dtype=bool)
        for key, field_name in wanted.items():
            array_ = batch[field_name] if field_name in batch else batch[fid_name]
            chunks[key].append(array_ if mask is None else array_[mask])
    return {key: numpy.concatenate(arrays) if arrays else numpy.zeros(0) for key, arrays in chunks.items()}


class _Decoded(dict):
    """bytes -> str (UTF-8, bad bytes replaced), each distinct value decoded once."""

    def __missing__(self, key: bytes) -> str:
        value = key.decode("utf-8", "replace")
        self[key] = value
        return value


def _resolve_fields(fields: QgsFields, profile: RuleProfile, keys: Iterable[str]) -> dict[str, int]:
    """Role key -> field index, by the profile's alias lists (case-insensitive); missing keys are left out."""
    names = {f.name().upper(): i for i, f in enumerate(fields)}
    out: dict[str, int] = {}
    for key in keys:
        for candidate in profile.field_candidates(key):
            if candidate.upper() in names:
                out[key] = names[candidate.upper()]
                break
    return out


def load_feature_set(
    layer: LayerSnapshot | QgsVectorLayer,
    role: str,
    keys: Iterable[str],
    profile: RuleProfile,
    crs: QgsCoordinateReferenceSystem | None = None,
    feedback: QgsFeedback | None = None,
) -> FeatureSet:
    """Read ``layer`` once: only the fields of ``keys``; invalid geometries repaired (``makeValid``) and
    reported; null or non-polygon geometries dropped and reported."""
    snap = layer if isinstance(layer, LayerSnapshot) else LayerSnapshot(layer)
    if snap.geometry_type != QgsWkbTypes.GeometryType.PolygonGeometry:
        raise CompareError(f"图层 {snap.name}（{role}）不是面图层")
    keys = list(keys)
    fields = _resolve_fields(snap.fields, profile, keys)
    transform = None
    if crs is not None and crs.isValid() and snap.crs.isValid() and snap.crs != crs:
        transform = QgsCoordinateTransform(snap.crs, crs, QgsProject.instance())
    request = QgsFeatureRequest().setSubsetOfAttributes(sorted(set(fields.values())))
    fids: list[int] = []
    dropped: list[int] = []
    geoms = CheckedGeometries(fids)
    items = list(fields.items())
    keys_order = [key for key, _ in items]

    context = QgsProject.instance().transformContext() if transform is not None else None

    def bulk() -> QgsSpatialIndex:
        req = QgsFeatureRequest().setNoAttributes()
        if context is not None:
            req.setDestinationCrs(crs, context)
        return QgsSpatialIndex(snap.features.getFeatures(req))

    # the bulk index reads the source on its own (C++, GIL released): build it on a background thread while
    # this thread reads the features (Python), instead of afterwards when the first overlay needs it
    prefetch = None
    rtree = None
    if snap.provider == "ogr" and not snap.subset:
        uri = QgsProviderRegistry.instance().decodeUri("ogr", snap.source)
        path = str(uri.get("path") or "")
        if path.lower().endswith(".gpkg") and uri.get("layerName") and transform is None:
            rtree = GpkgRtree.find(path, str(uri["layerName"]))
        if rtree is None and path.lower().rstrip("/").endswith(FAST_SUFFIXES):
            # without an R*Tree to start from, the index is built at once, beside the reading (it competes
            # with it for the CPU, so not when the file has its own index)
            prefetch = _start_background(bulk)

    def accept(batch_fids: list[int], wkbs: list[bytes | None]) -> list[bool] | None:
        """Take one batch of geometries; which rows were kept (None: all)."""
        if feedback is not None and feedback.isCanceled():
            raise CompareCanceledError()
        if transform is None:
            # no geometry, or a (multi)polygon without rings / parts (≤ 9 bytes of WKB): dropped
            try:
                all_kept = min(map(len, wkbs), default=10) > 9  # type: ignore[arg-type]
            except TypeError:  # a None among them
                all_kept = False
            if all_kept:
                geoms.extend(wkbs)  # type: ignore[arg-type]
                fids.extend(batch_fids)
                return None
            keep = [w is not None and len(w) > 9 for w in wkbs]
        else:
            keep = []
            for wkb in wkbs:
                geom = QgsGeometry()
                if wkb:
                    geom.fromWkb(wkb)
                keep.append(not geom.isNull() and not geom.isEmpty())
                if keep[-1]:
                    geom.transform(transform)
                    geoms.append(bytes(geom.asWkb()))
        for fid, wkb, kept in zip(batch_fids, wkbs, keep):  # noqa: B905
            if not kept:
                dropped.append(fid)
            else:
                fids.append(fid)
                if transform is None:
                    geoms.append(wkb)  # type: ignore[arg-type]
        return keep

    columns = read_ogr_columns(snap, fields, accept)
    if columns is None:  # the generic reader: one QgsFeature at a time
        columns = {key: [] for key in keys_order}
        batch: list[Any] = []
        for feature in snap.features.getFeatures(request):
            geom = feature.geometry()
            wkb = bytes(geom.asWkb()) if geom is not None and not geom.isNull() else None
            batch.append((feature.id(), wkb, feature.attributes()))
            if len(batch) == 20000:
                _accept_features(batch, accept, columns, items)
        _accept_features(batch, accept, columns, items)
    attrs = Columns(len(fids), columns)
    # GEOS validity is checked lazily, on the worker threads, for the geometries an overlay actually touches
    repaired = geoms.repaired
    sjnf = set(attrs.column("SJNF")) if "SJNF" in fields else set()
    versions = sorted({_text(v) for v in sjnf} - {""})
    source = snap.source.split("|")[0]
    info = {
        "role": role,
        "name": snap.name,
        "source": Path(source).name if source else "",
        "features": len(geoms),
        "version": ",".join(versions[:5]),
        "repaired": len(repaired),
        "dropped": len(dropped),
    }
    fs = FeatureSet(role, snap.name, geoms, attrs, fids, info, repaired, dropped)
    fs.bulk = bulk
    fs.prefetch = prefetch
    fs.rtree = rtree
    return fs


def _accept_features(
    batch: list[Any],
    accept: Callable[[list[int], list[bytes | None]], list[bool] | None],
    columns: dict[str, list[Any]],
    items: list[tuple[str, int]],
) -> None:
    """Hand a batch of (fid, wkb, attributes) of the generic reader to ``accept``; keep the kept rows'
    attributes; empty the batch."""
    if not batch:
        return
    keep = accept([b[0] for b in batch], [b[1] for b in batch])
    rows = [b[2] for b, k in zip(batch, keep) if k] if keep is not None else [b[2] for b in batch]  # noqa: B905
    for key, idx in items:
        columns[key].extend(row[idx] for row in rows)
    batch.clear()


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
    if not same and len(items) * 4 <= len(b_sel) and b.queries_are_cheap(len(items)):
        # a few features against many: only the candidates of their boxes are read and checked (from the
        # source's index, as the walk per feature does)
        b.ensure_index(len(items))
        selected = set(b_sel)
        touched: set[int] = set()
        for x0, y0, x1, y1 in vectorized.bounds(ga).tolist():
            touched.update(j for j in b.candidates(QgsRectangle(x0, y0, x1, y1)) if j in selected)
        b_sel = sorted(touched)
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


# --- the county overlay -------------------------------------------------------------------------------------

# attribute keys read per role (tolerant alias lookup in the rule profile)
ROLE_KEYS: dict[str, list[str]] = {
    "DLTB": ["BSM", "DLBM", "ZZSXDM", "TBXHDM", "GDPDJB", "GDLX", "FRDBS", "ZLDWDM", "QSDWDM", "SJNF"],
    "DLTB_N1": ["BSM", "DLBM", "ZZSXDM", "TBXHDM", "GDPDJB", "GDLX", "FRDBS", "ZLDWDM", "QSDWDM", "SJNF"],
    "PBF": ["BSM", "ZLDWDM", "XZQDM", "SJNF"],
    "HSF": ["XMBH", "XMMC", "ZLDWDM", "XZQDM"],
    "STBHHX": [],
    "YZGHQ": [],
    "TRHJZL": ["SOIL_CLASS", "ZLDWDM"],
    "JCTB": ["JCBH", "TBLX", "ZLDWDM", "XZQDM"],
    "XZQ": ["XZQDM", "XZQMC"],
    "CJDCQ": ["CJDM", "CJMC"],
    "A": ["BSM", "ZLDWDM"],
    "B": ["BSM", "ZLDWDM"],
}


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


class CountyOverlay:
    """The county's layers by role, loaded once, with cached overlays shared by all presets.

    ``layers`` maps a role (DLTB, DLTB_N1, PBF, HSF, STBHHX, YZGHQ, TRHJZL, JCTB, XZQ, CJDCQ, A, B) to a
    layer.
    All geometry is brought into the CRS of ``crs`` (default: the DLTB layer's, else the first layer's)."""

    def __init__(
        self,
        layers: dict[str, QgsVectorLayer | LayerSnapshot],
        profile: RuleProfile | None = None,
        crs: QgsCoordinateReferenceSystem | None = None,
        workers: int = 2,
        feedback: QgsFeedback | None = None,
    ) -> None:
        self.layers = {
            role: layer if isinstance(layer, LayerSnapshot) else LayerSnapshot(layer)
            for role, layer in layers.items()
            if layer is not None
        }
        self.profile = profile or RuleProfile.default()
        if crs is None or not crs.isValid():
            base = self.layers.get("DLTB") or next(iter(self.layers.values()), None)
            crs = base.crs if base is not None else QgsCoordinateReferenceSystem()
        self.crs = crs
        if self.crs.isValid() and self.crs.isGeographic():
            raise CompareError(
                "比对需要投影坐标系（如 CGCS2000 3 度带），当前为地理坐标系: " + self.crs.authid()
            )
        self.feedback = feedback
        self.runner = _Runner(workers, feedback)
        self._sets: dict[str, FeatureSet] = {}
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._area_calc: Any = None

    def has(self, role: str) -> bool:
        return role in self.layers

    def loaded(self, role: str) -> bool:
        return role in self._sets

    def require(self, *roles: str) -> None:
        missing = [r for r in roles if r not in self.layers]
        if missing:
            raise CompareError("缺少输入图层: " + "、".join(missing))

    def features(self, role: str) -> FeatureSet:
        if role not in self._sets:
            self.require(role)
            self._sets[role] = self._load(role)
        return self._sets[role]

    def preload(self, roles: Iterable[str]) -> None:
        """Read several layers at once (GDAL decodes with the GIL released): a preset's inputs in parallel."""
        todo = [role for role in dict.fromkeys(roles) if self.has(role) and role not in self._sets]
        if len(todo) < 2 or self.runner.workers < 2:
            for role in todo:
                self.features(role)
            return
        with ThreadPoolExecutor(min(self.runner.workers, len(todo))) as pool:
            loaded = dict(zip(todo, pool.map(self._load, todo)))
        self._sets.update(loaded)

    def _load(self, role: str) -> FeatureSet:
        keys = list(ROLE_KEYS.get(role, []))
        if role in ("DLTB", "DLTB_N1"):
            keys += [k for k in self.profile.get("versiondiff_fields") if k not in keys]
        return load_feature_set(self.layers[role], role, keys, self.profile, self.crs, self.feedback)

    def input_info(self, roles: Iterable[str]) -> dict[str, Any]:
        out = {}
        for role in roles:
            if self.has(role):
                fs = self.features(role)
                out[role] = dict(fs.info, repaired=len(fs.repaired))
        return out

    def repaired_report(self) -> dict[str, list[int]]:
        return {role: sorted(fs.repaired) for role, fs in self._sets.items() if fs.repaired}

    # --- cached overlays ------------------------------------------------------------------------------------
    def pairs(
        self,
        role_a: str,
        role_b: str,
        a_pred: Pred = None,
        b_pred: Pred = None,
        key: str = "",
        noise: float = 0.0,
        b_noise: Pred = None,
        a_cover: Callable[[int], int | None] | None = None,
    ) -> list[tuple[int, int, QgsGeometry]]:
        """``a_i ∩ b_j`` pieces. The complete overlay (no filter, no noise skip) is reused when some preset
        already computed it; any other is cached under (``key``, ``noise``). Pass ``noise`` only when each
        piece is judged on its own by the sliver rule (see ``pairwise_intersection``)."""
        full = ("pairs", role_a, role_b, "", 0.0)
        if full in self._cache:
            out = self._cache[full]
            return [p for p in out if (a_pred is None or a_pred(p[0])) and (b_pred is None or b_pred(p[1]))]
        cache_key = ("pairs", role_a, role_b, key if (a_pred or b_pred) else "", float(noise))
        if cache_key not in self._cache:
            self._cache[cache_key] = pairwise_intersection(
                self.features(role_a),
                self.features(role_b),
                self.runner,
                a_pred,
                b_pred,
                noise=noise,
                b_noise=b_noise,
                a_cover=a_cover,
            )
        return self._cache[cache_key]

    def covered(self, role: str, by_role: str, noise: float, items: Sequence[int] | None = None) -> Covered:
        """``covered(i)``: feature i of ``role`` lies inside one feature of ``by_role`` up to digitising noise
        (see ``cover``). Then ``g − ∪by_role`` is noise only for every g ⊆ feature i:
        ``(g − B) ⊖ r ⊆ (f ⊖ r) − (B ⊕ r) = ∅``."""
        return Covered(self.cover(role, by_role, noise, items))

    def cover(self, role: str, by_role: str, noise: float, items: Sequence[int] | None = None) -> Cover:
        """``cover(i)``: the index k of a feature of ``by_role`` that contains feature i of ``role`` up to
        digitising noise (i eroded by noise/2 lies inside k dilated by noise/2); -1 when feature i is thinner
        than the noise everywhere; None when no feature covers it. ``items``: the features that will be
        asked, decided all at once up front (see ``Cover``)."""
        cache_key = ("cover", role, by_role, float(noise))
        if cache_key not in self._cache:
            fs, by = self.features(role), self.features(by_role)
            self._cache[cache_key] = Cover(fs, by, noise / 2.0, self.runner)
        cover = self._cache[cache_key]
        if items is not None:
            cover.decide_all(items)
        return cover

    def identical(self, role_a: str, role_b: str) -> dict[int, int]:
        """Features of ``role_a`` whose geometry is identical (same WKB) to one of ``role_b``: a → b index.
        Year N+1 of a 变更调查 keeps the exact geometry of every unchanged patch."""
        cache_key = ("identical", role_a, role_b)
        if cache_key not in self._cache:
            b_wkbs = self.features(role_b).geoms.raw_wkbs()
            # built from the end so that the first of duplicate geometries wins
            index = dict(zip(reversed(b_wkbs), range(len(b_wkbs) - 1, -1, -1)))
            found = map(index.get, self.features(role_a).geoms.raw_wkbs())
            self._cache[cache_key] = {i: j for i, j in enumerate(found) if j is not None}
        return self._cache[cache_key]

    def by_union(
        self, role_a: str, role_b: str, mode: str, b_pred: Pred = None, key: str = "", noise: float = 0.0
    ) -> list[Any]:
        """Per feature of ``role_a``: its difference from / intersection with the union of ``role_b``
        (``noise``: see ``_union_op``)."""
        cache_key = ("union", role_a, role_b, mode, key, float(noise))
        if cache_key not in self._cache:
            a = self.features(role_a)
            self._cache[cache_key] = _union_op(
                a.geoms, self.features(role_b), self.runner, b_pred, mode, noise=noise, a=a
            )
        return self._cache[cache_key]

    def groups(self, role: str, tolerance: float, pred: Pred = None, key: str = "") -> list[list[int]]:
        cache_key = ("groups", role, float(tolerance), key)
        if cache_key not in self._cache:
            fs = self.features(role)
            items = [i for i in range(len(fs)) if pred is None or pred(i)]
            self._cache[cache_key] = proximity_groups(fs, self.runner, tolerance, items)
        return self._cache[cache_key]

    # --- areas ----------------------------------------------------------------------------------------------
    def areas(self, geoms: Iterable[QgsGeometry]) -> list[float]:
        """三调 ellipsoidal areas in m² (rounded 0.01) from the foundation's calculator."""
        if self._area_calc is None:
            from huijiao_plugin.core.ellipsoidal_area import EllipsoidalAreaCalculator

            self._area_calc = EllipsoidalAreaCalculator(self.crs)
        return list(self._area_calc.areas(list(geoms)))

    def check(self) -> None:
        self.runner.check()

    def progress(self, value: float) -> None:
        if self.feedback is not None:
            self.feedback.setProgress(value)
