"""The change-patch store: one GeoPackage (schema in ``schema.py``), read and written with GDAL/OGR.

Every write opens the file, works inside one transaction and closes it again, so QGIS layers on the same
file (the panel, the map tool) can stay open; call ``layer.reload()`` on them afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid as uuidlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osgeo import ogr, osr
from qgis.core import QgsCoordinateReferenceSystem, QgsGeometry, QgsVectorLayer

from huijiao_plugin.core.patches import schema, workflow
from huijiao_plugin.core.patches.attachments import PatchAttachmentsMixin
from huijiao_plugin.core.patches.edits import PatchEditsMixin
from huijiao_plugin.core.patches.geometry import DerivedAttributes, RegionLookup, polygon_parts
from huijiao_plugin.core.patches.ogr_rows import (  # noqa: F401 - re-exported, imported from here
    PatchStoreError,
    feature_dict,
    field_defn,
    geometry_from_ogr,
    now_iso,
    ogr_exceptions,
    sql_literal,
)
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)


@dataclass
class NewPatch:
    """A patch to create: geometry in the store's CRS plus the attributes a source knows."""

    geometry: QgsGeometry
    patch_type: str = schema.TYPE_MANUAL
    reason: str = ""
    rule_id: str = ""
    rule_params: Any = None
    inputs: Any = None
    source: str = schema.SOURCE_MANUAL
    source_ref: str = ""
    notes: str = ""
    year: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)  # extra values (e.g. region codes typed by hand)


