"""Reading a role's layer into a :class:`FeatureSet` (attributes as columns, geometries checked lazily,
bounding-box indexes: QgsSpatialIndex or the GeoPackage's own R*Tree)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsFeedback,
    QgsFields,
    QgsGeometry,
    QgsProject,
    QgsProviderRegistry,
    QgsSpatialIndex,
    QgsVectorLayer,
    QgsVectorLayerFeatureSource,
    QgsWkbTypes,
)

from huijiao_plugin.core.compare.engine.featureset import (  # noqa: F401 - their public home was here
    CheckedGeometries,
    Columns,
    FeatureSet,
    GpkgRtree,
)
from huijiao_plugin.core.compare.engine.geometry import (
    CompareCanceledError,
    CompareError,
)
from huijiao_plugin.core.compare.engine.runner import _start_background
from huijiao_plugin.core.compare.rules import RuleProfile, _text

LOG = logging.getLogger(__name__)


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
