"""Changes to many patches at once, kept undoable, and an editor's session written in one transaction
(mixed into :class:`~huijiao_plugin.core.patches.store.PatchStore`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from osgeo import ogr
from qgis.core import QgsGeometry

from huijiao_plugin.core.patches import schema, workflow
from huijiao_plugin.core.patches.geometry import polygon_parts
from huijiao_plugin.toolbelt.i18n import tr

UNDO_KEY = "undo:last_change"
EDIT_UNDO = "undo"


def _plain(value: Any) -> Any:
    """A field value as JSON can keep it (dates as ISO text)."""
    return value.isoformat() if hasattr(value, "isoformat") else value


class PatchEditsMixin:
    """Uses the store's ``transaction``, ``_get_in``, ``_update``, ``meta``, ``_set_meta``, ``derived``."""

    def apply_edits(
        self,
        added: Iterable[tuple[QgsGeometry, dict[str, Any]]] = (),
        changed: dict[str, dict[str, Any]] | None = None,
        deleted: Iterable[str] = (),
        user: str = "",
    ) -> None:
        """Write an editor's session in one transaction: new patches (geometry + complete values, as from
        :meth:`new_patch_values`), changes per UUID (attributes and/or ``geometry``: one UPDATE per patch, so
        the history gets the area before and after) and deletions, in this order. Nothing is written when
        one of them is refused (PatchStoreError / WorkflowError)."""
        with self.transaction() as ds:
            layer = ds.GetLayerByName(schema.PATCH_LAYER)
            for geometry, values in added:
                geom = polygon_parts(geometry)
                if geom is None:
                    raise _store().PatchStoreError(tr("A change patch needs a polygon geometry."))
                feature = ogr.Feature(layer.GetLayerDefn())
                for key, value in {**values, **self.derived.compute(geom)}.items():
                    if value is not None and key in schema.FIELD_NAMES:
                        feature.SetField(key, value)
                feature.SetGeometry(ogr.CreateGeometryFromWkb(bytes(geom.asWkb())))
                layer.CreateFeature(feature)
            for patch_uuid, changes in (changed or {}).items():
                current = self._get_in(ds, patch_uuid)
                if current is None:
                    raise _store().PatchStoreError(
                        tr("No change patch with id {uuid}").format(uuid=patch_uuid)
                    )
                self._update(ds, current, changes, user, schema.EDIT_DESK, True)
            literal = _store().sql_literal
            for patch_uuid in deleted:
                where = f"uuid = {literal(patch_uuid)}"
                # who deleted it: the delete trigger reads updated_by/edit_source of the row
                ds.ExecuteSQL(
                    f'UPDATE "{schema.PATCH_LAYER}" SET updated_by = {literal(user)}, '
                    f"edit_source = {literal(schema.EDIT_DESK)}, updated_at = {literal(_store().now_iso())} "
                    f"WHERE {where}"
                )
                ds.ExecuteSQL(f'DELETE FROM "{schema.PATCH_LAYER}" WHERE {where}')

    def set_status(
        self, patch_uuids: Iterable[str], status: str, user: str = "", result: str | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """Bulk status change: all allowed changes are applied; refused ones are returned with the reason."""
        changes: dict[str, Any] = {"status": status}
        if result is not None:
            changes["result"] = result
        return self.change_patches(patch_uuids, changes, user=user)

    def change_patches(
        self, patch_uuids: Iterable[str], changes: dict[str, Any], user: str = ""
    ) -> tuple[list[str], dict[str, str]]:
        """Apply ``changes`` (status and the fields the move needs) to every patch the workflow allows it for;
        refused ones are returned with the reason. The values before are kept as the store's last change, so
        :meth:`undo_last` can restore them (the history records the change and the undo)."""
        done: list[str] = []
        refused: dict[str, str] = {}
        before: dict[str, dict[str, Any]] = {}
        with self.transaction() as ds:
            for patch_uuid in patch_uuids:
                current = self._get_in(ds, patch_uuid)
                if current is None:
                    refused[patch_uuid] = tr("not found")
                    continue
                try:
                    self._update(ds, current, changes, user, schema.EDIT_DESK, True)
                except (workflow.WorkflowError, _store().PatchStoreError) as exc:
                    refused[patch_uuid] = str(exc)
                else:
                    done.append(patch_uuid)
                    before[patch_uuid] = {
                        k: _plain(current.get(k)) for k in changes if k in schema.FIELD_NAMES
                    }
            if done:
                self._set_meta(ds, UNDO_KEY, json.dumps({"user": user, "before": before}, ensure_ascii=False))
        return done, refused

    def can_undo(self) -> bool:
        return bool(self.meta(UNDO_KEY))

    def undo_last(self, user: str = "") -> list[str]:
        """Restore the values before the last :meth:`change_patches` (outside the workflow: a return to a
        state the patch had); returns the restored UUIDs. The history keeps the change and the undo."""
        text = self.meta(UNDO_KEY)
        if not text:
            return []
        before = json.loads(text)["before"]
        restored: list[str] = []
        with self.transaction() as ds:
            for patch_uuid, values in before.items():
                current = self._get_in(ds, patch_uuid)
                if current is None:
                    continue
                self._update(ds, current, values, user, EDIT_UNDO, False)
                restored.append(patch_uuid)
            self._set_meta(ds, UNDO_KEY, "")
        return restored


def _store() -> Any:
    """The store module, looked up when called (it imports this one)."""
    from huijiao_plugin.core.patches import store

    return store
