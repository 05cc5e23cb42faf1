"""Server configuration: one dataclass, filled from the command line (every limit is an option)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from exchange_server.catalog import DEFAULT_CATALOG_DIR

GIB = 1024**3


@dataclass
class ServerConfig:
    data_dir: Path
    db_url: str | None = None
    catalog_dir: Path = DEFAULT_CATALOG_DIR
    max_upload_size: int = 4 * GIB
    max_concurrent_uploads: int = 4  # uploads held per account: in progress or complete but uncommitted
    # bytes per account: uploads held (declared length) + accepted packages stored (0 = no quota)
    account_quota_bytes: int = 64 * GIB
    upload_expiry_seconds: int = 24 * 3600
    token_ttl_seconds: int = 12 * 3600
    cleanup_interval_seconds: int = 300
    due_days: int = 30
    monitoring_min_per_year: int = 2
    base_submitters: tuple[str, ...] = ("zrzy",)
    # zip safety
    zip_max_files: int = 1000
    zip_max_uncompressed: int = 16 * GIB
    zip_max_ratio: int = 200
    zip_ratio_min_size: int = 1024 * 1024
    # fsync + record the offset at least every this many bytes of a PATCH without Upload-Checksum
    sync_every_bytes: int = 64 * 1024 * 1024
    # write uploads with O_DIRECT where available (Linux), bypassing the page cache; off: plain writes
    direct_io: bool = True
    feed_max_wait: int = 60
    # seconds a SQLite statement waits for a database lock before the request is answered 503 DATABASE_BUSY
    db_busy_timeout: float = 30.0
    # request bodies, refused (413) from Content-Length before reading or while streaming: JSON routes; one
    # PATCH (0 = the maximum upload size)
    max_json_body: int = 1024 * 1024
    max_chunk_size: int = 0
    # login throttling (429 LOGIN_THROTTLED): failures allowed per account name / per client address within
    # the window; audit rows a minute for unauthenticated requests from one address
    login_max_failures_account: int = 5
    login_max_failures_address: int = 50
    login_window_seconds: int = 900
    # networks (CIDR) whose addresses are throttled per account only, e.g. a department's NAT or proxy that
    # many users share: one user's failures there must not lock the others out
    login_trusted_networks: tuple[str, ...] = ()
    unauthenticated_audit_per_minute: int = 20
    # days the records of unauthenticated requests (and their counts) are kept
    unauthenticated_audit_retention_days: int = 30
    extra: dict = field(default_factory=dict)

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def packages_dir(self) -> Path:
        return self.data_dir / "packages"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return "sqlite:///{}".format((self.data_dir / "exchange.sqlite3").as_posix())

    def ensure_dirs(self) -> None:
        for d in (self.data_dir, self.uploads_dir, self.packages_dir, self.keys_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
