"""Reading a role's layer into a :class:`FeatureSet` (attributes as columns, geometries checked lazily,
bounding-box indexes: QgsSpatialIndex or the GeoPackage's own R*Tree)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
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

from huijiao_plugin.core.compare.engine.geometry import (
    ERODE_SEGMENTS,
    CompareCanceledError,
    CompareError,
    polygonal,
)
from huijiao_plugin.core.compare.engine.runner import _start_background
from huijiao_plugin.core.compare.rules import RuleProfile, _text

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
        # the catalog's dataset id (core/recognition), when the layer was recognised
        self.dataset_id = str(layer.customProperty("huijiao/dataset_id", "") or "")
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
    parts = snap.source.split("|")
    layer_name = next((p[len("layername=") :] for p in parts if p.startswith("layername=")), "")
    info = {
        "role": role,
        "name": snap.name,  # the layer's name in the project
        "layer": layer_name or snap.name,  # the layer (table) in its file
        "source": source,
        "file": Path(source).name if source else "",
        "provider": snap.provider,
        "subset": snap.subset,
        "features": len(geoms),
        "feature_count": snap.feature_count,  # the layer's count (with its subset)
        "crs": snap.crs.authid(),
        "dataset_id": snap.dataset_id,
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
    "A": ["BSM", "ZLDWDM", "DLBM"],
    "B": ["BSM", "ZLDWDM", "DLBM"],
}
