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

from huijiao_plugin.core.patches.field_package.common import (
    BASE_FIELDS,
    COMPARED_KEYS,
    DESK_EDITABLE,
    GEOMETRY_KEY,
    GEOMETRY_WKT,
    KV_FIELDS,
    PACKAGE_BASE,
    PACKAGE_META,
    PHOTO_DIR,
    PHOTO_FIELDS,
    PHOTOS_LAYER,
    RELATION_ID,
    AlreadyImportedError,
    ExportResult,
    FieldPackageError,
    editable_values,
    field_effective,
)
from huijiao_plugin.core.patches.field_package.conflicts import (
    RESOLVED_DESK,
    RESOLVED_FIELD,
    open_conflicts,
    resolve_conflict,
)
from huijiao_plugin.core.patches.field_package.export import export_field_package
from huijiao_plugin.core.patches.field_package.importer import (
    ImportReport,
    import_field_package,
    package_checksum,
)
from huijiao_plugin.core.patches.field_package.project import configure_patch_layer, write_field_project

__all__ = [
    "AlreadyImportedError",
    "BASE_FIELDS",
    "COMPARED_KEYS",
    "DESK_EDITABLE",
    "ExportResult",
    "FieldPackageError",
    "GEOMETRY_KEY",
    "GEOMETRY_WKT",
    "ImportReport",
    "KV_FIELDS",
    "PACKAGE_BASE",
    "PACKAGE_META",
    "PHOTOS_LAYER",
    "PHOTO_DIR",
    "PHOTO_FIELDS",
    "RELATION_ID",
    "RESOLVED_DESK",
    "RESOLVED_FIELD",
    "configure_patch_layer",
    "editable_values",
    "export_field_package",
    "field_effective",
    "import_field_package",
    "open_conflicts",
    "package_checksum",
    "resolve_conflict",
    "write_field_project",
]
