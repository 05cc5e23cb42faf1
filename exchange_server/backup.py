"""Backup and restore of a server: the database, the receipt-signing key and the package store.

``python -m exchange_server admin --data DATA [--db URL] backup DIR`` (while the server runs) and
``... restore DIR`` (into a fresh data directory and an empty database).

Consistent while serving: the database is copied first, as one snapshot (SQLite's online backup API;
``pg_dump`` of the server's schema, which reads one transaction snapshot), and then exactly the package
files that snapshot lists (``versions.path``) are copied. Committed package files are never changed
(their name is their sha256), so a file committed after the snapshot is simply not in the backup, and
every file the backup's database names is in it. Each copied file's sha256 is checked against the
database, written to ``backup.json`` and checked again on restore. Uploads in progress are not kept:
a client starts such an upload again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import inspect, select, text

from exchange_server import db
from exchange_server.config import ServerConfig

FORMAT = "huijiao-exchange-backup/1"
SQLITE_FILE = "database.sqlite3"
PG_FILE = "database.pgdump"
CHUNK = 1024 * 1024


class BackupError(Exception):
    pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy(source: Path, target: Path) -> str:
    """Copy ``source`` to ``target`` (owner-only permissions) and return the copy's sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    shutil.copyfile(source, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)
    return _sha256(target)


def _sqlite_path(url: str) -> Path:
    return Path(url.split("sqlite:///", 1)[1])


def _pg_parts(url: str) -> tuple[str, str]:
    """(libpq URL, schema) of a SQLAlchemy PostgreSQL URL; the schema is the server's current one."""
    libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            schema = str(conn.execute(text("SELECT current_schema()")).scalar())
    finally:
        engine.dispose()
    return libpq, schema


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{command[0]} failed: {done.stderr.strip()[-2000:]}")


def backup(config: ServerConfig, destination: Path) -> dict:
    """Write a backup of the server ``config`` into the new or empty directory ``destination``."""
    if destination.exists() and any(destination.iterdir()):
        raise BackupError(f"{destination} is not empty")
    destination.mkdir(parents=True, exist_ok=True)
    os.chmod(destination, 0o700)
    url = config.database_url()
    # 1. the database snapshot
    if url.startswith("sqlite"):
        snapshot_url = "sqlite:///" + (destination / SQLITE_FILE).as_posix()
        source = sqlite3.connect(_sqlite_path(url))
        target = sqlite3.connect(destination / SQLITE_FILE)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        os.chmod(destination / SQLITE_FILE, 0o600)
        kind = "sqlite"
    else:
        libpq, schema = _pg_parts(url)
        dump = destination / PG_FILE
        _run(["pg_dump", "--format=custom", "--no-owner", f"--schema={schema}", f"--file={dump}", libpq])
        os.chmod(dump, 0o600)
        kind = "postgresql"
    # 2. the package files that snapshot lists (read from the snapshot itself when it is SQLite)
    engine = db.make_engine(snapshot_url if kind == "sqlite" else url)
    try:
        with engine.connect() as conn:
            # read after the dump: versions are never removed, so this lists every file the dump names
            # (and perhaps a few committed since, which are harmless extra files)
            rows = conn.execute(select(db.versions.c.path, db.versions.c.package_sha256)).all()
    finally:
        engine.dispose()
    files = []
    for path, sha256 in sorted(set(rows)):
        digest = _copy(config.data_dir / path, destination / "files" / path)
        if digest != sha256:
            raise BackupError(f"the stored package {path} does not have the sha256 the database records")
        files.append({"path": path, "sha256": digest})
    # 3. the receipt-signing key: without it no receipt issued so far could be checked again
    keys = []
    for key in sorted(p for p in config.keys_dir.iterdir() if p.is_file()):
        keys.append({"name": key.name, "sha256": _copy(key, destination / "keys" / key.name)})
    manifest = {
        "format": FORMAT,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "database": kind,
        "files": files,
        "keys": keys,
    }
    (destination / "backup.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return {"backup": str(destination), "database": kind, "files": len(files), "keys": len(keys)}


def restore(config: ServerConfig, source: Path) -> dict:
    """Restore the backup in ``source`` into a fresh data directory and an empty database."""
    manifest = json.loads((source / "backup.json").read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{source} is not a backup of this server ({manifest.get('format')})")
    if config.packages_dir.exists() and any(config.packages_dir.iterdir()):
        raise BackupError(f"{config.data_dir} already holds packages: restore into a fresh data directory")
    config.data_dir.mkdir(parents=True, exist_ok=True)
    url = config.database_url()
    engine = db.make_engine(url)
    try:
        if inspect(engine).has_table("submissions"):
            raise BackupError("the database already holds a server: restore into an empty database")
    finally:
        engine.dispose()
    # files first, each checked, then the database that names them
    for entry in manifest["keys"]:
        if _copy(source / "keys" / entry["name"], config.keys_dir / entry["name"]) != entry["sha256"]:
            raise BackupError(f"the backup's key {entry['name']} is damaged")
    for entry in manifest["files"]:
        if _copy(source / "files" / entry["path"], config.data_dir / entry["path"]) != entry["sha256"]:
            raise BackupError(f"the backup's package {entry['path']} is damaged")
    if manifest["database"] == "sqlite":
        if not url.startswith("sqlite"):
            raise BackupError("a SQLite backup is restored into SQLite")
        target_path = _sqlite_path(url)
        target_path.parent.mkdir(parents=True, exist_ok=True)
        backup_db = sqlite3.connect(source / SQLITE_FILE)
        target = sqlite3.connect(target_path)
        try:
            backup_db.backup(target)
        finally:
            target.close()
            backup_db.close()
        os.chmod(target_path, 0o600)
    else:
        if url.startswith("sqlite"):
            raise BackupError("a PostgreSQL backup is restored into PostgreSQL (--db)")
        libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
        dump = str(source / PG_FILE)
        _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", f"--dbname={libpq}", dump])
    return {"restored": str(config.data_dir), "files": len(manifest["files"]), "keys": len(manifest["keys"])}
