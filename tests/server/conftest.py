"""The exchange server started for real (uvicorn subprocess on 127.0.0.1, port 0) on SQLite and, when
HUIJIAO_TEST_PG is set, on PostgreSQL in a fresh schema per test session."""

from __future__ import annotations

import itertools
import os
import uuid
from urllib.parse import quote

import pytest

from tests.server.helpers import Client, ServerProcess, login, write_catalog

ADMIN_PASSWORD = "admin-pass-123"
PASSWORD = "secret-pass-123"
PG_SKIP = "HUIJIAO_TEST_PG not set (optional PostgreSQL component)"
_counter = itertools.count()


def pg_url() -> str | None:
    return os.environ.get("HUIJIAO_TEST_PG") or None


@pytest.fixture(scope="session")
def catalog_dir(tmp_path_factory):
    return write_catalog(tmp_path_factory.mktemp("catalog"))


class PgSchema:
    """A fresh PostgreSQL schema; the server's URL selects it through the search_path option."""

    def __init__(self, base: str) -> None:
        import psycopg

        self.base = base.replace("postgresql+psycopg://", "postgresql://")
        self.name = "hj_test_" + uuid.uuid4().hex[:10]
        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.name}")

    @property
    def url(self) -> str:
        sep = "&" if "?" in self.base else "?"
        return "postgresql+psycopg://{}{}options={}".format(
            self.base.split("://", 1)[1], sep, quote("-csearch_path=" + self.name)
        )

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {self.name} CASCADE")


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request):
    if request.param == "postgresql" and not pg_url():
        pytest.skip(PG_SKIP)
    return request.param


@pytest.fixture(scope="session")
def db_factory(backend):
    """Returns a function giving a fresh database URL (None = SQLite in the data dir)."""
    schemas: list[PgSchema] = []

    def make() -> str | None:
        if backend == "sqlite":
            return None
        schema = PgSchema(pg_url())
        schemas.append(schema)
        return schema.url

    yield make
    for schema in schemas:
        schema.drop()


def start_server(tmp_path_factory, catalog_dir, db_factory, extra=None) -> ServerProcess:
    data = tmp_path_factory.mktemp("data") / "srv"
    srv = ServerProcess(data, catalog_dir, db_factory(), extra)
    srv.cli(
        "create-account",
        "--username",
        "admin",
        "--password",
        ADMIN_PASSWORD,
        "--department",
        "zrzy",
        "--region",
        "610000",
        "--role",
        "admin",
    )
    return srv.start()


@pytest.fixture(scope="session")
def server(tmp_path_factory, catalog_dir, db_factory):
    srv = start_server(tmp_path_factory, catalog_dir, db_factory, ["--max-concurrent-uploads", "3"])
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def admin(server) -> Client:
    return login(server.url, "admin", ADMIN_PASSWORD)


@pytest.fixture(scope="session")
def make_account(server, admin):
    """make_account(department, region, role) -> logged-in Client with a unique user name."""

    def make(department: str, region: str, role: str, prefix: str = "u") -> Client:
        username = f"{prefix}_{department}_{region}_{role}_{next(_counter)}"
        r = admin.post(
            "/admin/accounts",
            json={
                "username": username,
                "password": PASSWORD,
                "department": department,
                "region_code": region,
                "role": role,
            },
        )
        assert r.status_code == 201, r.text
        client = login(server.url, username, PASSWORD)
        client.username = username
        return client

    return make
