"""外业核查包 conflicts: list the open ones, resolve them (take the field values or keep the desk values)."""

from __future__ import annotations

import json
from typing import Any

from qgis.core import (
    QgsGeometry,
)

from huijiao_plugin.core.patches import schema, workflow
from huijiao_plugin.core.patches.field_package.common import (
    GEOMETRY_KEY,
    GEOMETRY_WKT,
    FieldPackageError,
    editable_values,
    field_effective,
)
from huijiao_plugin.core.patches.field_package.importer import _save_sync
from huijiao_plugin.core.patches.store import (
    PatchStore,
    ogr_exceptions,
    sql_literal,
)
from huijiao_plugin.toolbelt.i18n import tr

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
