"""Province runs into a PostgreSQL schema (core/province/output.py): the same pieces, statistics and roll-up
as the GeoPackage output, finished counties recorded in the database, and a killed run resumed from the
database equals an uninterrupted one. Needs the test database (tests/pg_setup.sh, HUIJIAO_TEST_PG)."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from huijiao_plugin.core.province.engine import ProvinceConfig, run_province
from tests.datagen.province import generate_province

PG = os.environ.get("HUIJIAO_TEST_PG", "")
PRESET = "pbfnongrain"
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not PG, reason="HUIJIAO_TEST_PG not set (optional PostgreSQL component)")

STATS_SQL = "SELECT region_code, category, count, area_m2 FROM {p}province_stats WHERE level = '{level}'"
PIECES_SQL = 'SELECT run_county, category, area_m2, "PBF_ID" FROM {p}province_result ORDER BY 1, 2, 3, 4'


@pytest.fixture(scope="module")
def province(qgis_app, tmp_path_factory):
    return generate_province(tmp_path_factory.mktemp("province_pg"), size=900, counties=3, seed=11)


@pytest.fixture(scope="module")
def gpkg_run(province, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpkg") / "province.gpkg"
    summary = run_province(ProvinceConfig(PRESET, str(province.folder), str(out), workers=2, engine="pool"))
    assert summary.failed == {} and sorted(summary.done) == province.codes
    return out


@pytest.fixture
def schema():
    import psycopg

    name = f"province_out_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg.connect(PG, autocommit=True) as db:
        db.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def pg_rows(schema: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(PG) as db:
        return db.execute(sql.format(p=f"{schema}.")).fetchall()


def gpkg_rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql.format(p="")).fetchall()


def by_key(rows: list[tuple]) -> dict[tuple[str, str], tuple[int, float]]:
    return {(code, cat): (count, area) for code, cat, count, area in rows}


def same_output(schema: str, gpkg: Path) -> None:
    """Counts equal and areas within 1e-9 at every level; the pieces themselves equal."""
    for level in ("county", "city", "province"):
        mine = by_key(pg_rows(schema, STATS_SQL.replace("{level}", level)))
        reference = by_key(gpkg_rows(gpkg, STATS_SQL.replace("{level}", level)))
        assert mine.keys() == reference.keys() and mine, level
        for key, (count, area) in reference.items():
            assert mine[key][0] == count, (level, key)
            assert math.isclose(mine[key][1], area, rel_tol=1e-9, abs_tol=1e-9), (level, key)
    assert pg_rows(schema, PIECES_SQL) == gpkg_rows(gpkg, PIECES_SQL)


def test_postgis_output_equals_geopackage_output(province, gpkg_run, schema):
    target = f"{PG}?schema={schema}"
    summary = run_province(ProvinceConfig(PRESET, str(province.folder), target, workers=2, engine="pool"))
    assert summary.failed == {} and sorted(summary.done) == province.codes
    same_output(schema, gpkg_run)
    # the province totals are the sums of the county rows (computed here, in SQL, independently)
    sums = pg_rows(
        schema,
        "SELECT category, sum(count), sum(area_m2) FROM {p}province_stats WHERE level = 'county' GROUP BY 1",
    )
    totals = by_key(pg_rows(schema, STATS_SQL.replace("{level}", "province")))
    for category, count, area in sums:
        assert totals[("61", category)][0] == count
        assert math.isclose(totals[("61", category)][1], area, rel_tol=1e-9)
    done = pg_rows(schema, "SELECT county_code FROM {p}province_runs WHERE status = 'done' ORDER BY 1")
    assert [c for (c,) in done] == province.codes
    # a second run on the same schema finds every county finished in the database and changes nothing
    again = run_province(ProvinceConfig(PRESET, str(province.folder), target, workers=2, engine="pool"))
    assert again.done == [] and sorted(again.skipped) == province.codes
    same_output(schema, gpkg_run)


def _done(schema: str) -> int:
    import psycopg

    try:
        with psycopg.connect(PG, connect_timeout=2) as db:
            sql = f"SELECT count(*) FROM {schema}.province_runs WHERE status = 'done'"
            return db.execute(sql).fetchone()[0]
    except psycopg.Error:  # the table does not exist yet
        return 0


def test_postgis_output_interrupted_resumed_equals_uninterrupted(province, gpkg_run, schema):
    target = f"{PG}?schema={schema}"
    cmd = [
        sys.executable,
        "-m",
        "huijiao_plugin.province",
        "--preset",
        PRESET,
        "--source",
        str(province.folder),
    ]
    cmd += ["--output", target, "--workers", "1", "--engine", "pool"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while _done(schema) < 1 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and its worker, mid-run
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    finished = _done(schema)
    assert 1 <= finished < len(province.codes)
    summary = run_province(ProvinceConfig(PRESET, str(province.folder), target, workers=2, engine="pool"))
    assert len(summary.skipped) == finished and len(summary.done) == len(province.codes) - finished
    same_output(schema, gpkg_run)


def test_command_line_and_processing_write_postgis(province, gpkg_run, schema, huijiao_provider):
    import processing

    from huijiao_plugin.core.province.cli import main

    assert (
        main(
            [
                "--preset",
                PRESET,
                "--source",
                str(province.folder),
                "--output",
                f"{PG}?schema={schema}",
                "--engine",
                "pool",
            ]
        )
        == 0
    )
    same_output(schema, gpkg_run)
    second = f"{schema}_alg"
    try:
        result = processing.run(
            "huijiao:provincecompare",
            {
                "PRESET": PRESET,
                "SOURCE": str(province.folder),
                "WORKERS": 2,
                "OUTPUT_PG": f"{PG}?schema={second}",
            },
        )
        assert result["DONE"] == len(province.codes) and result["FAILED"] == 0
        assert "OUTPUT" not in result  # no file to open: the result is in the schema
        same_output(second, gpkg_run)
    finally:
        import psycopg

        with psycopg.connect(PG, autocommit=True) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {second} CASCADE")
