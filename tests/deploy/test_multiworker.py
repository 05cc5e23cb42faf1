"""Two uvicorn workers on one PostgreSQL database: the same upload committed by several concurrent
requests (spread over both workers) gives exactly one submission, the same receipt to every request
and no server error."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
import requests
from sqlalchemy import text

from exchange_server.db import make_engine
from tests.deploy.nginx_support import free_port
from tests.integration.server_support import DEMO_PASSWORD, REPO, client_for, make_package
from tests.server.conftest import PG_SKIP, PgSchema, pg_url


@pytest.fixture()
def two_workers(tmp_path):
    if not pg_url():
        pytest.skip(PG_SKIP)
    schema = PgSchema(pg_url())
    data = tmp_path / "data"
    env = dict(os.environ, HUIJIAO_SERVER_DATA=str(data), HUIJIAO_SERVER_DB=schema.url)
    # created once before the workers start, so that they do not race creating the schema
    subprocess.run(
        [sys.executable, "-m", "exchange_server", "demo-accounts", "--data", str(data), "--region", "610102"],
        cwd=REPO, env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "exchange_server", "admin", "--data", str(data), "set-release", "--dataset",
         "dltb_biangeng", "--year", "2025", "--date", "2025-03-01"],
        cwd=REPO, env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    port = free_port()
    log = (tmp_path / "uvicorn.log").open("ab")
    command = [sys.executable, "-m", "uvicorn", "--factory", "exchange_server.asgi:app", "--workers", "2"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "uvicorn.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "uvicorn did not start"
            try:
                if requests.get(url + "/api/v1/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield url, schema
    finally:
        proc.terminate()
        proc.wait(30)
        schema.drop()


def test_concurrent_commits_of_one_upload_on_two_workers_make_one_submission(qgis_app, two_workers, tmp_path):
    url, schema = two_workers
    package = make_package(tmp_path, attachment_kb=512)
    client = client_for(url, "demo_zrzy_submitter", tmp_path / "state")
    client.server_key()
    from huijiao_plugin.core.exchange.verify import verify_package

    verified = verify_package(package)
    upload_url, _resumed = client.upload(package, verified.sha256)
    token = client.login()
    body = {
        "upload_id": upload_url.rstrip("/").rsplit("/", 1)[-1],
        "package_sha256": verified.sha256,
        "manifest": verified.manifest,
    }
    answers: list[tuple[int, dict]] = []
    start = threading.Barrier(8)

    def commit() -> None:
        with requests.Session() as session:  # a connection of its own: the workers share the socket
            start.wait()
            response = session.post(
                url + "/api/v1/submissions",
                json=body,
                headers={"Authorization": "Bearer " + token},
                timeout=120,
            )
            try:
                answers.append((response.status_code, response.json()))
            except ValueError:  # e.g. a plain-text 500
                answers.append((response.status_code, {"body": response.text[:200]}))

    threads = [threading.Thread(target=commit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert len(answers) == 8
    assert sorted({status for status, _ in answers}) in ([200, 201], [201]), answers
    assert all("receipt" in a for _, a in answers), answers
    assert len({a["receipt"]["submission_id"] for _, a in answers}) == 1
    assert all(a["receipt"]["status"] == "accepted" for _, a in answers)
    engine = make_engine(schema.url)
    try:
        with engine.connect() as conn:
            count = conn.execute(
                text("SELECT count(*) FROM submissions WHERE package_sha256 = :sha"), {"sha": verified.sha256}
            ).scalar()
            versions = conn.execute(
                text("SELECT count(*) FROM versions WHERE package_sha256 = :sha"), {"sha": verified.sha256}
            ).scalar()
    finally:
        engine.dispose()
    assert (count, versions) == (1, 1)
    assert DEMO_PASSWORD not in str(answers)


def test_workers_starting_together_on_a_fresh_database_create_it_once(tmp_path):
    """No `admin` command before: four workers create the schema at the same moment, none fails."""
    if not pg_url():
        pytest.skip(PG_SKIP)
    schema = PgSchema(pg_url())
    env = dict(os.environ, HUIJIAO_SERVER_DATA=str(tmp_path / "data"), HUIJIAO_SERVER_DB=schema.url)
    port = free_port()
    log_path = tmp_path / "uvicorn.log"
    command = [sys.executable, "-m", "uvicorn", "--factory", "exchange_server.asgi:app", "--workers", "4"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while log_path.read_text(errors="replace").count("Application startup complete") < 4:
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).status_code == 200
        log = log_path.read_text(errors="replace")
        assert "Traceback" not in log and "Error" not in log, log[-3000:]
    finally:
        proc.terminate()
        proc.wait(30)
        schema.drop()