class PatchStore(PatchEditsMixin, PatchAttachmentsMixin):
    """Access to one patch GeoPackage. ``PatchStore.create(path, crs)`` makes a new one."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise PatchStoreError(tr("Change-patch GeoPackage not found: {path}").format(path=str(self.path)))
        with self._open(update=False) as ds:
            layer = ds.GetLayerByName(schema.PATCH_LAYER)
            if layer is None:
                raise PatchStoreError(
                    tr("{path} is not a change-patch GeoPackage (layer BGHTB missing).").format(
                        path=str(self.path)
                    )
                )
            srs = layer.GetSpatialRef()
            self.crs = (
                QgsCoordinateReferenceSystem.fromWkt(srs.ExportToWkt())
                if srs
                else QgsCoordinateReferenceSystem()
            )
            authority = srs.GetAuthorityCode(None) if srs else None
            if authority and srs.GetAuthorityName(None) == "EPSG":
                self.crs = QgsCoordinateReferenceSystem(f"EPSG:{authority}")
        self._ensure_schema()
        self._derived: DerivedAttributes | None = None

    # -- creation ----------

    @classmethod
    def create(
        cls,
        path: str | Path,
        crs: QgsCoordinateReferenceSystem | str,
        county_code: str = "",
        overwrite: bool = False,
    ) -> PatchStore:
        path = Path(path)
        if path.exists():
            if not overwrite:
                raise PatchStoreError(tr("File already exists: {path}").format(path=str(path)))
            path.unlink()
        if isinstance(crs, str):
            crs = QgsCoordinateReferenceSystem(crs)
        if not crs.isValid() or crs.isGeographic():
            raise PatchStoreError(tr("Change patches need the county's projected (Gauss-Krüger) CRS."))
        path.parent.mkdir(parents=True, exist_ok=True)
        srs = osr.SpatialReference()
        if crs.authid().upper().startswith("EPSG:"):
            srs.ImportFromEPSG(int(crs.authid().split(":")[1]))
        else:
            srs.ImportFromWkt(crs.toWkt())
        with ogr_exceptions():
            cls._create_file(path, srs, county_code)
        return cls(path)

    @classmethod
    def _create_file(cls, path: Path, srs: osr.SpatialReference, county_code: str) -> None:
        driver = ogr.GetDriverByName("GPKG")
        ds = driver.CreateDataSource(str(path))
        try:
            layer = ds.CreateLayer(
                schema.PATCH_LAYER,
                srs,
                ogr.wkbMultiPolygon,
                options=["GEOMETRY_NAME=" + schema.GEOMETRY_COLUMN, "FID=fid", "IDENTIFIER=变化图斑"],
            )
            for spec in schema.PATCH_FIELDS:
                layer.CreateField(field_defn(spec))
            for table, specs in schema.ATTRIBUTE_TABLES.items():
                tlayer = ds.CreateLayer(table, None, ogr.wkbNone, options=["FID=fid"])
                for spec in specs:
                    tlayer.CreateField(field_defn(spec))
            ds.ExecuteSQL(
                f'CREATE UNIQUE INDEX IF NOT EXISTS bghtb_uuid_idx ON "{schema.PATCH_LAYER}" (uuid)'
            )
            ds.ExecuteSQL(
                f'CREATE UNIQUE INDEX IF NOT EXISTS bghtb_number_idx ON "{schema.PATCH_LAYER}" (number)'
            )
            ds.ExecuteSQL(
                f'CREATE INDEX IF NOT EXISTS bghtb_hist_idx ON "{schema.HISTORY_TABLE}" (patch_uuid)'
            )
            ds.ExecuteSQL(f'CREATE UNIQUE INDEX IF NOT EXISTS bghtb_meta_idx ON "{schema.META_TABLE}" (key)')
            for statement in schema.history_trigger_sql():
                ds.ExecuteSQL(statement)
            for key, value in (
                ("schema_version", schema.SCHEMA_VERSION),
                ("dataset", "bghtb"),
                ("county_code", county_code),
                ("created_at", now_iso()),
            ):
                cls.insert_row(ds, schema.META_TABLE, {"key": key, "value": value})
        finally:
            ds = None

    def _ensure_schema(self) -> None:
        """Re-install the history triggers (a table rebuild by another tool may have dropped them)."""
        try:
            self._install_triggers()
        except PatchStoreError as exc:  # e.g. a read-only file: reading still works
            log.warning("history triggers of %s not checked: %s", self.path, exc)

    def _install_triggers(self) -> None:
        with self._open(update=True) as ds:
            rows = ds.ExecuteSQL(
                "SELECT count(*) FROM sqlite_master WHERE type='trigger' AND name LIKE 'bghtb_history_%'"
            )
            count = rows.GetNextFeature().GetField(0)
            ds.ReleaseResultSet(rows)
            if count != 3:
                for statement in schema.history_trigger_sql():
                    ds.ExecuteSQL(statement)

    @contextmanager
    def _open(self, update: bool = True) -> Iterator[ogr.DataSource]:
        with ogr_exceptions():
            try:
                ds = ogr.Open(str(self.path), update=1 if update else 0)
            except RuntimeError as exc:
                raise PatchStoreError(
                    tr("Cannot open {path}").format(path=str(self.path)) + f" ({exc})"
                ) from exc
            if ds is None:
                raise PatchStoreError(tr("Cannot open {path}").format(path=str(self.path)))
            try:
                yield ds
            finally:
                ds = None

    @contextmanager
    def transaction(self) -> Iterator[ogr.DataSource]:
        with self._open(update=True) as ds:
            ds.StartTransaction()
            try:
                yield ds
            except BaseException:
                ds.RollbackTransaction()
                raise
            ds.CommitTransaction()

    # -- generic table access ----------

    def query(self, sql: str) -> list[tuple]:
        with self._open(update=False) as ds:
            result = ds.ExecuteSQL(sql)
            rows: list[tuple] = []
            if result is not None:
                count = result.GetLayerDefn().GetFieldCount()
                for feature in result:
                    rows.append(tuple(feature.GetField(i) for i in range(count)))
                ds.ReleaseResultSet(result)
            return rows

    @staticmethod
    def insert_row(ds: ogr.DataSource, table: str, values: dict[str, Any]) -> None:
        columns = ", ".join(f'"{k}"' for k in values)
        literals = ", ".join(sql_literal(v) for v in values.values())
        ds.ExecuteSQL(f'INSERT INTO "{table}" ({columns}) VALUES ({literals})')

    def table_rows(self, table: str, where: str = "") -> list[dict]:
        """Rows of an attribute table (in insertion order) as dicts, ``fid`` included."""
        with self._open(update=False) as ds:
            layer = ds.GetLayerByName(table)
            if where:
                layer.SetAttributeFilter(where)
            return [feature_dict(f, schema.ATTRIBUTE_TABLES[table], with_geometry=False) for f in layer]

    def meta(self, key: str, default: str = "") -> str:
        rows = self.query(f'SELECT value FROM "{schema.META_TABLE}" WHERE key = {sql_literal(key)}')
        return rows[0][0] if rows and rows[0][0] is not None else default

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as ds:
            self._set_meta(ds, key, value)

    def _set_meta(self, ds: ogr.DataSource, key: str, value: str) -> None:
        ds.ExecuteSQL(f'DELETE FROM "{schema.META_TABLE}" WHERE key = {sql_literal(key)}')
        self.insert_row(ds, schema.META_TABLE, {"key": key, "value": value})

    # -- derived attributes ----------

    @property
    def derived(self) -> DerivedAttributes:
        if self._derived is None:
            self._derived = DerivedAttributes(self.crs)
        return self._derived

    def layer_uri(self) -> str:
        return f"{self.path}|layername={schema.PATCH_LAYER}"

    def qgs_layer(self, name: str = "") -> QgsVectorLayer:
        return QgsVectorLayer(self.layer_uri(), name or tr("Change patches"), "ogr")

    # -- numbering ----------

    def _next_sequence(self, ds: ogr.DataSource, county: str, year: int) -> int:
        key = f"seq:{county}:{year}"
        result = ds.ExecuteSQL(f'SELECT value FROM "{schema.META_TABLE}" WHERE key = {sql_literal(key)}')
        feature = result.GetNextFeature()
        last = int(feature.GetField(0)) if feature is not None and feature.GetField(0) else 0
        ds.ReleaseResultSet(result)
        result = ds.ExecuteSQL(
            f'SELECT max(seq) FROM "{schema.PATCH_LAYER}" WHERE county_code = {sql_literal(county)} '
            f"AND year = {int(year)}"
        )
        feature = result.GetNextFeature()
        existing = feature.GetField(0) if feature is not None else None
        ds.ReleaseResultSet(result)
        value = max(last, int(existing or 0)) + 1
        self._set_meta(ds, key, str(value))
        return value

    @staticmethod
    def format_number(county: str, year: int, seq: int) -> str:
        return f"{county}{year:04d}{seq:0{schema.SEQUENCE_DIGITS}d}"

    def reserve_number(self, county: str, year: int) -> tuple[str, int]:
        """Take the next number of ``county``/``year`` for a patch created outside ``add_patches`` (e.g. in a
        QGIS edit session); an undone creation leaves a gap, numbers are never given twice."""
        if not (county.isdigit() and len(county) == 6):
            raise PatchStoreError(
                tr("No 6-digit county code for a new patch: load XZQ/CJDCQ or set the county code.")
            )
        with self.transaction() as ds:
            seq = self._next_sequence(ds, county, int(year))
        return self.format_number(county, int(year), seq), seq

    def new_patch_values(
        self,
        geometry: QgsGeometry,
        regions: RegionLookup | None = None,
        county_code: str = "",
        user: str = "",
    ) -> tuple[QgsGeometry, dict[str, Any]]:
        """Valid geometry plus every attribute a new patch gets automatically (identity, number, derived
        values, region codes, status): for editors that add the feature through a QGIS layer."""
        geom = polygon_parts(geometry)
        if geom is None:
            raise PatchStoreError(tr("A change patch needs a polygon geometry."))
        values: dict[str, Any] = dict(self.derived.compute(geom))
        values.update(regions.lookup(geom) if regions else {})
        county = values.get("county_code") or county_code or self.meta("county_code")
        values["county_code"] = county
        year = dt.date.today().year
        number, seq = self.reserve_number(county, year)
        stamp = now_iso()
        values.update(
            {
                "uuid": str(uuidlib.uuid4()),
                "number": number,
                "year": year,
                "seq": seq,
                "status": workflow.STATUS_PENDING,
                "source": schema.SOURCE_MANUAL,
                "created_at": stamp,
                "created_by": user,
                "updated_at": stamp,
                "updated_by": user,
                "edit_source": schema.EDIT_DESK,
            }
        )
        return geom, values

    # -- reading ----------

    def patches(self, where: str = "", with_geometry: bool = True) -> list[dict]:
        with self._open(update=False) as ds:
            layer = ds.GetLayerByName(schema.PATCH_LAYER)
            if where:
                layer.SetAttributeFilter(where)
            return [feature_dict(f, schema.PATCH_FIELDS, with_geometry) for f in layer]

    def get(self, patch_uuid: str) -> dict | None:
        rows = self.patches(f"uuid = {sql_literal(patch_uuid)}")
        return rows[0] if rows else None

    def count(self) -> int:
        return int(self.query(f'SELECT count(*) FROM "{schema.PATCH_LAYER}"')[0][0])

    def history(self, patch_uuid: str) -> list[dict]:
        return self.table_rows(schema.HISTORY_TABLE, f"patch_uuid = {sql_literal(patch_uuid)}")

    def attachments(self, patch_uuid: str | None = None) -> list[dict]:
        where = f"patch_uuid = {sql_literal(patch_uuid)}" if patch_uuid else ""
        return self.table_rows(schema.ATTACHMENTS_TABLE, where)

    @property
    def attachments_dir(self) -> Path:
        return self.path.with_name(self.path.stem + schema.ATTACHMENTS_DIR_SUFFIX)

    # -- creating patches ----------

    def add_patches(
        self,
        patches: Iterable[NewPatch],
        user: str = "",
        regions: RegionLookup | None = None,
        county_code: str = "",
        edit_source: str = schema.EDIT_DESK,
    ) -> list[str]:
        """Create patches (UUID, number, derived attributes, status 待核查); returns their UUIDs.

        The county code of the number comes from the region codes (XZQ/CJDCQ), else ``county_code``, else the
        store's county. Geometries that are not polygons after repair are refused with PatchStoreError.
        """
        default_county = county_code or self.meta("county_code")
        created: list[str] = []
        stamp = now_iso()
        with self.transaction() as ds:
            layer = ds.GetLayerByName(schema.PATCH_LAYER)
            defn = layer.GetLayerDefn()
            for patch in patches:
                geom = polygon_parts(patch.geometry)
                if geom is None:
                    raise PatchStoreError(tr("A change patch needs a polygon geometry."))
                values: dict[str, Any] = dict(self.derived.compute(geom))
                codes = regions.lookup(geom) if regions else {}
                for key in ("county_code", "township_code", "village_code"):
                    values[key] = patch.attributes.get(key) or codes.get(key) or ""
                county = values["county_code"] or default_county
                if not (county.isdigit() and len(county) == 6):
                    raise PatchStoreError(
                        tr("No 6-digit county code for a new patch: load XZQ/CJDCQ or set the county code.")
                    )
                values["county_code"] = county
                year = int(patch.year or dt.date.today().year)
                seq = self._next_sequence(ds, county, year)
                new_uuid = str(uuidlib.uuid4())
                values.update(
                    {
                        "uuid": new_uuid,
                        "number": self.format_number(county, year, seq),
                        "year": year,
                        "seq": seq,
                        "patch_type": patch.patch_type
                        if patch.patch_type in schema.PATCH_TYPES
                        else schema.TYPE_OTHER,
                        "reason": patch.reason or None,
                        "rule_id": patch.rule_id or None,
                        "rule_params": _json_text(patch.rule_params),
                        "inputs": _json_text(patch.inputs),
                        "source": patch.source,
                        "source_ref": patch.source_ref or None,
                        "status": workflow.STATUS_PENDING,
                        "notes": patch.notes or None,
                        "created_at": stamp,
                        "created_by": user,
                        "updated_at": stamp,
                        "updated_by": user,
                        "edit_source": edit_source,
                    }
                )
                for key, value in patch.attributes.items():
                    if key in schema.FIELD_NAMES and key not in values:
                        values[key] = value
                feature = ogr.Feature(defn)
                for key, value in values.items():
                    if value is not None and key in schema.FIELD_NAMES:
                        feature.SetField(key, value)
                feature.SetGeometry(ogr.CreateGeometryFromWkb(bytes(geom.asWkb())))
                layer.CreateFeature(feature)
                created.append(new_uuid)
        return created

    # -- updating ----------

    def update(
        self,
        patch_uuid: str,
        changes: dict[str, Any],
        user: str = "",
        edit_source: str = schema.EDIT_DESK,
        check_workflow: bool = True,
    ) -> dict:
        """Change attributes (and/or ``geometry``) of one patch; history rows are written by the triggers.

        Status changes are checked against the workflow (``WorkflowError`` when refused). Identity fields
        (uuid, number, year, seq) cannot be changed. Returns the updated patch.
        """
        current = self.get(patch_uuid)
        if current is None:
            raise PatchStoreError(tr("No change patch with id {uuid}").format(uuid=patch_uuid))
        with self.transaction() as ds:
            self._update(ds, current, changes, user, edit_source, check_workflow)
        return self.get(patch_uuid) or {}

    def _update(
        self,
        ds: ogr.DataSource,
        current: dict,
        changes: dict[str, Any],
        user: str,
        edit_source: str,
        check_workflow: bool,
    ) -> None:
        changes = dict(changes)
        for frozen in ("uuid", "number", "year", "seq", "fid", "created_at", "created_by"):
            if frozen in changes and changes[frozen] != current.get(frozen):
                raise PatchStoreError(
                    tr("The identity of a patch ({field}) cannot be changed.").format(field=frozen)
                )
            changes.pop(frozen, None)
        if "result" in changes:
            changes["result"] = workflow.normalize_result(changes["result"])
        if "status" in changes:
            new_status = workflow.normalize_status(changes["status"])
            result = changes.get("result", current.get("result"))
            if check_workflow:
                new_status = workflow.check_transition(current.get("status"), new_status or "", result)
            changes["status"] = new_status
        if "patch_type" in changes and changes["patch_type"] not in schema.PATCH_TYPES:
            raise PatchStoreError(tr("Unknown patch type: {value}").format(value=changes["patch_type"]))
        geometry = changes.pop("geometry", None)
        unknown = [k for k in changes if k not in schema.FIELD_NAMES]
        if unknown:
            raise PatchStoreError(tr("Unknown patch fields: {fields}").format(fields=", ".join(unknown)))
        changes.update({"updated_at": now_iso(), "updated_by": user, "edit_source": edit_source})
        if geometry is not None:
            geom = polygon_parts(geometry)
            if geom is None:
                raise PatchStoreError(tr("A change patch needs a polygon geometry."))
            changes.update(self.derived.compute(geom))
            layer = ds.GetLayerByName(schema.PATCH_LAYER)
            feature = layer.GetFeature(current["fid"])
            for key, value in changes.items():
                if value is None:
                    feature.SetFieldNull(key)
                else:
                    feature.SetField(key, value)
            feature.SetGeometry(ogr.CreateGeometryFromWkb(bytes(geom.asWkb())))
            layer.SetFeature(feature)
            return
        assignments = ", ".join(f'"{k}" = {sql_literal(v)}' for k, v in changes.items())
        ds.ExecuteSQL(f'UPDATE "{schema.PATCH_LAYER}" SET {assignments} WHERE fid = {int(current["fid"])}')

    def _get_in(self, ds: ogr.DataSource, patch_uuid: str, with_geometry: bool = False) -> dict | None:
        layer = ds.GetLayerByName(schema.PATCH_LAYER)
        layer.SetAttributeFilter(f"uuid = {sql_literal(patch_uuid)}")
        try:
            for feature in layer:
                return feature_dict(feature, schema.PATCH_FIELDS, with_geometry=with_geometry)
            return None
        finally:
            layer.SetAttributeFilter(None)

    # -- statistics ----------

    def totals(self, where: str = "") -> dict[tuple[str, str], tuple[int, float]]:
        """(patch_type, status) → (count, Σ 亩) over the patches matching ``where``."""
        sql = f'SELECT patch_type, status, count(*), sum(area_mu) FROM "{schema.PATCH_LAYER}"'
        if where:
            sql += f" WHERE {where}"
        sql += " GROUP BY patch_type, status"
        return {(row[0] or "", row[1] or ""): (int(row[2]), float(row[3] or 0.0)) for row in self.query(sql)}


def _json_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def select_patch_uuids(store: PatchStore, ids_text: str = "", where: str = "", limit: int = 0) -> list[str]:
    """UUIDs chosen by a comma/blank separated list of numbers or UUIDs and/or an attribute filter (OGR SQL
    ``WHERE`` clause), in number order, at most ``limit`` (0 = all). Unknown ids raise PatchStoreError."""
    rows = store.patches(where, with_geometry=False) if where else store.patches(with_geometry=False)
    rows.sort(key=lambda r: r["number"] or "")
    tokens = [
        t for t in ids_text.replace("，", ",").replace(";", ",").replace(" ", ",").split(",") if t.strip()
    ]
    if tokens:
        by_key = {}
        for row in rows:
            by_key[row["uuid"]] = row
            by_key[row["number"]] = row
        missing = [t.strip() for t in tokens if t.strip() not in by_key]
        if missing:
            raise PatchStoreError(
                tr("Unknown patch numbers or ids: {ids}").format(ids=", ".join(missing[:10]))
            )
        wanted = {by_key[t.strip()]["uuid"] for t in tokens}
        rows = [r for r in rows if r["uuid"] in wanted]
    uuids = [r["uuid"] for r in rows]
    return uuids[:limit] if limit and limit > 0 else uuids
