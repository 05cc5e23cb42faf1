"""外业核查包 (field-verification package): export selected patches for a field crew and import their results.

A package is a folder (optionally zipped) with

* ``<name>.gpkg``: layer ``BGHTB`` (the selected patches, full schema), point layer ``BGHTB_PHOTOS`` (one
  row per photo: ``patch_uuid``, ``photo`` = path relative to the folder, ``taken_at``, ``direction``, ...),
  the chosen context layers clipped to the area of interest, and tables ``PACKAGE_META`` (package id, source
  store, ...) and ``PACKAGE_BASE`` (the field-editable values of every patch at export time);
* ``<name>.qgs``: a QGIS project (opens in QGIS and QField) with edit forms: value lists for status and
  result, a date widget, read-only identity fields and a photo widget on the related ``BGHTB_PHOTOS`` table;
* ``DCIM/``: the photos the crew takes; optionally ``basemap.mbtiles``.

Import matches patches by UUID, applies what the crew changed (status, result, verifier, date, notes) and
their photos, with history, refuses a package whose content was already imported (checksum), and reports
conflicts: a patch changed at the desk *and* in the field since export keeps the desk values and the field
values are kept in ``BGHTB_CONFLICTS`` for the analyst — nothing is overwritten silently, nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import tempfile
import uuid as uuidlib
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osgeo import gdal, ogr, osr
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsDefaultValue,
    QgsEditorWidgetSetup,
    QgsFeature,
    QgsFeatureRequest,
    QgsFeedback,
    QgsFields,
    QgsGeometry,
    QgsMarkerSymbol,
    QgsPalLayerSettings,
    QgsProject,
    QgsRasterLayer,
    QgsRelation,
    QgsRelationContext,
    QgsSingleSymbolRenderer,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
    QgsWkbTypes,
)

from huijiao_plugin.core.patches import schema, workflow
from huijiao_plugin.core.patches.store import (
    PatchStore,
    PatchStoreError,
    feature_dict,
    field_defn,
    now_iso,
    ogr_exceptions,
    sql_literal,
)
from huijiao_plugin.core.styles import patch_status_renderer, style_context_layer
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

PHOTOS_LAYER = "BGHTB_PHOTOS"
PACKAGE_META = "PACKAGE_META"
PACKAGE_BASE = "PACKAGE_BASE"
PHOTO_DIR = "DCIM"
RELATION_ID = "bghtb_photos"

PHOTO_FIELDS = (
    schema.FieldSpec("photo_uuid", "str", "照片标识", 36),
    schema.FieldSpec("patch_uuid", "str", "图斑唯一标识", 36),
    schema.FieldSpec("photo", "str", "照片", 254),
    schema.FieldSpec("taken_at", "datetime", "拍摄时间"),
    schema.FieldSpec("direction", "real", "方位角"),
    schema.FieldSpec("taken_by", "str", "拍摄人", 64),
    schema.FieldSpec("note", "str", "说明", 0),
)
KV_FIELDS = (schema.FieldSpec("key", "str", "键", 128), schema.FieldSpec("value", "str", "值", 0))
BASE_FIELDS = (
    schema.FieldSpec("patch_uuid", "str", "图斑唯一标识", 36),
    schema.FieldSpec("values_json", "str", "值", 0),
)


class FieldPackageError(RuntimeError):
    """A field package that cannot be written or read (message for users)."""


class AlreadyImportedError(FieldPackageError):
    """The same package content was imported before (checksum guard)."""


def _safe_name(text: str) -> str:
    return re.sub(r"[^\w\-]+", "_", text, flags=re.UNICODE).strip("_") or "layer"


def _norm(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


DESK_EDITABLE = ("patch_type", "reason", "notes", "reviewer")  # besides the field-editable ones
GEOMETRY_KEY = "geometry_key"  # hash of the geometry: a reshaped patch counts as a field change
GEOMETRY_WKT = "geometry_wkt"  # kept in the conflict table so a field geometry is never lost
COMPARED_KEYS = (*schema.FIELD_EDITABLE, GEOMETRY_KEY)


def editable_values(row: dict) -> dict[str, str | None]:
    """The field-editable values of a patch row, normalized for comparison (codes, not labels)."""
    values = {name: _norm(row.get(name)) for name in schema.FIELD_EDITABLE}
    try:
        values["status"] = workflow.normalize_status(values["status"])
    except workflow.WorkflowError:
        pass
    try:
        values["result"] = workflow.normalize_result(values["result"])
    except workflow.WorkflowError:
        pass
    if values.get("verify_date"):
        values["verify_date"] = str(values["verify_date"]).replace("/", "-")[:10]
    geometry = row.get("geometry")
    if geometry is not None and not geometry.isEmpty():
        values[GEOMETRY_KEY] = hashlib.sha1(geometry.asWkt(3).encode()).hexdigest()
    return values


def field_effective(values: dict[str, str | None]) -> dict[str, str | None]:
    """What the field values mean for the workflow: a result recorded on a patch still 待核查/核查中 makes it
    已核查 (the crew decides the result, the status follows)."""
    values = dict(values)
    if values.get("result") and values.get("status") in (
        None,
        workflow.STATUS_PENDING,
        workflow.STATUS_IN_PROGRESS,
    ):
        values["status"] = workflow.STATUS_VERIFIED
    return values


# ================================================================================================ export


@dataclass
class ExportResult:
    folder: Path
    gpkg: Path
    project: Path
    package_id: str
    patch_count: int
    context_layers: list[str] = field(default_factory=list)
    basemap: Path | None = None


def _create_table(
    ds: ogr.DataSource,
    name: str,
    specs: tuple,
    srs: osr.SpatialReference | None = None,
    geom_type: int = ogr.wkbNone,
) -> ogr.Layer:
    layer = ds.CreateLayer(
        name, srs, geom_type, options=["FID=fid"] + (["GEOMETRY_NAME=geom"] if srs else [])
    )
    for spec in specs:
        layer.CreateField(field_defn(spec))
    return layer


@contextmanager
def _field_package_errors() -> Iterator[None]:
    """GDAL errors as exceptions inside the block; they and PatchStoreError leave it as FieldPackageError.

    Also a decorator (``ContextDecorator``): the whole function runs inside the block."""
    with ogr_exceptions():
        try:
            yield
        except FieldPackageError:
            raise
        except RuntimeError as exc:  # GDAL errors and PatchStoreError
            raise FieldPackageError(str(exc)) from exc


def _srs_of(crs: QgsCoordinateReferenceSystem) -> osr.SpatialReference:
    srs = osr.SpatialReference()
    if crs.authid().upper().startswith("EPSG:"):
        srs.ImportFromEPSG(int(crs.authid().split(":")[1]))
    else:
        srs.ImportFromWkt(crs.toWkt())
    return srs


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


# ------------------------------------------------------------------------------------------------ project


def _value_map(labels: dict[str, str]) -> QgsEditorWidgetSetup:
    return QgsEditorWidgetSetup("ValueMap", {"map": [{label: code} for code, label in labels.items()]})


def configure_patch_layer(patches: QgsVectorLayer, desk: bool = True) -> None:
    """Style, labels and edit form of a BGHTB layer: Chinese aliases, value lists for type/status/result, a
    date widget, technical fields hidden and derived/identity fields read-only. ``desk=False`` (field package)
    also makes type, notes and review fields read-only: the crew edits only the field-editable fields. On the
    desk, ``updated_at``/``updated_by``/``edit_source`` are filled on every edit, so the history triggers know
    who changed what."""
    patches.setRenderer(patch_status_renderer())
    label = QgsPalLayerSettings()
    label.fieldName = "number"
    label.enabled = True
    patches.setLabeling(QgsVectorLayerSimpleLabeling(label))
    patches.setLabelsEnabled(True)

    form = patches.editFormConfig()
    for spec in schema.PATCH_FIELDS:
        field_index = patches.fields().indexOf(spec.name)
        patches.setFieldAlias(field_index, spec.alias)
        if spec.name == "status":
            patches.setEditorWidgetSetup(field_index, _value_map(workflow.STATUSES))
        elif spec.name == "result":
            patches.setEditorWidgetSetup(field_index, _value_map(workflow.RESULTS))
        elif spec.name == "patch_type":
            patches.setEditorWidgetSetup(field_index, _value_map(schema.PATCH_TYPES))
        elif spec.name == "verify_date":
            patches.setEditorWidgetSetup(
                field_index,
                QgsEditorWidgetSetup(
                    "DateTime",
                    {
                        "field_format": "yyyy-MM-dd",
                        "display_format": "yyyy-MM-dd",
                        "calendar_popup": True,
                        "allow_null": True,
                    },
                ),
            )
        elif spec.name in (
            "rule_params",
            "inputs",
            "created_by",
            "updated_by",
            "edit_source",
            "seq",
            "source_ref",
        ):
            patches.setEditorWidgetSetup(field_index, QgsEditorWidgetSetup("Hidden", {}))
        if not spec.field_editable and (not desk or spec.name not in DESK_EDITABLE):
            form.setReadOnly(field_index, True)
    form.setReadOnly(patches.fields().indexOf("fid"), True)
    patches.setEditorWidgetSetup(patches.fields().indexOf("fid"), QgsEditorWidgetSetup("Hidden", {}))
    patches.setEditFormConfig(form)
    if desk:
        fields = patches.fields()
        patches.setDefaultValueDefinition(
            fields.indexOf("updated_by"), QgsDefaultValue("@user_full_name", True)
        )
        patches.setDefaultValueDefinition(fields.indexOf("updated_at"), QgsDefaultValue("now()", True))
        patches.setDefaultValueDefinition(fields.indexOf("edit_source"), QgsDefaultValue("'desk'", True))


def write_field_project(
    project_path: Path, gpkg: Path, context_layers: list[str], basemap: Path | None, title: str = ""
) -> None:
    """The QGIS/QField project of a package (forms: value lists, date, photo widget, relation)."""
    project = QgsProject()
    project.setTitle(title)
    project.setFileName(str(project_path))
    project.writeEntryBool("Paths", "/Absolute", False)
    crs_layer = QgsVectorLayer(f"{gpkg}|layername={schema.PATCH_LAYER}", "crs", "ogr")
    project.setCrs(crs_layer.crs())
    if basemap is not None:
        project.addMapLayer(QgsRasterLayer(str(basemap), tr("Basemap"), "gdal"))
    # the first context layer ends on top; all but the bottom one are half transparent
    for n, layer_name in enumerate(reversed(context_layers)):
        layer = QgsVectorLayer(f"{gpkg}|layername={layer_name}", layer_name, "ogr")
        if layer.isValid():
            style_context_layer(layer)  # the dataset's style, Chinese name and field aliases
            layer.setReadOnly(True)
            if n > 0:
                layer.setOpacity(0.5)
            project.addMapLayer(layer)

    patches = QgsVectorLayer(f"{gpkg}|layername={schema.PATCH_LAYER}", "变化图斑", "ogr")
    photos = QgsVectorLayer(f"{gpkg}|layername={PHOTOS_LAYER}", "核查照片", "ogr")
    if not patches.isValid() or not photos.isValid():
        raise FieldPackageError(
            tr("The field package GeoPackage cannot be opened: {path}").format(path=str(gpkg))
        )
    configure_patch_layer(patches, desk=False)
    photos.setRenderer(
        QgsSingleSymbolRenderer(QgsMarkerSymbol.createSimple({"name": "triangle", "color": "0,90,255"}))
    )

    pform = photos.editFormConfig()
    for spec in PHOTO_FIELDS:
        field_index = photos.fields().indexOf(spec.name)
        photos.setFieldAlias(field_index, spec.alias)
    photos.setEditorWidgetSetup(
        photos.fields().indexOf("photo"),
        QgsEditorWidgetSetup(
            "ExternalResource",
            {
                "DocumentViewer": 1,
                "DocumentViewerHeight": 0,
                "DocumentViewerWidth": 0,
                "FileWidget": True,
                "FileWidgetButton": True,
                "FileWidgetFilter": "",
                "RelativeStorage": 1,
                "StorageMode": 0,
                "DefaultRoot": PHOTO_DIR,
            },
        ),
    )
    photos.setEditorWidgetSetup(
        photos.fields().indexOf("taken_at"),
        QgsEditorWidgetSetup(
            "DateTime",
            {
                "field_format": "yyyy-MM-ddTHH:mm:ss",
                "display_format": "yyyy-MM-dd HH:mm:ss",
                "calendar_popup": True,
                "allow_null": True,
            },
        ),
    )
    photos.setDefaultValueDefinition(
        photos.fields().indexOf("photo_uuid"), QgsDefaultValue("uuid('WithoutBraces')")
    )
    photos.setDefaultValueDefinition(photos.fields().indexOf("taken_at"), QgsDefaultValue("now()"))
    photos.setDefaultValueDefinition(
        photos.fields().indexOf("photo"),
        QgsDefaultValue("'" + PHOTO_DIR + "/' || format_date(now(), 'yyyyMMdd_HHmmss') || '.jpg'"),
    )
    pform.setReadOnly(photos.fields().indexOf("patch_uuid"), True)
    photos.setEditFormConfig(pform)

    project.addMapLayer(photos)
    project.addMapLayer(patches)

    relation = QgsRelation(QgsRelationContext(project))
    relation.setId(RELATION_ID)
    relation.setName("照片")
    relation.setReferencingLayer(photos.id())
    relation.setReferencedLayer(patches.id())
    relation.addFieldPair("patch_uuid", "uuid")
    relation.setStrength(QgsRelation.RelationStrength.Association)
    if relation.isValid():
        project.relationManager().addRelation(relation)
        form = patches.editFormConfig()
        form.setWidgetConfig(RELATION_ID, {"nm-rel": None, "show-unlinked": False})
        patches.setEditFormConfig(form)
    else:
        log.warning("photo relation of %s is invalid", project_path)
    photos.setEditorWidgetSetup(
        photos.fields().indexOf("patch_uuid"),
        QgsEditorWidgetSetup(
            "RelationReference",
            {"Relation": RELATION_ID, "AllowNULL": False, "ReadOnlyPermits": True, "ShowForm": False},
        ),
    )
    if not project.write():
        raise FieldPackageError(tr("Cannot write the project {path}").format(path=str(project_path)))


# ================================================================================================ import


@dataclass
class ImportReport:
    package_id: str = ""
    checksum: str = ""
    applied: list[dict] = field(default_factory=list)  # uuid, number, changes {field: [old, new]}
    unchanged: int = 0
    conflicts: list[dict] = field(default_factory=list)  # uuid, number, desk, field, base, reason
    rejected: list[dict] = field(default_factory=list)  # uuid, number, reason, field values
    photos_added: int = 0
    photos_missing: list[str] = field(default_factory=list)
    new_patches: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "package_id": self.package_id,
            "checksum": self.checksum,
            "applied": self.applied,
            "unchanged": self.unchanged,
            "conflicts": self.conflicts,
            "rejected": self.rejected,
            "photos_added": self.photos_added,
            "photos_missing": self.photos_missing,
            "new_patches": self.new_patches,
        }

    def summary(self) -> str:
        return tr(
            "{applied} patches updated, {unchanged} unchanged, {conflicts} conflicts, {rejected} refused, "
            "{photos} photos added, {missing} photos missing, {new} new patches"
        ).format(
            applied=len(self.applied),
            unchanged=self.unchanged,
            conflicts=len(self.conflicts),
            rejected=len(self.rejected),
            photos=self.photos_added,
            missing=len(self.photos_missing),
            new=len(self.new_patches),
        )


def _locate(package: Path, workdir: Path) -> tuple[Path, Path]:
    """(folder, gpkg) of a package given as folder, .zip or .gpkg."""
    if package.is_file() and package.suffix.lower() == ".zip":
        with zipfile.ZipFile(package) as zf:
            for member in zf.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise FieldPackageError(tr("Unsafe path in package: {name}").format(name=member))
            zf.extractall(workdir)
        package = workdir
    if package.is_file():
        return package.parent, package
    if package.is_dir():
        for gpkg in sorted(package.rglob("*.gpkg")):
            try:
                ds = ogr.Open(str(gpkg))
            except RuntimeError:
                continue
            ok = ds is not None and ds.GetLayerByName(PACKAGE_META) is not None
            ds = None
            if ok:
                return gpkg.parent, gpkg
    raise FieldPackageError(tr("No field package GeoPackage found in {path}").format(path=str(package)))


def _read_layer(ds: ogr.DataSource, name: str, specs: tuple, geometry: bool = False) -> list[dict]:
    layer = ds.GetLayerByName(name)
    if layer is None:
        return []
    return [feature_dict(f, specs, with_geometry=geometry) for f in layer]


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_checksum(folder: Path, gpkg: Path) -> str:
    """Checksum of what an import would apply: package id, the field-editable values and geometry of every
    patch, the photo rows and the photo files (independent of SQLite page layout)."""
    digest = hashlib.sha256()
    with ogr_exceptions():
        return _checksum(digest, folder, gpkg)


def _checksum(digest: Any, folder: Path, gpkg: Path) -> str:
    ds = ogr.Open(str(gpkg))
    if ds is None:
        raise FieldPackageError(tr("Cannot open {path}").format(path=str(gpkg)))
    try:
        meta = {r["key"]: r["value"] for r in _read_layer(ds, PACKAGE_META, KV_FIELDS)}
        digest.update((meta.get("package_id") or "").encode())
        rows = _read_layer(ds, schema.PATCH_LAYER, schema.PATCH_FIELDS, geometry=True)
        for row in sorted(rows, key=lambda r: (r["uuid"] or "", r["fid"])):
            values = {k: row.get(k) for k in ("uuid", *schema.FIELD_EDITABLE)}
            digest.update(json.dumps(values, sort_keys=True, ensure_ascii=False, default=str).encode())
            if row["geometry"] is not None:
                digest.update(bytes(row["geometry"].asWkb()))
        photos = _read_layer(ds, PHOTOS_LAYER, PHOTO_FIELDS)
        for row in sorted(photos, key=lambda r: (r["photo_uuid"] or "", r["photo"] or "", r["fid"])):
            digest.update(
                json.dumps({k: v for k, v in row.items() if k != "fid"}, sort_keys=True, default=str).encode()
            )
            if row["photo"]:
                path = folder / row["photo"]
                if path.is_file():
                    digest.update(_file_sha256(path).encode())
    finally:
        ds = None
    return digest.hexdigest()


def import_field_package(
    store: PatchStore, package: str | Path, user: str = "", report_path: str | Path | None = None
) -> ImportReport:
    """Apply a returned field package to ``store`` (see module doc). Raises AlreadyImportedError when the same
    content was imported before. Writes the report as JSON to ``report_path`` when given."""
    package = Path(package)
    if not package.exists():
        raise FieldPackageError(tr("Field package not found: {path}").format(path=str(package)))
    with tempfile.TemporaryDirectory() as tmp, _field_package_errors():
        folder, gpkg = _locate(package, Path(tmp))
        report = _import(store, folder, gpkg, user)
    if report_path:
        Path(report_path).write_text(
            json.dumps(report.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8"
        )
    return report


def _import(store: PatchStore, folder: Path, gpkg: Path, user: str) -> ImportReport:
    checksum = package_checksum(folder, gpkg)
    ds = ogr.Open(str(gpkg))
    try:
        meta = {r["key"]: r["value"] for r in _read_layer(ds, PACKAGE_META, KV_FIELDS)}
        package_bases = {
            r["patch_uuid"]: json.loads(r["values_json"]) for r in _read_layer(ds, PACKAGE_BASE, BASE_FIELDS)
        }
        rows = _read_layer(ds, schema.PATCH_LAYER, schema.PATCH_FIELDS, geometry=True)
        photos = _read_layer(ds, PHOTOS_LAYER, PHOTO_FIELDS, geometry=True)
        photo_srs = (
            ds.GetLayerByName(PHOTOS_LAYER).GetSpatialRef() if ds.GetLayerByName(PHOTOS_LAYER) else None
        )
    finally:
        ds = None
    package_id = meta.get("package_id") or ""
    if not package_id:
        raise FieldPackageError(tr("{path} is not a field package (no package id).").format(path=str(gpkg)))
    report = ImportReport(package_id=package_id, checksum=checksum)
    previous = store.table_rows(schema.IMPORTS_TABLE, f"checksum = {sql_literal(checksum)}")
    if previous:
        raise AlreadyImportedError(
            tr("This field package was already imported on {when} by {who}; nothing was changed.").format(
                when=previous[0]["imported_at"], who=previous[0]["imported_by"] or "?"
            )
        )
    syncs = {
        r["patch_uuid"]: (r["fid"], json.loads(r["values_json"]))
        for r in store.table_rows(schema.SYNC_TABLE, f"package_id = {sql_literal(package_id)}")
    }
    stamp = now_iso()
    new_rows = []
    with store.transaction() as sds:
        for row in rows:
            patch_uuid = row.get("uuid")
            if not patch_uuid or (patch_uuid not in package_bases and store.get(patch_uuid) is None):
                new_rows.append(row)
                continue
            desk = store._get_in(sds, patch_uuid, with_geometry=True)  # noqa: SLF001
            field_values = field_effective(editable_values(row))
            base = syncs[patch_uuid][1] if patch_uuid in syncs else package_bases.get(patch_uuid, {})
            if desk is None:
                report.conflicts.append(
                    {
                        "uuid": patch_uuid,
                        "number": row.get("number"),
                        "reason": tr("patch deleted at the desk"),
                        "desk": None,
                        "field": field_values,
                        "base": base,
                    }
                )
                _save_conflict(store, sds, package_id, patch_uuid, stamp, None, _with_wkt(field_values, row))
                continue
            desk_values = editable_values(desk)
            compared = [k for k in COMPARED_KEYS if k != GEOMETRY_KEY or GEOMETRY_KEY in base]
            field_changed = {k for k in compared if field_values.get(k) != base.get(k)}
            desk_changed = {k for k in compared if desk_values.get(k) != base.get(k)}
            if not field_changed or all(field_values.get(k) == desk_values.get(k) for k in field_changed):
                report.unchanged += 1
                _save_sync(store, sds, syncs, package_id, patch_uuid, field_values)
                continue
            if desk_changed:
                report.conflicts.append(
                    {
                        "uuid": patch_uuid,
                        "number": desk.get("number"),
                        "reason": tr("changed at the desk and in the field since export"),
                        "desk": desk_values,
                        "field": field_values,
                        "base": base,
                        "desk_fields": sorted(desk_changed),
                        "field_fields": sorted(field_changed),
                    }
                )
                _save_conflict(
                    store, sds, package_id, patch_uuid, stamp, desk_values, _with_wkt(field_values, row)
                )
                continue
            changes: dict[str, Any] = {k: field_values.get(k) for k in field_changed if k != GEOMETRY_KEY}
            if GEOMETRY_KEY in field_changed:
                changes["geometry"] = row["geometry"]
            try:
                status = workflow.normalize_status(field_values.get("status"))
                result = workflow.normalize_result(field_values.get("result"))
                if result and status in (None, workflow.STATUS_PENDING, workflow.STATUS_IN_PROGRESS):
                    changes["status"] = workflow.STATUS_VERIFIED
                changes["result"] = result
                if "status" in changes:
                    workflow.check_transition(desk.get("status"), changes["status"] or "", result)
                store._update(  # noqa: SLF001
                    sds, desk, changes, field_values.get("verifier") or user, schema.EDIT_FIELD, True
                )
            except (workflow.WorkflowError, PatchStoreError) as exc:
                report.rejected.append(
                    {
                        "uuid": patch_uuid,
                        "number": desk.get("number"),
                        "reason": str(exc),
                        "field": field_values,
                    }
                )
                _save_conflict(
                    store, sds, package_id, patch_uuid, stamp, desk_values, _with_wkt(field_values, row)
                )
                continue
            report.applied.append(
                {
                    "uuid": patch_uuid,
                    "number": desk.get("number"),
                    "changes": {
                        k: [desk_values.get(k), changes.get(k)]
                        for k in changes
                        if k != "geometry" and desk_values.get(k) != changes.get(k)
                    }
                    | ({"geometry": ["", "changed"]} if "geometry" in changes else {}),
                }
            )
            _save_sync(store, sds, syncs, package_id, patch_uuid, field_values)

        # photos
        to_geo = None
        if photo_srs is not None:
            photo_crs = QgsCoordinateReferenceSystem.fromWkt(photo_srs.ExportToWkt())
            to_geo = QgsCoordinateTransform(
                photo_crs, QgsCoordinateReferenceSystem("EPSG:4490"), QgsProject.instance()
            )
        known = {r["uuid"] for r in rows if r.get("uuid")}
        for photo in photos:
            rel = photo.get("photo")
            if not rel or photo.get("patch_uuid") not in known:
                continue
            path = folder / rel
            if not path.is_file():
                report.photos_missing.append(rel)
                continue
            lon = lat = None
            if photo.get("geometry") is not None and to_geo is not None and not photo["geometry"].isEmpty():
                point = to_geo.transform(photo["geometry"].asPoint())
                lon, lat = point.x(), point.y()
            added = store.add_attachment(
                photo["patch_uuid"],
                path,
                taken_at=photo.get("taken_at") or "",
                lon=lon,
                lat=lat,
                direction=photo.get("direction"),
                taken_by=photo.get("taken_by") or "",
                note=photo.get("note") or "",
                ds=sds,
            )
            if added is not None:
                report.photos_added += 1

        store.insert_row(
            sds,
            schema.IMPORTS_TABLE,
            {
                "package_id": package_id,
                "checksum": checksum,
                "imported_at": stamp,
                "imported_by": user,
                "summary": json.dumps(
                    {
                        "applied": len(report.applied),
                        "conflicts": len(report.conflicts),
                        "rejected": len(report.rejected),
                        "photos": report.photos_added,
                    }
                ),
            },
        )
    if new_rows:
        from huijiao_plugin.core.patches.store import NewPatch

        report.new_patches = store.add_patches(
            [
                NewPatch(
                    geometry=r["geometry"],
                    patch_type=schema.TYPE_MANUAL,
                    source="field",
                    notes=r.get("field_notes") or r.get("notes") or "",
                    attributes={"verifier": r.get("verifier"), "field_notes": r.get("field_notes")},
                )
                for r in new_rows
                if r.get("geometry") is not None
            ],
            user=user,
            edit_source=schema.EDIT_FIELD,
        )
    return report


def _with_wkt(values: dict, row: dict) -> dict:
    geometry = row.get("geometry")
    if geometry is None or geometry.isEmpty():
        return values
    return dict(values, **{GEOMETRY_WKT: geometry.asWkt()})


def _save_sync(
    store: PatchStore, ds: ogr.DataSource, syncs: dict, package_id: str, patch_uuid: str, values: dict
) -> None:
    text = json.dumps(values, ensure_ascii=False, sort_keys=True)
    if patch_uuid in syncs:
        ds.ExecuteSQL(
            f'UPDATE "{schema.SYNC_TABLE}" SET values_json = {sql_literal(text)} '
            f"WHERE fid = {int(syncs[patch_uuid][0])}"
        )
    else:
        store.insert_row(
            ds, schema.SYNC_TABLE, {"package_id": package_id, "patch_uuid": patch_uuid, "values_json": text}
        )


def _save_conflict(
    store: PatchStore,
    ds: ogr.DataSource,
    package_id: str,
    patch_uuid: str,
    stamp: str,
    desk: dict | None,
    field_values: dict,
) -> None:
    """Record a conflict; an open conflict of the same package and patch is updated, not duplicated."""
    values = {
        "package_id": package_id,
        "patch_uuid": patch_uuid,
        "detected_at": stamp,
        "desk_json": json.dumps(desk, ensure_ascii=False, sort_keys=True) if desk is not None else None,
        "field_json": json.dumps(field_values, ensure_ascii=False, sort_keys=True),
        "resolved": 0,
    }
    where = (
        f"package_id = {sql_literal(package_id)} AND patch_uuid = {sql_literal(patch_uuid)} "
        "AND (resolved = 0 OR resolved IS NULL)"
    )
    result = ds.ExecuteSQL(f'SELECT count(*) FROM "{schema.CONFLICTS_TABLE}" WHERE {where}')
    existing = result.GetNextFeature().GetField(0)
    ds.ReleaseResultSet(result)
    if existing:
        assignments = ", ".join(f'"{k}" = {sql_literal(v)}' for k, v in values.items())
        ds.ExecuteSQL(f'UPDATE "{schema.CONFLICTS_TABLE}" SET {assignments} WHERE {where}')
    else:
        store.insert_row(ds, schema.CONFLICTS_TABLE, values)


# ================================================================================================ conflicts

RESOLVED_FIELD = 1  # the field values were applied
RESOLVED_DESK = 2  # the desk values were kept


def open_conflicts(store: PatchStore) -> list[dict]:
    """Unresolved conflicts (and refused field changes) with the patch number and parsed values."""
    rows = []
    for row in store.table_rows(schema.CONFLICTS_TABLE, "resolved = 0 OR resolved IS NULL"):
        patch = store.get(row["patch_uuid"])
        rows.append(
            dict(
                row,
                number=patch["number"] if patch else None,
                desk=json.loads(row["desk_json"]) if row["desk_json"] else None,
                field=json.loads(row["field_json"]) if row["field_json"] else {},
            )
        )
    return rows


def resolve_conflict(store: PatchStore, conflict_fid: int, take_field: bool, user: str = "") -> dict:
    """Resolve one conflict: apply the field values (workflow-checked, recorded in the history) or keep the
    desk values. Either way the field values become the package's last exchanged values, so importing the
    same package again does not raise the conflict again. Returns the patch."""
    conflicts = [c for c in open_conflicts(store) if c["fid"] == conflict_fid]
    if not conflicts:
        raise FieldPackageError(tr("No open conflict with id {id}").format(id=conflict_fid))
    conflict = conflicts[0]
    field_values = field_effective(conflict["field"])
    where = "package_id = {} AND patch_uuid = {}".format(
        sql_literal(conflict["package_id"]), sql_literal(conflict["patch_uuid"])
    )
    syncs = {r["patch_uuid"]: (r["fid"], None) for r in store.table_rows(schema.SYNC_TABLE, where)}
    with ogr_exceptions(), store.transaction() as ds:
        desk = store._get_in(ds, conflict["patch_uuid"], with_geometry=True)  # noqa: SLF001
        if desk is None:
            raise FieldPackageError(tr("No change patch with id {uuid}").format(uuid=conflict["patch_uuid"]))
        if take_field:
            desk_values = editable_values(desk)
            changes: dict[str, Any] = {
                k: field_values.get(k)
                for k in schema.FIELD_EDITABLE
                if field_values.get(k) != desk_values.get(k)
            }
            result = workflow.normalize_result(field_values.get("result"))
            status = workflow.normalize_status(field_values.get("status"))
            if result and status in (None, workflow.STATUS_PENDING, workflow.STATUS_IN_PROGRESS):
                changes["status"] = workflow.STATUS_VERIFIED
            if field_values.get(GEOMETRY_WKT) and field_values.get(GEOMETRY_KEY) != desk_values.get(
                GEOMETRY_KEY
            ):
                changes["geometry"] = QgsGeometry.fromWkt(field_values[GEOMETRY_WKT])
            if changes:
                store._update(ds, desk, changes, user, schema.EDIT_FIELD, True)  # noqa: SLF001
        sync_values = {k: v for k, v in field_values.items() if k != GEOMETRY_WKT}
        _save_sync(store, ds, syncs, conflict["package_id"], conflict["patch_uuid"], sync_values)
        ds.ExecuteSQL(
            f'UPDATE "{schema.CONFLICTS_TABLE}" SET resolved = '
            f"{RESOLVED_FIELD if take_field else RESOLVED_DESK} WHERE fid = {int(conflict_fid)}"
        )
    return store.get(conflict["patch_uuid"]) or {}
