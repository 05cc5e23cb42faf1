"""外业核查包 export: the patches, photos table, clipped context layers and an optional basemap."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import uuid as uuidlib
import zipfile
from pathlib import Path

from osgeo import gdal, ogr
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsFeatureRequest,
    QgsFeedback,
    QgsFields,
    QgsGeometry,
    QgsProject,
    QgsRasterLayer,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsWkbTypes,
)

from huijiao_plugin.core.patches import schema
from huijiao_plugin.core.patches.field_package.common import (
    BASE_FIELDS,
    KV_FIELDS,
    PACKAGE_BASE,
    PACKAGE_META,
    PHOTO_DIR,
    PHOTO_FIELDS,
    PHOTOS_LAYER,
    ExportResult,
    FieldPackageError,
    _create_table,
    _field_package_errors,
    _safe_name,
    _srs_of,
    editable_values,
)
from huijiao_plugin.core.patches.field_package.project import write_field_project
from huijiao_plugin.core.patches.store import (
    PatchStore,
    now_iso,
)
from huijiao_plugin.toolbelt.i18n import tr


@_field_package_errors()
def export_field_package(
    store: PatchStore,
    folder: str | Path,
    patch_uuids: list[str],
    context_layers: list[QgsVectorLayer] | None = None,
    name: str = "",
    buffer_m: float = 200.0,
    aoi: QgsGeometry | None = None,
    basemap: QgsRasterLayer | None = None,
    user: str = "",
    zip_package: bool = False,
    feedback: QgsFeedback | None = None,
) -> ExportResult:
    """Write a field package of ``patch_uuids`` into ``folder`` (created; must be empty or new)."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FieldPackageError(tr("The package folder is not empty: {path}").format(path=str(folder)))
    if not patch_uuids:
        raise FieldPackageError(tr("Select at least one change patch for the field package."))
    rows = []
    for patch_uuid in patch_uuids:
        row = store.get(patch_uuid)
        if row is None:
            raise FieldPackageError(tr("No change patch with id {uuid}").format(uuid=patch_uuid))
        rows.append(row)
    rows.sort(key=lambda r: r["number"] or "")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PHOTO_DIR).mkdir(exist_ok=True)
    package_id = str(uuidlib.uuid4())
    name = _safe_name(name or f"waiye_{rows[0]['county_code']}_{dt.date.today():%Y%m%d}")
    gpkg = folder / f"{name}.gpkg"
    srs = _srs_of(store.crs)

    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(gpkg))
    try:
        patch_layer = _create_table(ds, schema.PATCH_LAYER, schema.PATCH_FIELDS, srs, ogr.wkbMultiPolygon)
        defn = patch_layer.GetLayerDefn()
        ds.StartTransaction()
        for row in rows:
            feature = ogr.Feature(defn)
            for spec in schema.PATCH_FIELDS:
                if row.get(spec.name) is not None:
                    feature.SetField(spec.name, row[spec.name])
            feature.SetGeometry(ogr.CreateGeometryFromWkb(bytes(row["geometry"].asWkb())))
            patch_layer.CreateFeature(feature)
        ds.CommitTransaction()
        _create_table(ds, PHOTOS_LAYER, PHOTO_FIELDS, srs, ogr.wkbPoint)
        meta = _create_table(ds, PACKAGE_META, KV_FIELDS)
        base = _create_table(ds, PACKAGE_BASE, BASE_FIELDS)
        ds.StartTransaction()
        for key, value in (
            ("package_id", package_id),
            ("created_at", now_iso()),
            ("created_by", user),
            ("store_path", str(store.path)),
            ("store_county", store.meta("county_code")),
            ("patch_count", str(len(rows))),
            ("schema_version", schema.SCHEMA_VERSION),
        ):
            feature = ogr.Feature(meta.GetLayerDefn())
            feature.SetField("key", key)
            feature.SetField("value", value)
            meta.CreateFeature(feature)
        for row in rows:
            feature = ogr.Feature(base.GetLayerDefn())
            feature.SetField("patch_uuid", row["uuid"])
            feature.SetField(
                "values_json", json.dumps(editable_values(row), ensure_ascii=False, sort_keys=True)
            )
            base.CreateFeature(feature)
        ds.CommitTransaction()
    finally:
        ds = None

    # the desk remembers what went out (base of the conflict check)
    with store.transaction() as sds:
        for row in rows:
            store.insert_row(
                sds,
                schema.SYNC_TABLE,
                {
                    "package_id": package_id,
                    "patch_uuid": row["uuid"],
                    "values_json": json.dumps(editable_values(row), ensure_ascii=False, sort_keys=True),
                },
            )

    # context layers clipped to the area of interest
    if aoi is None:
        aoi = QgsGeometry.unaryUnion([r["geometry"] for r in rows]).buffer(buffer_m, 8)
    written: list[str] = []
    used_names = {schema.PATCH_LAYER, PHOTOS_LAYER, PACKAGE_META, PACKAGE_BASE}
    for n, layer in enumerate(context_layers or []):
        if feedback is not None:
            if feedback.isCanceled():
                break
            feedback.setProgress(20.0 + 50.0 * n / max(len(context_layers or []), 1))
        layer_name = _safe_name(layer.name())
        while layer_name in used_names:
            layer_name += "_1"
        used_names.add(layer_name)
        _write_clipped(layer, gpkg, layer_name, aoi, store.crs)
        written.append(layer_name)

    basemap_path = None
    if basemap is not None:
        basemap_path = _write_mbtiles(basemap, folder / "basemap.mbtiles", aoi, store.crs)

    project = folder / f"{name}.qgs"
    write_field_project(
        project, gpkg, written, basemap_path, title=tr("Field verification {name}").format(name=name)
    )
    result = ExportResult(folder, gpkg, project, package_id, len(rows), written, basemap_path)
    if zip_package:
        archive = folder.with_suffix(".zip")
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(folder.rglob("*")):
                zf.write(path, path.relative_to(folder.parent).as_posix())
    return result


