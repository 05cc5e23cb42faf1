"""The exchange's operations on the database and the data directory (synchronous; the HTTP layer runs
them in a thread pool), one module per concern: accounts, audit, upload, submission, feed, schedule."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from exchange_server import db
from exchange_server.catalog import Catalog, load_catalog
from exchange_server.config import ServerConfig
from exchange_server.security import ReceiptSigner
from exchange_server.services.accounts import AccountService
from exchange_server.services.audit import AuditService
from exchange_server.services.common import CHINA_TZ, account_public, iso
from exchange_server.services.feed import FeedService
from exchange_server.services.guard import AuditBudget, LoginThrottle
from exchange_server.services.schedule import ScheduleService
from exchange_server.services.submission import SubmissionService
from exchange_server.services.upload import UploadService

__all__ = ["CHINA_TZ", "Exchange", "account_public", "iso"]


@dataclass
class Exchange(AccountService, AuditService, UploadService, SubmissionService, FeedService, ScheduleService):
    config: ServerConfig
    engine: Engine
    catalog: Catalog
    signer: ReceiptSigner

    def __post_init__(self) -> None:
        cfg = self.config
        self.login_guard = (
            LoginThrottle(self.engine, "account", cfg.login_max_failures_account, cfg.login_window_seconds),
            LoginThrottle(
                self.engine,
                "address",
                cfg.login_max_failures_address,
                cfg.login_window_seconds,
                cfg.login_trusted_networks,
            ),
        )
        self.audit_budget = AuditBudget(
            self.engine,
            cfg.unauthenticated_audit_per_minute,
            cfg.unauthenticated_audit_retention_days * 86400,
        )

    @classmethod
    def open(cls, config: ServerConfig) -> Exchange:
        config.ensure_dirs()
        engine = db.make_engine(config.database_url(), config.db_busy_timeout)
        db.init_schema(engine)
        catalog = load_catalog(config.catalog_dir, config.base_submitters)
        return cls(config, engine, catalog, ReceiptSigner(config.keys_dir))
