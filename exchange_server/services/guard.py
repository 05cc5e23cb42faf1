"""Login throttling (OWASP ASVS V2.2: per account and per address, with a time after which to retry) and the
bound on audit rows written for unauthenticated requests.

The failure counts live in the database (table ``login_failures``), so that every worker process on one
PostgreSQL database counts the same failures: N wrong passwords spread over several workers are throttled
at the same count as on one. Each key's window starts at its first failure and lasts ``window`` seconds; a
count is changed only by one atomic INSERT ... ON CONFLICT DO UPDATE ... RETURNING (PostgreSQL and SQLite).
The records of unauthenticated requests are bounded the same way, per address and minute (AuditBudget)."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import math
import time

from sqlalchemy import case, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from exchange_server import db


class LoginThrottle:
    """Failed logins per key (an account name or a client address) within a window, in the database."""

    def __init__(
        self, engine: Engine, scope: str, max_failures: int, window: float, exempt: tuple[str, ...] = ()
    ) -> None:
        """``exempt``: networks (CIDR) of client addresses that are not counted (for the address throttle)."""
        self.engine = engine
        self.scope = scope
        self.max_failures = max_failures
        self.window = window
        self.exempt = tuple(ipaddress.ip_network(n, strict=False) for n in exempt)

    def _exempt(self, name: str) -> bool:
        if not self.exempt:
            return False
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return any(address in network for network in self.exempt)

    def _key(self, name: str) -> str:
        # fixed length whatever the name (a login's user name is not bounded before it is checked)
        return hashlib.sha256(f"{self.scope}:{name}".encode()).hexdigest()

    def _wait(self, failures: int, window_start: float, now: float) -> int:
        if failures < self.max_failures or window_start + self.window <= now:
            return 0
        return max(1, math.ceil(window_start + self.window - now))

    def retry_after(self, name: str) -> int:
        """Seconds until ``name`` may try again (0: now)."""
        if self._exempt(name):
            return 0
        table = db.login_failures
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table.c.failures, table.c.window_start).where(table.c.key == self._key(name))
            ).first()
        return 0 if row is None else self._wait(row[0], row[1], time.time())

    def failed(self, name: str) -> int:
        """Count one failure of ``name``, atomically; returns 0 when it is within the limit, else the seconds
        to wait. Called before the password is checked, it reserves the try (concurrent tries of one account
        cannot pass the limit together) and a success then clears the count."""
        if self._exempt(name):
            return 0
        table = db.login_failures
        now = time.time()
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stale = table.c.window_start <= now - self.window
        stmt = (
            insert(table)
            .values(key=self._key(name), failures=1, window_start=now)
            .on_conflict_do_update(
                index_elements=[table.c.key],
                set_={
                    "failures": case((stale, 1), else_=table.c.failures + 1),
                    "window_start": case((stale, now), else_=table.c.window_start),
                },
            )
            .returning(table.c.failures, table.c.window_start)
        )
        with self.engine.begin() as conn:
            failures, window_start = conn.execute(stmt).one()
        return self._wait(failures - 1, window_start, now)

    def succeeded(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(db.login_failures).where(db.login_failures.c.key == self._key(name)))


def trim_login_failures(engine: Engine, window: float) -> int:
    """Remove the counts whose window is over (the expiry loop calls it): the table holds only the keys that
    failed within the last window."""
    with engine.begin() as conn:
        over = db.login_failures.c.window_start <= time.time() - window
        res = conn.execute(delete(db.login_failures).where(over))
    return res.rowcount


class AuditBudget:
    """Records of requests without a valid account, bounded per address and minute across every worker: the
    request is counted in ``unauth_audit_counts`` (one atomic INSERT ... ON CONFLICT DO UPDATE ... RETURNING)
    and only the first ``per_minute`` of a minute get a row in ``unauth_audit``; both are trimmed after
    ``retention`` seconds."""

    def __init__(self, engine: Engine, per_minute: int, retention: float) -> None:
        self.engine = engine
        self.per_minute = per_minute
        self.retention = retention

    def record(self, action: str, outcome: str, target: str, detail: dict, address: str) -> bool:
        """Count the request; True when a row was written for it."""
        now = db.utcnow()
        minute = int(now.timestamp() // 60)
        table = db.unauth_audit_counts
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        count = (
            insert(table)
            .values(client_ip=address[:64], minute=minute, requests=1)
            .on_conflict_do_update(
                index_elements=[table.c.client_ip, table.c.minute], set_={"requests": table.c.requests + 1}
            )
            .returning(table.c.requests)
        )
        with self.engine.begin() as conn:
            if conn.execute(count).scalar_one() > self.per_minute:
                return False
            row = {
                "ts": now,
                "action": action,
                "outcome": outcome,
                "target": target[:200],
                "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True),
                "client_ip": address[:64],
            }
            conn.execute(db.unauth_audit.insert().values(**row))
        return True

    def trim(self) -> int:
        """Remove the rows and counts older than the retention (the expiry loop calls it)."""
        cutoff = db.utcnow().timestamp() - self.retention
        with self.engine.begin() as conn:
            res = conn.execute(
                delete(db.unauth_audit).where(
                    db.unauth_audit.c.ts < dt.datetime.fromtimestamp(cutoff, dt.timezone.utc)
                )
            )
            conn.execute(
                delete(db.unauth_audit_counts).where(db.unauth_audit_counts.c.minute < int(cutoff // 60))
            )
        return res.rowcount
