"""外业核查包 import: match by UUID, apply the crew's changes with history, keep conflicts."""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osgeo import ogr
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProject,
)

from huijiao_plugin.core.patches import schema, workflow
from huijiao_plugin.core.patches.field_package.common import (
    BASE_FIELDS,
    COMPARED_KEYS,
    GEOMETRY_KEY,
    GEOMETRY_WKT,
    KV_FIELDS,
    PACKAGE_BASE,
    PACKAGE_META,
    PHOTO_FIELDS,
    PHOTOS_LAYER,
    AlreadyImportedError,
    FieldPackageError,
    _field_package_errors,
    editable_values,
    field_effective,
)
from huijiao_plugin.core.patches.store import (
    PatchStore,
    PatchStoreError,
    feature_dict,
    now_iso,
    ogr_exceptions,
    sql_literal,
)
from huijiao_plugin.toolbelt.i18n import tr

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
