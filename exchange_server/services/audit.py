"""The audit trail: writing rows and reading them (admin)."""

from __future__ import annotations

from sqlalchemy import select

from exchange_server import db
from exchange_server.services.common import ServiceBase, iso


class AuditService(ServiceBase):
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

    def audit_rows(
        self, action: str | None, after_id: int, limit: int, unauthenticated: bool = False
    ) -> list[dict]:
        """The audit of accounts' actions, or (``unauthenticated``) the records of requests without a valid
        account (bounded per address and minute, trimmed after the retention)."""
        table = db.unauth_audit if unauthenticated else db.audit
        q = select(table).where(table.c.id > after_id).order_by(table.c.id).limit(limit)
        if action:
            q = q.where(table.c.action == action)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
        for r in rows:
            r["ts"] = iso(r["ts"])
        return rows
