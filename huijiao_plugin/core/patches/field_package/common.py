"""外业核查包: names, errors and helpers shared by export, project and import."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osgeo import ogr, osr
from qgis.core import (
    QgsCoordinateReferenceSystem,
)

from huijiao_plugin.core.patches import schema, workflow
from huijiao_plugin.core.patches.store import (
    field_defn,
    ogr_exceptions,
)

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
