"""Versions, their lists and the feed."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from exchange_server import db
from exchange_server.authz import can_read_version, require_region
from exchange_server.errors import ApiError
from exchange_server.services.common import ServiceBase, _norm, iso

# versions read per query of a feed poll, and at most per poll (the rest on the next poll, from next_cursor)
FEED_BATCH = 100
FEED_SCAN_MAX = 2000


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
        self, account, dataset_id=None, region=None, period=None, latest=False, exact=False, page=None
    ) -> list:
        """Versions the account may read, oldest first. With ``page`` = (after id, limit): one page by primary
        key, returned as [items, id to continue after or None]."""
        q = select(db.versions).order_by(db.versions.c.id)
        if page is not None and not latest:
            q = q.where(db.versions.c.id > page[0]).limit(page[1])
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
        if page is not None and not latest:
            # the page's end: where the next page starts (None: this was the last page)
            self_end = rows[-1]["id"] if len(rows) == page[1] else None
            visible = [self.version_public(r) for r in rows if self._visible(account, r)]
            return [visible, self_end]
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
        """Up to ``limit`` versions after ``cursor`` the account may read. Rows are read in primary-key order
        a batch at a time (LIMIT), at most FEED_SCAN_MAX per call, so a poll costs the same however many
        versions exist; ``next_cursor`` is the last version id looked at (or the newest id when all were)."""
        items: list[dict] = []
        scanned = 0
        with self.engine.connect() as conn:
            max_id = conn.execute(select(func.max(db.versions.c.id))).scalar() or 0
            position = cursor
            exhausted = False
            while len(items) < limit and scanned < FEED_SCAN_MAX:
                batch = min(max(limit - len(items), FEED_BATCH), FEED_SCAN_MAX - scanned)
                q = (
                    select(db.versions)
                    .where(db.versions.c.id > position, db.versions.c.id <= max_id)
                    .order_by(db.versions.c.id)
                    .limit(batch)
                )
                if account["role"] != "admin":
                    q = q.where(db.versions.c.region_code.startswith(account["region_code"]))
                rows = [dict(r) for r in conn.execute(q).mappings()]
                for r in rows:
                    scanned += 1
                    position = r["id"]
                    if self._visible(account, r):
                        items.append(self._feed_item(r))
                        if len(items) >= limit:
                            break
                if len(rows) < batch and len(items) < limit:
                    exhausted = True
                    break
        next_cursor = max(cursor, max_id) if exhausted else position
        return {"items": items, "next_cursor": next_cursor}

    def _feed_item(self, r: dict) -> dict:
        item = self.version_public(r)
        item["message_zh"] = "新的{}数据已到达（{} {}，第 {} 版）".format(
            self.catalog.name_zh(r["dataset_id"]), r["region_code"], r["period"], r["version_no"]
        )
        return item
