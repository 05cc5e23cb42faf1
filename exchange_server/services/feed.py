"""Versions, their lists and the feed."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from exchange_server import db
from exchange_server.authz import can_read_version, require_region
from exchange_server.errors import ApiError
from exchange_server.services.common import ServiceBase, _norm, iso


class FeedService(ServiceBase):
    def version_public(self, row: dict) -> dict:
        return {
            "version_id": row["id"],
            "dataset_id": row["dataset_id"],
            "dataset_name_zh": self.catalog.name_zh(row["dataset_id"]),
            "region_code": row["region_code"],
            "period": row["period"],
            "version": row["version_no"],
            "department": row["department"],
            "package_sha256": row["package_sha256"],
            "size": row["size"],
            "submission_id": row["submission_id"],
            "created_at": iso(row["created_at"]),
            "download_url": "/api/v1/versions/{}/download".format(row["id"]),
        }

    def _visible(self, account: dict, row: dict) -> bool:
        return can_read_version(
            account, self.catalog, row["dataset_id"], row["department"], row["region_code"]
        )

    def list_versions(
        self, account, dataset_id=None, region=None, period=None, latest=False, exact=False
    ) -> list:
        q = select(db.versions).order_by(db.versions.c.id)
        if dataset_id:
            q = q.where(db.versions.c.dataset_id == dataset_id)
        if period:
            q = q.where(db.versions.c.period == period)
        if region:
            region = _norm(region)
            require_region(account, region)
            col = db.versions.c.region_code
            q = q.where(col == region) if exact else q.where(col.startswith(region))
        elif account["role"] != "admin":
            q = q.where(db.versions.c.region_code.startswith(account["region_code"]))
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
        rows = [r for r in rows if self._visible(account, r)]
        if latest:
            best: dict[tuple, dict] = {}
            for r in rows:
                best[(r["dataset_id"], r["region_code"], r["period"])] = r
            rows = sorted(best.values(), key=lambda r: r["id"])
        return [self.version_public(r) for r in rows]

    def get_version(self, account: dict, version_id: int) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(select(db.versions).where(db.versions.c.id == version_id)).mappings().first()
        if row is None:
            raise ApiError("NOT_FOUND")
        row = dict(row)
        if not self._visible(account, row):
            raise ApiError("FORBIDDEN_DATASET", row["dataset_id"])
        return row

    def version_manifest(self, account: dict, version_id: int) -> dict:
        row = self.get_version(account, version_id)
        with self.engine.connect() as conn:
            text = conn.execute(
                select(db.submissions.c.manifest_json).where(db.submissions.c.id == row["submission_id"])
            ).scalar_one()
        return json.loads(text)

    def feed(self, account: dict, cursor: int, limit: int) -> dict:
        with self.engine.connect() as conn:
            max_id = conn.execute(select(func.max(db.versions.c.id))).scalar() or 0
            q = (
                select(db.versions)
                .where(db.versions.c.id > cursor, db.versions.c.id <= max_id)
                .order_by(db.versions.c.id)
            )
            if account["role"] != "admin":
                q = q.where(db.versions.c.region_code.startswith(account["region_code"]))
            rows = [dict(r) for r in conn.execute(q).mappings()]
        items = []
        next_cursor = max(cursor, max_id)
        for r in rows:
            if not self._visible(account, r):
                continue
            if len(items) >= limit:
                next_cursor = items[-1]["version_id"]
                break
            item = self.version_public(r)
            item["message_zh"] = "新的{}数据已到达（{} {}，第 {} 版）".format(
                self.catalog.name_zh(r["dataset_id"]), r["region_code"], r["period"], r["version_no"]
            )
            items.append(item)
        return {"items": items, "next_cursor": next_cursor}
