"""Database schema (SQLAlchemy Core) for SQLite (default) and PostgreSQL, with an append-only audit table."""

from __future__ import annotations

import datetime as dt
import json
import logging

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    insert,
    text,
)
from sqlalchemy.engine import Connection, Engine

LOG = logging.getLogger(__name__)
metadata = MetaData()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", String(300), nullable=False),
    Column("department", String(20), nullable=False),
    Column("region_code", String(12), nullable=False),
    Column("role", String(20), nullable=False),
    Column("display_name", String(200), nullable=False, default=""),
    Column("unit", String(200), nullable=False, default=""),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("note", String(200), nullable=False, default=""),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("length", BigInteger, nullable=False),
    Column("offset", BigInteger, nullable=False, default=0),
    Column("metadata", Text, nullable=False, default="{}"),
    # active -> complete -> committed; or terminated / expired
    Column("state", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("sha256", String(64), nullable=True),
)

submissions = Table(
    "submissions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("package_sha256", String(64), nullable=False, unique=True),
    Column("package_uuid", String(64), nullable=False, default=""),
    Column("dataset_id", String(64), nullable=False),
    Column("region_code", String(12), nullable=False),
    Column("period", String(10), nullable=False),
    Column("department", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("offline", Boolean, nullable=False, default=False),
    Column("error_count", Integer, nullable=False, default=0),
    Column("warning_count", Integer, nullable=False, default=0),
    Column("receipt_json", Text, nullable=False),
    Column("signature", String(200), nullable=False),
    Column("manifest_json", Text, nullable=False),
    Column("upload_id", String(32), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_submissions_dsrp", submissions.c.dataset_id, submissions.c.region_code, submissions.c.period)

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset_id", String(64), nullable=False),
    Column("region_code", String(12), nullable=False),
    Column("period", String(10), nullable=False),
    Column("version_no", Integer, nullable=False),
    Column("submission_id", String(36), ForeignKey("submissions.id"), nullable=False),
    Column("package_sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("path", String(500), nullable=False),
    Column("department", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("dataset_id", "region_code", "period", "version_no", name="uq_version"),
)

releases = Table(
    "releases",
    metadata,
    Column("dataset_id", String(64), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("release_date", Date, nullable=False),
    Column("set_by", String(100), nullable=False, default=""),
    Column("set_at", DateTime(timezone=True), nullable=False),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("account_id", Integer, nullable=True),
    Column("username", String(100), nullable=False, default=""),
    Column("department", String(20), nullable=False, default=""),
    Column("region_code", String(12), nullable=False, default=""),
    Column("action", String(40), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("target", String(200), nullable=False, default=""),
    Column("detail", Text, nullable=False, default="{}"),
    Column("client_ip", String(64), nullable=False, default=""),
)
Index("ix_audit_action", audit.c.action, audit.c.target)

# requests without a valid account (refused logins and tokens), kept apart from the append-only audit so that
# they can be bounded and trimmed: one row per request up to a budget per address and minute (table
# unauth_audit), and the count of every request per address and minute (table unauth_audit_counts); both
# removed after the retention by the expiry loop (exchange_server/services/guard.py)
unauth_audit = Table(
    "unauth_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("action", String(40), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("target", String(200), nullable=False, default=""),
    Column("detail", Text, nullable=False, default="{}"),
    Column("client_ip", String(64), nullable=False, default=""),
)
Index("ix_unauth_audit_ts", unauth_audit.c.ts)

unauth_audit_counts = Table(
    "unauth_audit_counts",
    metadata,
    Column("client_ip", String(64), primary_key=True),
    Column("minute", Integer, primary_key=True),  # minutes since the epoch
    Column("requests", Integer, nullable=False),
)
Index("ix_unauth_audit_counts_minute", unauth_audit_counts.c.minute)

# failed logins per key (the sha256 of "account:<name>" or "address:<ip>") in a window that starts at the
# first failure: shared by every worker process (exchange_server/services/guard.py)
login_failures = Table(
    "login_failures",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", Float, nullable=False),  # seconds since the epoch
)

_SQLITE_TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit "
    "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit "
    "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END",
]
_PG_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit log is append-only'; END $$",
    "DROP TRIGGER IF EXISTS audit_no_change ON audit",
    "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit "
    "FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    "DROP TRIGGER IF EXISTS audit_no_truncate ON audit",
    "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
]


# the advisory lock key of the schema creation (any fixed 64-bit number not used by exchange_server/locks.py)
_INIT_LOCK_KEY = 0x6875696A69616F  # "huijiao"


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` use psycopg 3 (the driver installed here)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, busy_timeout: float = 30.0) -> Engine:
    """``busy_timeout``: seconds a SQLite statement waits for a lock before failing (answered 503)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout},
            pool_size=10,
            max_overflow=20,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def init_schema(engine: Engine) -> None:
    """Create what is missing (tables, the audit triggers); on PostgreSQL under a transaction advisory lock,
    so that workers starting together (``uvicorn --workers``) do not race creating the same objects."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _INIT_LOCK_KEY})
        metadata.create_all(conn)
        statements = _PG_TRIGGERS if engine.dialect.name == "postgresql" else _SQLITE_TRIGGERS
        for stmt in statements:
            conn.execute(text(stmt))


def write_audit(
    conn: Connection,
    action: str,
    outcome: str,
    account: dict | None = None,
    target: str = "",
    detail: dict | None = None,
    client_ip: str = "",
) -> None:
    """Append one row to the audit log (the only write path to that table: INSERT)."""
    conn.execute(
        insert(audit).values(
            ts=utcnow(),
            account_id=account["id"] if account else None,
            username=account["username"] if account else "",
            department=account["department"] if account else "",
            region_code=account["region_code"] if account else "",
            action=action,
            outcome=outcome,
            target=target[:200],
            detail=json.dumps(detail or {}, ensure_ascii=False, sort_keys=True),
            client_ip=client_ip[:64],
        )
    )


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite returns naive datetimes: they are UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value
