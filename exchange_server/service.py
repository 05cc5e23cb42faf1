"""The exchange's operations on the database and the data directory (synchronous; the HTTP layer runs
them in a thread pool): accounts, tokens, uploads, commits with receipts, versions, deadlines, evaluation."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from exchange_server import db
from exchange_server.authz import ROLES, can_read_submission, can_read_version, check_submit, require_region
from exchange_server.catalog import DEPARTMENTS, Catalog, load_catalog
from exchange_server.config import ServerConfig
from exchange_server.errors import ApiError, finding
from exchange_server.package_check import check_manifest_content, check_package, manifest_head, period_year
from exchange_server.regions import RegionCodeError, normalise
from exchange_server.security import (
    ReceiptSigner,
    canonical_json,
    hash_password,
    new_token,
    token_hash,
    verify_password,
)

LOG = logging.getLogger(__name__)
RECEIPT_VERSION = 1
CHINA_TZ = dt.timezone(dt.timedelta(hours=8))


def iso(value: dt.datetime | None) -> str | None:
    value = db.as_utc(value)
    return value.astimezone(dt.timezone.utc).isoformat(timespec="seconds") if value else None


def account_public(row: dict) -> dict:
    return {
        "id": row["id"],
        "username": row["username"],
        "department": row["department"],
        "region_code": row["region_code"],
        "role": row["role"],
        "display_name": row["display_name"],
        "unit": row["unit"],
        "disabled": bool(row["disabled"]),
    }


@dataclass
class Exchange:
    config: ServerConfig
    engine: Engine
    catalog: Catalog
    signer: ReceiptSigner

    @classmethod
    def open(cls, config: ServerConfig) -> Exchange:
        config.ensure_dirs()
        engine = db.make_engine(config.database_url())
        db.init_schema(engine)
        catalog = load_catalog(config.catalog_dir, config.base_submitters)
        return cls(config, engine, catalog, ReceiptSigner(config.keys_dir))

    # --- accounts and tokens ----------------------------------------------------------------------
    def create_account(
        self,
        username: str,
        password: str,
        department: str,
        region_code: str,
        role: str,
        display_name: str = "",
        unit: str = "",
        actor: dict | None = None,
    ) -> dict:
        if department not in DEPARTMENTS:
            raise ApiError("REQUEST_INVALID", "department must be one of {}".format(", ".join(DEPARTMENTS)))
        if role not in ROLES:
            raise ApiError("REQUEST_INVALID", "role must be one of {}".format(", ".join(ROLES)))
        if not username or len(password) < 8:
            raise ApiError("REQUEST_INVALID", "username required, password at least 8 characters")
        try:
            region = normalise(region_code)
        except RegionCodeError:
            raise ApiError("REGION_INVALID", str(region_code))
        values = {
            "username": username,
            "password_hash": hash_password(password),
            "department": department,
            "region_code": region,
            "role": role,
            "display_name": display_name,
            "unit": unit,
            "disabled": False,
            "created_at": db.utcnow(),
        }
        try:
            with self.engine.begin() as conn:
                res = conn.execute(insert(db.accounts).values(**values))
                values["id"] = res.inserted_primary_key[0]
                db.write_audit(conn, "account.create", "ok", actor, "account:" + username, {"role": role})
        except IntegrityError:
            raise ApiError("ACCOUNT_EXISTS", username)
        return account_public(values)

    def update_account(
        self,
        username: str,
        disabled: bool | None = None,
        password: str | None = None,
        actor: dict | None = None,
    ) -> dict:
        """Disable/enable an account or set its password (an admin action, audited)."""
        values: dict = {}
        if disabled is not None:
            values["disabled"] = bool(disabled)
        if password is not None:
            if len(password) < 8:
                raise ApiError("REQUEST_INVALID", "password at least 8 characters")
            values["password_hash"] = hash_password(password)
        with self.engine.begin() as conn:
            account = self.get_account(conn, username)
            if account is None:
                raise ApiError("NOT_FOUND", username)
            if values:
                conn.execute(update(db.accounts).where(db.accounts.c.id == account["id"]).values(**values))
                account.update(values)
            detail = {"disabled": values.get("disabled"), "password_changed": "password_hash" in values}
            db.write_audit(conn, "account.update", "ok", actor, "account:" + username, detail)
        return account_public(account)

    def list_accounts(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.accounts).order_by(db.accounts.c.id)).mappings().all()
        return [account_public(dict(r)) for r in rows]

    def get_account(self, conn: Connection, username: str) -> dict | None:
        row = conn.execute(select(db.accounts).where(db.accounts.c.username == username)).mappings().first()
        return dict(row) if row else None

    def issue_token(
        self, username: str, ttl_seconds: int | None = None, note: str = "", actor: dict | None = None
    ):
        ttl = self.config.token_ttl_seconds if ttl_seconds is None else int(ttl_seconds)
        token = new_token()
        now = db.utcnow()
        expires = now + dt.timedelta(seconds=ttl)
        with self.engine.begin() as conn:
            account = self.get_account(conn, username)
            if account is None:
                raise ApiError("NOT_FOUND", username)
            conn.execute(
                insert(db.tokens).values(
                    token_hash=token_hash(token),
                    account_id=account["id"],
                    created_at=now,
                    expires_at=expires,
                    note=note,
                )
            )
            db.write_audit(conn, "token.issue", "ok", actor or account, "account:" + username, {"ttl": ttl})
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_at": iso(expires),
            "account": account_public(account),
        }

    def login(self, username: str, password: str, ttl_seconds: int | None, client_ip: str = "") -> dict:
        with self.engine.connect() as conn:
            account = self.get_account(conn, username)
        if account is None or not verify_password(password, account["password_hash"]):
            with self.engine.begin() as conn:
                db.write_audit(conn, "login", "refused", None, "account:" + username, {}, client_ip)
            raise ApiError("AUTH_INVALID")
        if account["disabled"]:
            raise ApiError("ACCOUNT_DISABLED")
        ttl = self.config.token_ttl_seconds
        if ttl_seconds is not None:
            ttl = max(1, min(int(ttl_seconds), self.config.token_ttl_seconds))
        return self.issue_token(username, ttl, "login")

    def revoke_tokens(
        self, username: str | None = None, token: str | None = None, actor: dict | None = None
    ) -> int:
        with self.engine.begin() as conn:
            cond = db.tokens.c.revoked_at.is_(None)
            if token is not None:
                cond = and_(cond, db.tokens.c.token_hash == token_hash(token))
            else:
                account = self.get_account(conn, username or "")
                if account is None:
                    raise ApiError("NOT_FOUND", username)
                cond = and_(cond, db.tokens.c.account_id == account["id"])
            res = conn.execute(update(db.tokens).where(cond).values(revoked_at=db.utcnow()))
            db.write_audit(
                conn, "token.revoke", "ok", actor, "account:" + (username or ""), {"count": res.rowcount}
            )
            return res.rowcount

    def authenticate(self, token: str | None, client_ip: str = "") -> dict:
        if not token:
            raise ApiError("AUTH_REQUIRED")
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(db.tokens, db.accounts)
                    .join(db.accounts, db.accounts.c.id == db.tokens.c.account_id)
                    .where(db.tokens.c.token_hash == token_hash(token))
                )
                .mappings()
                .first()
            )
        code = None
        if row is None:
            code = "TOKEN_INVALID"
        elif row["revoked_at"] is not None:
            code = "TOKEN_REVOKED"
        elif db.as_utc(row["expires_at"]) <= db.utcnow():
            code = "TOKEN_EXPIRED"
        elif row["disabled"]:
            code = "ACCOUNT_DISABLED"
        if code:
            with self.engine.begin() as conn:
                db.write_audit(conn, "auth", "refused", None, "", {"code": code}, client_ip)
            raise ApiError(code)
        account = {k: row[k] for k in ("username", "password_hash", "department", "region_code", "role")}
        account.update(
            id=row["account_id"], display_name=row["display_name"], unit=row["unit"], disabled=False
        )
        return account

    def audit(
        self,
        action: str,
        outcome: str,
        account: dict | None,
        target: str = "",
        detail: dict | None = None,
        client_ip: str = "",
    ) -> None:
        with self.engine.begin() as conn:
            db.write_audit(conn, action, outcome, account, target, detail, client_ip)

    # --- uploads ---------------------------------------------------------------------------------------
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
        with self.engine.begin() as conn:
            active = conn.execute(
                select(func.count())
                .select_from(db.uploads)
                .where(
                    db.uploads.c.account_id == account["id"],
                    db.uploads.c.state == "active",
                    db.uploads.c.expires_at > now,
                )
            ).scalar_one()
            if active >= self.config.max_concurrent_uploads:
                db.write_audit(
                    conn, "upload.create", "refused", account, "", {"code": "UPLOAD_TOO_MANY"}, client_ip
                )
                raise ApiError("UPLOAD_TOO_MANY", f"max {self.config.max_concurrent_uploads}")
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
        values: dict = {"offset": offset}
        if complete_sha is not None:
            values.update(state="complete", completed_at=db.utcnow(), sha256=complete_sha)
        with self.engine.begin() as conn:
            conn.execute(update(db.uploads).where(db.uploads.c.id == upload_id).values(**values))
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
        with self.engine.begin() as conn:
            conn.execute(update(db.uploads).where(db.uploads.c.id == upload_id).values(state="terminated"))
            db.write_audit(conn, "upload.terminate", "ok", account, "upload:" + upload_id, {}, ip)
        self.upload_path(upload_id).unlink(missing_ok=True)

    def cleanup_expired(self) -> int:
        now = db.utcnow()
        with self.engine.begin() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    select(db.uploads.c.id).where(
                        db.uploads.c.state.in_(("active", "complete")), db.uploads.c.expires_at <= now
                    )
                )
            ]
            if ids:
                conn.execute(update(db.uploads).where(db.uploads.c.id.in_(ids)).values(state="expired"))
                db.write_audit(conn, "upload.expire", "ok", None, "", {"count": len(ids)})
        for upload_id in ids:
            self.upload_path(upload_id).unlink(missing_ok=True)
        return len(ids)

    # --- submissions -------------------------------------------------------------------------------
    def _stored_envelope(self, row: dict) -> dict:
        return {
            "receipt": json.loads(row["receipt_json"]),
            "signature": row["signature"],
            "key_fingerprint": self.signer.fingerprint,
            "signature_algorithm": "Ed25519",
        }

    def _existing(self, conn: Connection, sha: str) -> dict | None:
        row = (
            conn.execute(select(db.submissions).where(db.submissions.c.package_sha256 == sha))
            .mappings()
            .first()
        )
        return dict(row) if row else None

    def commit(
        self, account: dict, upload_id: str, claimed_sha: str, manifest: object, ip: str = ""
    ) -> tuple[dict, bool]:
        """Returns (receipt envelope, created). Same package again -> the stored receipt, created False."""
        head = manifest_head(manifest)
        try:
            check_submit(account, self.catalog, head.dataset_id, head.region_code, head.department)
        except ApiError as err:
            self.audit("commit", "refused", account, "upload:" + upload_id, {"code": err.code}, ip)
            raise
        upload = self.get_upload(account, upload_id)
        sha = upload["sha256"]
        with self.engine.connect() as conn:
            existing = self._existing(conn, sha) if sha else None
        if existing is not None:
            return self._repeat(account, existing, upload_id, ip)
        if upload["state"] == "committed":
            raise ApiError("UPLOAD_ALREADY_COMMITTED")
        if upload["state"] != "complete" or sha is None:
            raise ApiError("UPLOAD_INCOMPLETE", "{}/{}".format(upload["offset"], upload["length"]))
        if str(claimed_sha or "").lower() != sha:
            self.audit(
                "commit", "refused", account, "upload:" + upload_id, {"code": "PACKAGE_HASH_MISMATCH"}, ip
            )
            raise ApiError("PACKAGE_HASH_MISMATCH")
        path = self.upload_path(upload_id)
        findings = check_package(path, manifest, self.catalog, self.config, self.config.tmp_dir)
        return self._record(
            account, head, manifest, sha, upload["length"], findings, upload_id, path, False, ip
        )

    def register_offline(self, account: dict, claimed_sha: str, size: int, manifest: object, ip: str = ""):
        head = manifest_head(manifest)
        try:
            check_submit(account, self.catalog, head.dataset_id, head.region_code, head.department)
        except ApiError as err:
            self.audit("register_offline", "refused", account, "", {"code": err.code}, ip)
            raise
        sha = str(claimed_sha or "").lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ApiError("REQUEST_INVALID", "package_sha256 must be 64 hex digits")
        with self.engine.connect() as conn:
            existing = self._existing(conn, sha)
        if existing is not None:
            return self._repeat(account, existing, None, ip)
        findings = check_manifest_content(manifest, self.catalog) + [finding("OFFLINE_REGISTERED")]
        return self._record(account, head, manifest, sha, int(size or 0), findings, None, None, True, ip)

    def _repeat(self, account: dict, existing: dict, upload_id: str | None, ip: str) -> tuple[dict, bool]:
        if existing["account_id"] != account["id"] and account["role"] != "admin":
            self.audit(
                "commit", "refused", account, "submission:" + existing["id"], {"code": "DUPLICATE_OTHER"}, ip
            )
            raise ApiError("PACKAGE_SUBMITTED_BY_OTHER")
        self.audit("commit", "duplicate", account, "submission:" + existing["id"], {"upload": upload_id}, ip)
        if upload_id and existing.get("upload_id") != upload_id:
            with self.engine.begin() as conn:
                conn.execute(
                    update(db.uploads)
                    .where(db.uploads.c.id == upload_id, db.uploads.c.state == "complete")
                    .values(state="committed")
                )
            self.upload_path(upload_id).unlink(missing_ok=True)
        return self._stored_envelope(existing), False

    def _record(self, account, head, manifest, sha, size, findings, upload_id, path, offline, ip):
        errors = sum(1 for f in findings if f["severity"] == "error")
        warnings = sum(1 for f in findings if f["severity"] == "warning")
        status = "accepted" if errors == 0 else "rejected"
        submission_id = str(uuid.uuid4())
        now = db.utcnow()
        receipt: dict = {
            "receipt_version": RECEIPT_VERSION,
            "submission_id": submission_id,
            "server_time": iso(now),
            "package_sha256": sha,
            "package_size": size,
            "package_uuid": head.package_uuid,
            "dataset_id": head.dataset_id,
            "region_code": head.region_code,
            "period": head.period,
            "department": head.department,
            "account": account["username"],
            "status": status,
            "offline": offline,
            "findings": findings,
            "key_fingerprint": self.signer.fingerprint,
        }
        stored_path = None
        if status == "accepted" and path is not None:
            target = self.config.packages_dir / sha[:2] / f"{sha}.zip"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            stored_path = target
        for _attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    existing = self._existing(conn, sha)
                    if existing is not None:
                        return self._stored_envelope(existing), False
                    version_id = None
                    if status == "accepted" and not offline:
                        last = conn.execute(
                            select(func.max(db.versions.c.version_no)).where(
                                db.versions.c.dataset_id == head.dataset_id,
                                db.versions.c.region_code == head.region_code,
                                db.versions.c.period == head.period,
                            )
                        ).scalar()
                        receipt["version"] = int(last or 0) + 1
                    else:
                        receipt.pop("version", None)
                    body = canonical_json(receipt).decode("utf-8")
                    signature = self.signer.sign(receipt)
                    conn.execute(
                        insert(db.submissions).values(
                            id=submission_id,
                            account_id=account["id"],
                            package_sha256=sha,
                            package_uuid=head.package_uuid,
                            dataset_id=head.dataset_id,
                            region_code=head.region_code,
                            period=head.period,
                            department=head.department,
                            status=status,
                            offline=offline,
                            error_count=errors,
                            warning_count=warnings,
                            receipt_json=body,
                            signature=signature,
                            manifest_json=json.dumps(manifest, ensure_ascii=False, sort_keys=True),
                            upload_id=upload_id,
                            created_at=now,
                        )
                    )
                    if "version" in receipt:
                        res = conn.execute(
                            insert(db.versions).values(
                                dataset_id=head.dataset_id,
                                region_code=head.region_code,
                                period=head.period,
                                version_no=receipt["version"],
                                submission_id=submission_id,
                                package_sha256=sha,
                                size=size,
                                path=str(stored_path.relative_to(self.config.data_dir)),
                                department=head.department,
                                created_at=now,
                            )
                        )
                        version_id = res.inserted_primary_key[0]
                    if upload_id:
                        conn.execute(
                            update(db.uploads).where(db.uploads.c.id == upload_id).values(state="committed")
                        )
                    db.write_audit(
                        conn,
                        "register_offline" if offline else "commit",
                        status,
                        account,
                        "submission:" + submission_id,
                        {
                            "sha256": sha,
                            "dataset_id": head.dataset_id,
                            "region": head.region_code,
                            "errors": errors,
                            "version_id": version_id,
                        },
                        ip,
                    )
                break
            except IntegrityError:
                LOG.info("commit race on %s, retrying", sha)
                continue
        else:
            raise ApiError("INTERNAL", "could not record submission")
        if path is not None and stored_path is None:
            path.unlink(missing_ok=True)
        return {
            "receipt": json.loads(body),
            "signature": signature,
            "key_fingerprint": self.signer.fingerprint,
            "signature_algorithm": "Ed25519",
        }, True

    def list_submissions(
        self, account: dict, region: str | None, dataset_id: str | None, sha: str | None
    ) -> list:
        q = select(db.submissions).order_by(db.submissions.c.created_at)
        if dataset_id:
            q = q.where(db.submissions.c.dataset_id == dataset_id)
        if sha:
            q = q.where(db.submissions.c.package_sha256 == sha.lower())
        if region:
            region = _norm(region)
            require_region(account, region)
            q = q.where(db.submissions.c.region_code.startswith(region))
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
        return [self.submission_public(r) for r in rows if can_read_submission(account, r)]

    def submission_public(self, row: dict) -> dict:
        return {
            "submission_id": row["id"],
            "package_sha256": row["package_sha256"],
            "dataset_id": row["dataset_id"],
            "region_code": row["region_code"],
            "period": row["period"],
            "department": row["department"],
            "status": row["status"],
            "offline": bool(row["offline"]),
            "errors": row["error_count"],
            "warnings": row["warning_count"],
            "created_at": iso(row["created_at"]),
        }

    def get_submission(self, account: dict, submission_id: str) -> dict:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(db.submissions).where(db.submissions.c.id == submission_id))
                .mappings()
                .first()
            )
        if row is None or not can_read_submission(account, dict(row)):
            raise ApiError("NOT_FOUND")
        row = dict(row)
        out = self.submission_public(row)
        out.update(self._stored_envelope(row))
        out["manifest"] = json.loads(row["manifest_json"])
        return out

    # --- versions ------------------------------------------------------------------------------------
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

    # --- releases, deadlines, evaluation ---------------------------------------------------------------
    def set_release(
        self, dataset_id: str, year: int, release_date: dt.date, actor: dict | None = None
    ) -> dict:
        ds = self.catalog.get(dataset_id)
        if ds is None:
            raise ApiError("NOT_FOUND", dataset_id)
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(db.releases).where(db.releases.c.dataset_id == dataset_id, db.releases.c.year == year)
            ).first()
            values = {
                "release_date": release_date,
                "set_by": actor["username"] if actor else "cli",
                "set_at": db.utcnow(),
            }
            if exists:
                conn.execute(
                    update(db.releases)
                    .where(db.releases.c.dataset_id == dataset_id, db.releases.c.year == year)
                    .values(**values)
                )
            else:
                conn.execute(insert(db.releases).values(dataset_id=dataset_id, year=year, **values))
            db.write_audit(
                conn,
                "release.set",
                "ok",
                actor,
                "dataset:" + dataset_id,
                {"year": year, "release_date": release_date.isoformat()},
            )
        return self.release_public(dataset_id, year, release_date)

    def release_public(self, dataset_id: str, year: int, release_date: dt.date) -> dict:
        return {
            "dataset_id": dataset_id,
            "year": year,
            "release_date": release_date.isoformat(),
            "due_date": (release_date + dt.timedelta(days=self._due_days(dataset_id))).isoformat(),
        }

    def _due_days(self, dataset_id: str) -> int:
        ds = self.catalog.get(dataset_id)
        return ds.due_days if ds is not None and ds.due_days else self.config.due_days

    def list_releases(self, year: int | None = None) -> list[dict]:
        q = select(db.releases).order_by(db.releases.c.year, db.releases.c.dataset_id)
        if year:
            q = q.where(db.releases.c.year == year)
        with self.engine.connect() as conn:
            return [self.release_public(r.dataset_id, r.year, r.release_date) for r in conn.execute(q)]

    def obligations(self, region: str, year: int, as_of: dt.date) -> list[dict]:
        """What each region below ``region`` (with a submitter account) owes for ``year``, and its status."""
        with self.engine.connect() as conn:
            owners = conn.execute(
                select(db.accounts.c.region_code, db.accounts.c.department)
                .where(db.accounts.c.role == "submitter", db.accounts.c.region_code.startswith(region))
                .distinct()
            ).all()
            rel = {
                r.dataset_id: r.release_date
                for r in conn.execute(select(db.releases).where(db.releases.c.year == year))
            }
            subs = [
                dict(r)
                for r in conn.execute(
                    select(db.submissions).where(
                        db.submissions.c.status == "accepted", db.submissions.c.region_code.startswith(region)
                    )
                ).mappings()
            ]
        subs = [s for s in subs if period_year(s["period"]) == year]
        out = []
        for reg, dept in sorted(set(owners)):
            for ds in sorted(self.catalog.datasets.values(), key=lambda d: d.id):
                if dept not in self.catalog.submit_departments(ds.id):
                    continue
                mine = [s for s in subs if s["dataset_id"] == ds.id and s["region_code"] == reg]
                item = {
                    "region_code": reg,
                    "department": dept,
                    "dataset_id": ds.id,
                    "dataset_name_zh": ds.name_zh,
                    "year": year,
                    "shared": ds.shared,
                }
                if ds.is_annual and ds.id in rel:
                    due = rel[ds.id] + dt.timedelta(days=ds.due_days or self.config.due_days)
                    first = min((db.as_utc(s["created_at"]) for s in mine), default=None)
                    first_day = first.astimezone(CHINA_TZ).date() if first else None
                    if first_day is not None:
                        status = "met" if first_day <= due else "late"
                    else:
                        status = "overdue" if as_of > due else "pending"
                    item.update(
                        kind="annual",
                        release_date=rel[ds.id].isoformat(),
                        due_date=due.isoformat(),
                        submitted_at=iso(first),
                        status=status,
                        days_left=(due - as_of).days,
                    )
                elif ds.is_monitoring:
                    required = ds.min_per_year or self.config.monitoring_min_per_year
                    periods = sorted({s["period"] for s in mine})
                    due = dt.date(year, 12, 31)
                    status = "met" if len(periods) >= required else "overdue" if as_of > due else "pending"
                    item.update(
                        kind="monitoring",
                        required_per_year=required,
                        delivered_periods=periods,
                        due_date=due.isoformat(),
                        status=status,
                        days_left=(due - as_of).days,
                    )
                else:
                    continue
                item["delivered"] = bool(mine)
                out.append(item)
        return out

    def evaluation(self, region: str, year: int, as_of: dt.date) -> dict:
        obligations = self.obligations(region, year, as_of)
        with self.engine.connect() as conn:
            subs = [
                dict(r)
                for r in conn.execute(
                    select(db.submissions).where(db.submissions.c.region_code.startswith(region))
                ).mappings()
            ]
            vers = [
                dict(r)
                for r in conn.execute(
                    select(db.versions).where(db.versions.c.region_code.startswith(region))
                ).mappings()
            ]
            vers = [v for v in vers if period_year(v["period"]) == year]
            targets = ["version:{}".format(v["id"]) for v in vers]
            downloads = []
            if targets:
                downloads = conn.execute(
                    select(db.audit.c.target, db.audit.c.department).where(
                        db.audit.c.action == "download",
                        db.audit.c.outcome == "ok",
                        db.audit.c.target.in_(targets),
                    )
                ).all()
        subs = [s for s in subs if period_year(s["period"]) == year]
        regions = sorted({o["region_code"] for o in obligations} | {s["region_code"] for s in subs})

        def indicators(reg: str | None) -> dict:
            obl = [o for o in obligations if reg is None or o["region_code"] == reg]
            ss = [s for s in subs if reg is None or s["region_code"] == reg]
            vv = [v for v in vers if reg is None or v["region_code"] == reg]
            due = [o for o in obl if o["status"] in ("met", "late", "overdue")]
            met = [o for o in obl if o["status"] == "met"]
            shared = [o for o in obl if o["shared"]]
            online = [s for s in ss if not s["offline"]]
            accepted_online = [s for s in online if s["status"] == "accepted"]
            dept_by_target = {"version:{}".format(v["id"]): v["department"] for v in vv}
            other = [
                d
                for d in downloads
                if d.target in dept_by_target and d.department != dept_by_target[d.target]
            ]
            used = {d.target for d in other}
            return {
                "obligations": len(obl),
                "timeliness": {"due": len(due), "on_time": len(met), "rate": _rate(len(met), len(due))},
                "completeness": {
                    "shared_items": len(shared),
                    "delivered": sum(1 for o in shared if o["delivered"]),
                    "rate": _rate(sum(1 for o in shared if o["delivered"]), len(shared)),
                },
                "validation": {
                    "submissions": len(online),
                    "accepted": len(accepted_online),
                    "pass_rate": _rate(len(accepted_online), len(online)),
                    "offline_registered": sum(1 for s in ss if s["offline"]),
                },
                "use": {
                    "versions": len(vv),
                    "downloads_by_other_department": len(other),
                    "versions_used_by_other_department": len(used),
                    "rate": _rate(len(used), len(vv)),
                },
                "overdue": [
                    {
                        "region_code": o["region_code"],
                        "dataset_id": o["dataset_id"],
                        "due_date": o["due_date"],
                    }
                    for o in obl
                    if o["status"] == "overdue"
                ],
            }

        return {
            "region_code": region,
            "year": year,
            "as_of": as_of.isoformat(),
            "indicators": indicators(None),
            "regions": [dict(region_code=r, **indicators(r)) for r in regions],
            "obligations": obligations,
        }


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _norm(region: str) -> str:
    try:
        return normalise(region)
    except RegionCodeError:
        raise ApiError("REGION_INVALID", str(region))
