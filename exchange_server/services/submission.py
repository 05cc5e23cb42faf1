"""Commits and offline registrations: the check, the signed receipt, the version."""

from __future__ import annotations

import json
import logging
import os
import random
import time
import uuid
from contextlib import ExitStack

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from exchange_server import db
from exchange_server.authz import can_read_submission, check_submit, require_region
from exchange_server.errors import ApiError, finding
from exchange_server.locks import named_lock, transaction_locked
from exchange_server.package_check import check_manifest_content, check_package, manifest_head
from exchange_server.security import canonical_json
from exchange_server.services.common import RECEIPT_VERSION, ServiceBase, _norm, iso

LOG = logging.getLogger(__name__)
RECORD_ATTEMPTS = 20
MAX_FINDINGS = 200


class SubmissionService(ServiceBase):
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
        """Returns (receipt envelope, created). Same package again -> the stored receipt, created False.

        Held across worker processes (database locks, exchange_server/locks.py): one commit of an upload at
        a time, and within it one recording of a package at a time."""
        with ExitStack() as held:
            held.enter_context(named_lock(self.engine, "upload:" + upload_id))
            return self._commit(held, account, upload_id, claimed_sha, manifest, ip)

    def _commit(
        self, held: ExitStack, account: dict, upload_id: str, claimed_sha: str, manifest: object, ip: str
    ) -> tuple[dict, bool]:
        head = manifest_head(manifest)
        try:
            check_submit(account, self.catalog, head.dataset_id, head.region_code, head.department)
        except ApiError as err:
            self.audit("commit", "refused", account, "upload:" + upload_id, {"code": err.code}, ip)
            raise
        upload = self.get_upload(account, upload_id)
        sha = upload["sha256"]
        if sha:
            held.enter_context(named_lock(self.engine, "package:" + sha))
        with self.engine.connect() as conn:
            existing = self._existing(conn, sha) if sha else None
        squatted = existing is not None and self._squatted(account, existing, head.department)
        if existing is not None and not squatted:
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
        if squatted:
            # the package itself (its manifest, proven equal to the one committed) names the owner: an
            # offline registration of its hash by another department gives way, once the package passed
            if any(f["severity"] == "error" for f in findings):
                return self._repeat(account, existing, upload_id, ip)
            self._supersede(existing, account, ip)
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
            if account["role"] != "admin" and existing["department"] != account["department"]:
                # the hash belongs to a package of another department: not this department's to register
                detail = {"code": "PACKAGE_OWNED_BY_OTHER", "submission": existing["id"]}
                self.audit("register_offline", "refused", account, "", detail, ip)
                raise ApiError("PACKAGE_OWNED_BY_OTHER")
            return self._repeat(account, existing, None, ip)
        findings = check_manifest_content(manifest, self.catalog) + [finding("OFFLINE_REGISTERED")]
        return self._record(account, head, manifest, sha, int(size or 0), findings, None, None, True, ip)

    @staticmethod
    def _squatted(account: dict, existing: dict, department: str) -> bool:
        """An offline registration of this hash by an account of another department than the package's."""
        return (
            bool(existing["offline"])
            and existing["account_id"] != account["id"]
            and (existing["department"] != department)
        )

    def _supersede(self, existing: dict, account: dict, ip: str) -> None:
        """Take the hash from a squatting offline registration (its row stays, under a marked hash)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(db.submissions)
                .where(db.submissions.c.id == existing["id"])
                .values(package_sha256="superseded:" + existing["id"])
            )
            detail = {"sha256": existing["package_sha256"], "by_department": account["department"]}
            db.write_audit(
                conn, "register_offline", "superseded", account, "submission:" + existing["id"], detail, ip
            )

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
        if len(findings) > MAX_FINDINGS:  # a receipt stays small whatever the manifest lists
            left_out = len(findings) - (MAX_FINDINGS - 1)
            findings = findings[: MAX_FINDINGS - 1] + [finding("FINDINGS_TRUNCATED", str(left_out))]
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
        # commits of one (dataset, region, period) take their version numbers one at a time, in every worker
        # process: the numbering transaction holds a database lock until it commits
        series = f"versions:{head.dataset_id}/{head.region_code}/{head.period}"
        try:
            for attempt in range(RECORD_ATTEMPTS):
                if attempt:
                    time.sleep(random.uniform(0, 0.01 * attempt))
                try:
                    with transaction_locked(self.engine, series) as conn:
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
                                update(db.uploads)
                                .where(db.uploads.c.id == upload_id)
                                .values(state="committed")
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
            else:
                raise ApiError("DATABASE_BUSY", "commit race")
        except BaseException:
            # nothing recorded (database busy or locked, disk full): the package goes back to the upload,
            # which stays committable; a repeated commit runs the check again
            if stored_path is not None and path is not None and not path.exists():
                os.replace(stored_path, path)
            raise
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
