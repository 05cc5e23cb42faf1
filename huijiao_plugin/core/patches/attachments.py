"""Photos and other files of a patch, copied next to the GeoPackage (mixed into
:class:`~huijiao_plugin.core.patches.store.PatchStore`)."""

from __future__ import annotations

import hashlib
import shutil
import uuid as uuidlib
from pathlib import Path
from typing import Any

from osgeo import ogr

from huijiao_plugin.core.patches import schema
from huijiao_plugin.toolbelt.i18n import tr


class PatchAttachmentsMixin:
    """Needs the store's ``attachments``, ``attachments_dir``, ``transaction`` and ``insert_row``."""

    def add_attachment(
        self,
        patch_uuid: str,
        source_file: str | Path,
        taken_at: str = "",
        lon: float | None = None,
        lat: float | None = None,
        direction: float | None = None,
        taken_by: str = "",
        note: str = "",
        kind: str = "photo",
        ds: ogr.DataSource | None = None,
    ) -> dict | None:
        """Copy a file next to the store and register it; returns the row, or None when the same file (sha256)
        is already attached to the patch."""
        source_file = Path(source_file)
        if not source_file.is_file():
            raise _store().PatchStoreError(tr("Attachment not found: {path}").format(path=str(source_file)))
        digest = hashlib.sha256(source_file.read_bytes()).hexdigest()
        for row in self.attachments(patch_uuid):
            if row["sha256"] == digest:
                return None
        target_dir = self.attachments_dir / patch_uuid
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / source_file.name
        if target.exists():
            target = target_dir / f"{digest[:8]}_{source_file.name}"
        shutil.copy2(source_file, target)
        row = {
            "attachment_uuid": str(uuidlib.uuid4()),
            "patch_uuid": patch_uuid,
            "path": target.relative_to(self.attachments_dir).as_posix(),
            "kind": kind,
            "taken_at": taken_at or None,
            "lon": lon,
            "lat": lat,
            "direction": direction,
            "taken_by": taken_by or None,
            "sha256": digest,
            "note": note or None,
        }
        if ds is not None:
            self.insert_row(ds, schema.ATTACHMENTS_TABLE, row)
        else:
            with self.transaction() as own:
                self.insert_row(own, schema.ATTACHMENTS_TABLE, row)
        return row

    def attachment_path(self, row: dict) -> Path:
        return self.attachments_dir / row["path"]


def _store() -> Any:
    """The store module, looked up when called (it imports this one)."""
    from huijiao_plugin.core.patches import store

    return store
