"""``python -m exchange_server admin backup DIR`` while the server runs, then ``restore DIR`` into a
fresh data directory (and, on PostgreSQL, a new database): every receipt issued before verifies with the
restored server's key, and every version downloads with the sha256 of the package that was sent."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from urllib.parse import quote

import pytest

from exchange_server.catalog import DEFAULT_CATALOG_DIR
from huijiao_plugin.core.exchange.receipts import KeyMismatchError
from tests.integration.server_support import REPO, client_for, make_package
from tests.server.conftest import PG_SKIP, PgSchema, pg_url
from tests.server.helpers import ServerProcess


def _cli(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "exchange_server", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _server(data, db_url: str | None) -> ServerProcess:
    srv = ServerProcess(data, DEFAULT_CATALOG_DIR, db_url)
    base = srv.base_args()
    _cli("demo-accounts", *base, "--region", "610102")
    _cli(
        "admin", *base, "set-release", "--dataset", "dltb_biangeng", "--year", "2025", "--date", "2025-03-01"
    )
    return srv


class FreshPgDatabase:
    """A new database holding nothing (the restore target), dropped at the end."""

    def __init__(self, base: str, schema: str) -> None:
        import psycopg

        self.base = base.replace("postgresql+psycopg://", "postgresql://")
        self.name = "hj_restore_" + uuid.uuid4().hex[:10]
        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.name}")
        self.url = "postgresql+psycopg://{}/{}?options={}".format(
            self.base.split("://", 1)[1].rsplit("/", 1)[0], self.name, quote("-csearch_path=" + schema)
        )

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_backup_while_serving_and_restore_into_a_fresh_server(qgis_app, tmp_path, backend):
    cleanup = []
    source_db = target_db = None
    if backend == "postgresql":
        if not pg_url():
            pytest.skip(PG_SKIP)
        schema = PgSchema(pg_url())
        cleanup.append(schema.drop)
        fresh = FreshPgDatabase(pg_url(), schema.name)
        cleanup.append(fresh.drop)
        source_db, target_db = schema.url, fresh.url
    servers = []
    try:
        srv = _server(tmp_path / "data", source_db).start()
        servers.append(srv)
        client = client_for(srv.url, "demo_zrzy_submitter", tmp_path / "client")
        packages = [make_package(tmp_path, attachment_kb=64) for _ in range(2)]
        results = [client.submit_package(p) for p in packages]
        assert all(r.accepted for r in results)
        fingerprint = results[0].receipt["key_fingerprint"]

        backup_dir = tmp_path / "backup"
        _cli("admin", *srv.base_args(), "backup", str(backup_dir))  # while the server runs
        late = client.submit_package(make_package(tmp_path, attachment_kb=64))  # after the backup
        assert late.accepted
        srv.stop()

        restored = ServerProcess(tmp_path / "restored", DEFAULT_CATALOG_DIR, target_db)
        _cli("admin", *restored.base_args(), "restore", str(backup_dir))
        restored.start()
        servers.append(restored)

        # the same signing key: checked by its fingerprint before anything else
        check = client_for(
            restored.url, "demo_zrzy_submitter", tmp_path / "check", pinned_fingerprint=fingerprint
        )
        assert check.server_key()
        for result, package in zip(results, packages):
            sha = hashlib.sha256(package.read_bytes()).hexdigest()
            envelope = check.get_json(f"/submissions/{result.submission_id}/receipt")
            assert envelope["signature"] == result.signature  # the receipt issued before the backup
            assert check.verify_envelope(envelope, sha)["submission_id"] == result.submission_id
        reader = client_for(
            restored.url, "demo_nync_reader", tmp_path / "nync", pinned_fingerprint=fingerprint
        )
        versions = reader.versions(dataset_id="dltb_biangeng", latest=False)
        assert sorted(v["submission_id"] for v in versions) == sorted(r.submission_id for r in results)
        by_submission = {r.submission_id: p for r, p in zip(results, packages)}
        for version in versions:
            downloaded = reader.download(version)
            expected = hashlib.sha256(by_submission[version["submission_id"]].read_bytes()).hexdigest()
            assert hashlib.sha256(downloaded.path.read_bytes()).hexdigest() == expected
        # the submission made after the backup is not in it
        assert late.submission_id not in {v["submission_id"] for v in versions}

        # a restore never overwrites a server
        command = [sys.executable, "-m", "exchange_server", "admin", *restored.base_args()]
        again = subprocess.run(
            [*command, "restore", str(backup_dir)], cwd=REPO, capture_output=True, text=True, timeout=120
        )
        assert again.returncode != 0
        wrong = client_for(
            restored.url, "demo_nync_reader", tmp_path / "w", pinned_fingerprint="SHA256:" + "0" * 64
        )
        with pytest.raises(KeyMismatchError):
            wrong.server_key()
    finally:
        for server in servers:
            server.stop()
        for step in reversed(cleanup):
            step()
