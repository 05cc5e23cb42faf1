"""Rows of the change-patch GeoPackage through OGR: errors as exceptions, values as SQL literals, field
definitions from the schema, features as dicts. Shared by the store, the field package and the checklist."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from osgeo import gdal, ogr, osr
from qgis.core import QgsGeometry

from huijiao_plugin.core.patches import schema


@contextmanager
def ogr_exceptions() -> Iterator[None]:
    """GDAL/OGR errors as exceptions inside the block only (QGIS and other plugins expect the default)."""
    modules = (gdal, ogr, osr)
    previous = [module.GetUseExceptions() for module in modules]
    for module in modules:
        module.UseExceptions()
    try:
        yield
    finally:
        for module, was_on in reversed(list(zip(modules, previous))):  # GDAL keeps a stack of handlers
            if not was_on:
                module.DontUseExceptions()


_OGR_TYPES = {
    "str": ogr.OFTString,
    "int": ogr.OFTInteger,
    "real": ogr.OFTReal,
    "date": ogr.OFTDate,
    "datetime": ogr.OFTDateTime,
}


class PatchStoreError(RuntimeError):
    """A problem with the patch GeoPackage (message for users)."""


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (dt.date, dt.datetime)):
        value = value.isoformat()
    return "'" + str(value).replace("'", "''") + "'"


def field_defn(spec: schema.FieldSpec) -> ogr.FieldDefn:
    defn = ogr.FieldDefn(spec.name, _OGR_TYPES[spec.kind])
    if spec.kind == "str" and spec.width:
        defn.SetWidth(spec.width)
    defn.SetAlternativeName(spec.alias)
    return defn


def _value_of(feature: ogr.Feature, index: int, kind: str) -> Any:
    if not feature.IsFieldSetAndNotNull(index):
        return None
    if kind == "int":
        return feature.GetFieldAsInteger64(index)
    if kind == "real":
        return feature.GetFieldAsDouble(index)
    if kind == "date":
        return feature.GetFieldAsString(index).replace("/", "-")[:10]
    if kind == "datetime":
        y, mo, d, h, mi, s, _tz = feature.GetFieldAsDateTime(index)
        return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:06.3f}Z"
    return feature.GetFieldAsString(index)


def feature_dict(feature: ogr.Feature, specs: Iterable[schema.FieldSpec], with_geometry: bool = True) -> dict:
    defn = feature.GetDefnRef()
    row: dict[str, Any] = {"fid": feature.GetFID()}
    for spec in specs:
        index = defn.GetFieldIndex(spec.name)
        row[spec.name] = _value_of(feature, index, spec.kind) if index >= 0 else None
    if with_geometry:
        geom = feature.GetGeometryRef()
        row["geometry"] = geometry_from_ogr(geom)
    return row


def geometry_from_ogr(geom: ogr.Geometry | None) -> QgsGeometry | None:
    if geom is None:
        return None
    result = QgsGeometry()
    result.fromWkb(bytes(geom.ExportToIsoWkb()))
    return result