def _write_clipped(
    layer: QgsVectorLayer, gpkg: Path, layer_name: str, aoi: QgsGeometry, crs: QgsCoordinateReferenceSystem
) -> None:
    context = QgsProject.instance().transformContext()
    to_store = QgsCoordinateTransform(layer.crs(), crs, context) if layer.crs() != crs else None
    aoi_in_layer = QgsGeometry(aoi)
    if to_store is not None:
        aoi_in_layer.transform(QgsCoordinateTransform(crs, layer.crs(), context))
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = layer_name
    options.actionOnExistingFile = QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteLayer
    fields = QgsFields()
    for f in layer.fields():
        if f.name().lower() != "fid":
            fields.append(f)
    writer = QgsVectorFileWriter.create(
        str(gpkg), fields, QgsWkbTypes.multiType(layer.wkbType()), crs, context, options
    )
    if writer.hasError() != QgsVectorFileWriter.WriterError.NoError:
        raise FieldPackageError(writer.errorMessage())
    engine = QgsGeometry.createGeometryEngine(aoi_in_layer.constGet())
    engine.prepareGeometry()
    for feature in layer.getFeatures(QgsFeatureRequest().setFilterRect(aoi_in_layer.boundingBox())):
        geom = feature.geometry()
        if geom.isNull() or not engine.intersects(geom.constGet()):
            continue
        clipped = geom if engine.contains(geom.constGet()) else geom.intersection(aoi_in_layer)
        if clipped.isEmpty():
            continue
        if QgsWkbTypes.geometryType(clipped.wkbType()) != QgsWkbTypes.geometryType(layer.wkbType()):
            parts = [g for g in clipped.asGeometryCollection() if g.type() == layer.geometryType()]
            if not parts:
                continue
            clipped = QgsGeometry.collectGeometry(parts)
        clipped.convertToMultiType()
        if to_store is not None:
            clipped.transform(to_store)
        out = QgsFeature(fields)
        out.setAttributes([feature[f.name()] for f in fields])
        out.setGeometry(clipped)
        writer.addFeature(out)
    del writer


def _write_mbtiles(
    raster: QgsRasterLayer, path: Path, aoi: QgsGeometry, crs: QgsCoordinateReferenceSystem
) -> Path:
    """A web-mercator MBTiles of ``raster`` (a file-based raster) over the area of interest (GDAL)."""
    rect = aoi.boundingBox()
    transform = QgsCoordinateTransform(crs, QgsCoordinateReferenceSystem("EPSG:3857"), QgsProject.instance())
    r3857 = transform.transformBoundingBox(rect)
    with tempfile.TemporaryDirectory() as tmp:
        warped = str(Path(tmp) / "warped.tif")
        gdal.Warp(
            warped,
            raster.source(),
            dstSRS="EPSG:3857",
            outputBounds=(r3857.xMinimum(), r3857.yMinimum(), r3857.xMaximum(), r3857.yMaximum()),
        )
        gdal.Translate(str(path), warped, format="MBTILES")
    return path
