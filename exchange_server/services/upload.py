"""tus uploads: creation, offsets, termination and expiry (the bytes are written by api/upload_io.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from pathlib import Path

from sqlalchemy import and_, func, insert, select, update

from exchange_server import db
from exchange_server.errors import ApiError
from exchange_server.locks import named_lock, transaction_locked
from exchange_server.services.common import ServiceBase
from exchange_server.services.guard import trim_login_failures

# seconds a completed upload stays committable at least, whatever its expiry
COMPLETE_GRACE = 3600


class UploadService(ServiceBase):
    def upload_path(self, upload_id: str) -> Path:
        return self.config.uploads_dir / f"{upload_id}.part"

    def create_upload(self, account: dict, length: int, meta: dict, client_ip: str = "") -> dict:
        if length > self.config.max_upload_size:
            self.audit(
                "upload.create",
                "refused",
                account,
                "",
                {"code": "UPLOAD_TOO_LARGE", "length": length},
                client_ip,
            )
            raise ApiError("UPLOAD_TOO_LARGE", f"max {self.config.max_upload_size}")
        now = db.utcnow()
        upload_id = uuid.uuid4().hex
        # one creation per account at a time, in every worker process: the count and the quota read here
        # cannot be passed by creations running alongside
        with transaction_locked(self.engine, "uploads-of:{}".format(account["id"])) as conn:
            # every upload still held counts: in progress, and complete but not yet committed
            held = db.uploads.c.state.in_(("active", "complete"))
            open_uploads, open_bytes = conn.execute(
                select(func.count(), func.coalesce(func.sum(db.uploads.c.length), 0)).where(
                    db.uploads.c.account_id == account["id"], held, db.uploads.c.expires_at > now
                )
            ).one()
            if open_uploads >= self.config.max_concurrent_uploads:
                db.write_audit(
                    conn, "upload.create", "refused", account, "", {"code": "UPLOAD_TOO_MANY"}, client_ip
                )
                raise ApiError("UPLOAD_TOO_MANY", f"max {self.config.max_concurrent_uploads}")
            quota = self.config.account_quota_bytes
            if quota:
                stored = conn.execute(
                    select(func.coalesce(func.sum(db.versions.c.size), 0))
                    .select_from(
                        db.versions.join(db.submissions, db.submissions.c.id == db.versions.c.submission_id)
                    )
                    .where(db.submissions.c.account_id == account["id"])
                ).scalar_one()
                if int(open_bytes) + int(stored) + length > quota:
                    detail = {"code": "QUOTA_EXCEEDED", "held": int(open_bytes), "stored": int(stored)}
                    db.write_audit(conn, "upload.create", "refused", account, "", detail, client_ip)
                    raise ApiError("QUOTA_EXCEEDED", f"quota {quota} bytes")
            expires = now + dt.timedelta(seconds=self.config.upload_expiry_seconds)
            row = {
                "id": upload_id,
                "account_id": account["id"],
                "length": length,
                "offset": 0,
                "metadata": json.dumps(meta, ensure_ascii=False),
                "state": "active" if length > 0 else "complete",
                "created_at": now,
                "expires_at": expires,
                "completed_at": now if length == 0 else None,
                "sha256": hashlib.sha256(b"").hexdigest() if length == 0 else None,
            }
            conn.execute(insert(db.uploads).values(**row))
            db.write_audit(
                conn, "upload.create", "ok", account, "upload:" + upload_id, {"length": length}, client_ip
            )
        with self.upload_path(upload_id).open("wb"):
            pass
        return row

    def get_upload(self, account: dict, upload_id: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(select(db.uploads).where(db.uploads.c.id == upload_id)).mappings().first()
        if row is None or row["state"] == "terminated":
            raise ApiError("UPLOAD_NOT_FOUND")
        if row["account_id"] != account["id"] and account["role"] != "admin":
            raise ApiError("UPLOAD_NOT_FOUND")
        row = dict(row)
        if row["state"] in ("active", "expired") and db.as_utc(row["expires_at"]) <= db.utcnow():
            raise ApiError("UPLOAD_EXPIRED")
        return row

    def set_offset(
        self, upload_id: str, offset: int, complete_sha: str | None, account: dict, ip: str
    ) -> None:
        """Record an offset (and completion) of an active upload. A completed upload gets at least
        COMPLETE_GRACE seconds to be committed, so that a PATCH ending just before the expiry does not leave
        an upload the clean-up removes before the client can commit it."""
        values: dict = {"offset": offset}
        now = db.utcnow()
        active = and_(db.uploads.c.id == upload_id, db.uploads.c.state == "active")
        with self.engine.begin() as conn:
            if complete_sha is not None:
                expires = conn.execute(select(db.uploads.c.expires_at).where(active)).scalar()
                grace = now + dt.timedelta(seconds=COMPLETE_GRACE)
                values.update(state="complete", completed_at=now, sha256=complete_sha)
                if expires is not None and db.as_utc(expires) < grace:
                    values["expires_at"] = grace
            res = conn.execute(update(db.uploads).where(active).values(**values))
            if res.rowcount == 0:  # terminated or expired meanwhile
                raise ApiError("UPLOAD_EXPIRED")
            if complete_sha is not None:
                db.write_audit(
                    conn,
                    "upload.complete",
                    "ok",
                    account,
                    "upload:" + upload_id,
                    {"sha256": complete_sha},
                    ip,
                )

    def terminate_upload(self, account: dict, upload_id: str, ip: str = "") -> None:
        row = self.get_upload(account, upload_id)
        if row["state"] == "committed":
            raise ApiError("UPLOAD_ALREADY_COMMITTED")
        # the file first: on a full disk, removing it is what frees the space the row update needs
        self.upload_path(upload_id).unlink(missing_ok=True)
        with self.engine.begin() as conn:
            conn.execute(update(db.uploads).where(db.uploads.c.id == upload_id).values(state="terminated"))
            db.write_audit(conn, "upload.terminate", "ok", account, "upload:" + upload_id, {}, ip)

    def cleanup_expired(self) -> int:
        """Expire uploads past their time, files first (see terminate_upload). An upload that a request of any
        worker process is writing or committing holds its lock (exchange_server/locks.py): it is left for the
        next round."""
        now = db.utcnow()
        expired = and_(db.uploads.c.state.in_(("active", "complete")), db.uploads.c.expires_at <= now)
        with self.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(select(db.uploads.c.id).where(expired))]
        done = []
        for upload_id in ids:
            with named_lock(self.engine, "upload:" + upload_id, wait=False) as free:
                if not free:
                    continue
                self.upload_path(upload_id).unlink(missing_ok=True)
                with self.engine.begin() as conn:
                    this = and_(db.uploads.c.id == upload_id, expired)
                    res = conn.execute(update(db.uploads).where(this).values(state="expired"))
                done += [upload_id] * res.rowcount
        if done:
            self.audit("upload.expire", "ok", None, "", {"count": len(done)})
        trim_login_failures(self.engine, self.config.login_window_seconds)
        self.audit_budget.trim()
        return len(done)
