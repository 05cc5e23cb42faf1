"""Province runs (core/province): partition invariant, straddling patches, engines, PostGIS source, resume
after a killed run, broken counties. A synthetic province of 3 counties (tests/datagen/province.py)."""

from __future__ import annotations

import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from qgis.core import QgsFeature, QgsGeometry, QgsRectangle, QgsVectorLayer

from huijiao_plugin.compat import vectorised_shapely
from huijiao_plugin.core.compare.engine import CountyOverlay
from huijiao_plugin.core.compare.presets import run_preset
from huijiao_plugin.core.province.engine import ProvinceConfig, dask_available, run_province
from tests.conftest import VECTORISED_MISSING
from tests.datagen.province import ROLE_LAYERS, generate_province, write_layer

PRESET = "pbfnongrain"
ROLES = {"DLTB": "DLTB", "PBF": "YJJBNTBHTB", "XZQ": "XZQ", "CJDCQ": "CJDCQ"}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def province(qgis_app, tmp_path_factory):
    return generate_province(tmp_path_factory.mktemp("province"), size=900, counties=3, seed=11)


@pytest.fixture(scope="module")
def pool_run(province, tmp_path_factory):
    out = tmp_path_factory.mktemp("pool") / "province.gpkg"
    summary = run_province(ProvinceConfig(PRESET, str(province.folder), str(out), workers=2, engine="pool"))
    assert summary.failed == {} and sorted(summary.done) == province.codes
    return out


def stats(path: Path, level: str) -> dict[tuple[str, str], tuple[int, float]]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT region_code, category, count, area_m2 FROM province_stats WHERE level = ?", (level,)
        ).fetchall()
    return {(code, cat): (count, area) for code, cat, count, area in rows}


def pieces(path: Path) -> list[tuple[str, str, float, str]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT run_county, category, area_m2, PBF_ID FROM province_result ORDER BY 1, 2, 3"
        ).fetchall()


def same(a: dict, b: dict, rounding: bool = False) -> None:
    """Equal counts and areas (1e-9). ``rounding``: the inputs came another way (PostGIS), so the pieces'
    floating-point noise may round a piece's 0.01 m² area the other way: ±0.005 m² per piece."""
    assert a.keys() == b.keys()
    for key in a:
        assert a[key][0] == b[key][0], key
        tolerance = 0.005 * a[key][0] if rounding else 1e-9
        assert math.isclose(a[key][1], b[key][1], rel_tol=1e-9, abs_tol=tolerance), key


def county_run(layers: dict[str, QgsVectorLayer]) -> dict[str, tuple[int, float]]:
    """One county run with the county preset alone, summed per category."""
    result = run_preset(PRESET, CountyOverlay(layers, workers=1))
    out: dict[str, list] = defaultdict(lambda: [0, 0.0])
    for piece in result.pieces:
        out[piece.category][0] += 1
        out[piece.category][1] += piece.area_m2
    return {k: (v[0], v[1]) for k, v in out.items()}


def gpkg_layers(path: Path) -> dict[str, QgsVectorLayer]:
    return {role: QgsVectorLayer(f"{path}|layername={name}", role, "ogr") for role, name in ROLES.items()}


def test_province_equals_sum_of_counties(province, pool_run):
    by_county = stats(pool_run, "county")
    expected_province: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0.0])
    expected_city: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0.0])
    for code in province.codes:
        alone = county_run(gpkg_layers(province.gpkg(code)))
        same({k: v for k, v in by_county.items() if k[0] == code}, {(code, c): v for c, v in alone.items()})
        for category, (count, area) in alone.items():
            for acc in (expected_province[("61", category)], expected_city[(code[:4], category)]):
                acc[0] += count
                acc[1] += area
    assert expected_province, "the synthetic province must give pieces"
    same(stats(pool_run, "province"), {k: tuple(v) for k, v in expected_province.items()})
    same(stats(pool_run, "city"), {k: tuple(v) for k, v in expected_city.items()})
    rows = pieces(pool_run)
    total = sum(v[0] for v in expected_province.values())
    assert len(rows) == total
    # the 2-decimal field of each piece against the exact province sum: within rounding per piece
    assert abs(sum(r[2] for r in rows) - sum(v[1] for v in expected_province.values())) <= 0.005 * total


def _boundary_box(province, folder: Path, a: str, b: str, half: float = 100.0) -> QgsGeometry:
    """A square centred on the boundary between counties ``a`` and ``b`` where no PBF patch lies yet (a new
    patch, not a second copy of one: overlapping patches of one layer are counted once by the presets)."""
    shared = province.areas[a].buffer(1.0, 4).intersection(province.areas[b].buffer(1.0, 4))
    pbf = [
        f.geometry()
        for c in (a, b)
        for f in QgsVectorLayer(f"{folder / (c + '.gpkg')}|layername=YJJBNTBHTB", "PBF", "ogr").getFeatures()
    ]
    line = shared.densifyByDistance(25.0)
    for vertex in line.vertices():
        x, y = vertex.x(), vertex.y()
        box = QgsGeometry.fromRect(QgsRectangle(x - half, y - half, x + half, y + half))
        counties = {c for c in province.codes if box.intersects(province.areas[c])}
        if counties == {a, b} and not any(box.intersects(g) for g in pbf):
            return box
    raise AssertionError("no free place on the boundary")


def test_straddling_patch_counted_once(province, pool_run, tmp_path):
    folder = tmp_path / "counties"
    shutil.copytree(province.folder, folder)
    a, b = province.codes[0], province.codes[1]
    box = _boundary_box(province, folder, a, b)
    # stored once, in county a's GeoPackage, although half of it lies in county b
    path = folder / f"{a}.gpkg"
    pbf = QgsVectorLayer(f"{path}|layername=YJJBNTBHTB", "PBF", "ogr")
    features = list(pbf.getFeatures())
    extra = QgsFeature(pbf.fields())
    extra.setGeometry(box)
    extra["BSM"] = "STRADDLE"
    extra["DLBM"] = "0101"
    del pbf
    write_layer(
        path, "YJJBNTBHTB", QgsVectorLayer(f"{path}|layername=YJJBNTBHTB", "PBF", "ogr"), [*features, extra]
    )
    out = tmp_path / "province.gpkg"
    summary = run_province(ProvinceConfig(PRESET, str(folder), str(out), workers=2, engine="pool"))
    assert summary.failed == {}
    mine = [r for r in pieces(out) if r[3] == "STRADDLE"]
    assert {r[0] for r in mine} == {a, b}, "the straddling patch is compared in both counties"
    # its pieces never overlap (no piece counted twice) and stay inside the patch: planar areas, shapely
    shapely = vectorised_shapely()[0]
    if shapely is None:
        pytest.skip(VECTORISED_MISSING)
    with sqlite3.connect(out) as db:
        blobs = db.execute("SELECT geom FROM province_result WHERE PBF_ID = 'STRADDLE'").fetchall()
    geoms = []
    for (blob,) in blobs:
        header = 8 + {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}[(blob[3] >> 1) & 7]
        geoms.append(shapely.from_wkb(bytes(blob[header:])))
    union = shapely.union_all(geoms)
    assert math.isclose(sum(g.area for g in geoms), union.area, rel_tol=1e-9)
    assert union.difference(shapely.from_wkb(bytes(box.asWkb()))).area < 1e-6
    # every other piece is the clean province's; the patch adds what one run of it over the whole province
    # (every county's DLTB merged) gives
    assert [r for r in pieces(out) if r[3] != "STRADDLE"] == pieces(pool_run)
    merged = {"PBF": QgsVectorLayer(f"MultiPolygon?crs={province.crs_authid}", "PBF", "memory")}
    merged["PBF"].dataProvider().addAttributes(features[0].fields().toList())
    merged["PBF"].updateFields()
    merged["PBF"].dataProvider().addFeatures([extra])
    dltb = [QgsVectorLayer(f"{folder / (c + '.gpkg')}|layername=DLTB", "DLTB", "ogr") for c in province.codes]
    merged["DLTB"] = QgsVectorLayer(f"MultiPolygon?crs={province.crs_authid}", "DLTB", "memory")
    merged["DLTB"].dataProvider().addAttributes(dltb[0].fields().toList())
    merged["DLTB"].updateFields()
    merged["DLTB"].dataProvider().addFeatures([f for layer in dltb for f in layer.getFeatures()])
    alone = county_run(merged)
    added = {
        cat: (
            count - stats(pool_run, "province").get(("61", cat), (0, 0.0))[0],
            area - stats(pool_run, "province").get(("61", cat), (0, 0.0))[1],
        )
        for (_code, cat), (count, area) in stats(out, "province").items()
    }
    assert sum(v[0] for v in added.values()) == len(mine) == sum(v[0] for v in alone.values())
    assert math.isclose(sum(v[1] for v in added.values()), sum(v[1] for v in alone.values()), rel_tol=1e-9)


def test_dask_local_cluster_equals_process_pool(province, pool_run, tmp_path):
    assert dask_available(), "dask[distributed] is a pinned dev dependency: run `make venv`"
    out = tmp_path / "dask.gpkg"
    summary = run_province(ProvinceConfig(PRESET, str(province.folder), str(out), workers=2, engine="dask"))
    assert summary.engine == "dask" and sorted(summary.done) == province.codes
    for level in ("county", "city", "province"):
        same(stats(out, level), stats(pool_run, level))
    assert pieces(out) == pieces(pool_run)


def test_broken_county_reported_others_finish(province, pool_run, tmp_path):
    folder = tmp_path / "counties"
    shutil.copytree(province.folder, folder)
    (folder / "610799.gpkg").write_bytes(b"not a geopackage")
    # a county without DLTB (the preset's required input): XZQ only, far away from the others
    src = QgsVectorLayer(f"{province.gpkg(province.codes[0])}|layername=XZQ", "XZQ", "ogr")
    moved = []
    for f in src.getFeatures():
        g = QgsGeometry(f.geometry())
        g.translate(100000.0, 0.0)
        f.setGeometry(g)
        moved.append(f)
    write_layer(folder / "610798.gpkg", "XZQ", src, moved)
    out = tmp_path / "province.gpkg"
    summary = run_province(ProvinceConfig(PRESET, str(folder), str(out), workers=2, engine="pool"))
    assert sorted(summary.done) == province.codes
    assert set(summary.failed) == {"610798", "610799"}
    assert "DLTB" in summary.failed["610798"]
    assert "610799.gpkg" in summary.failed["610799"]
    with sqlite3.connect(out) as db:
        failed = dict(db.execute("SELECT county_code, error FROM province_runs WHERE status = 'failed'"))
    assert set(failed) == {"610798", "610799"}
    for level in ("county", "province"):
        same(stats(out, level), stats(pool_run, level))


def _done(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.2) as db:
            return db.execute("SELECT count(*) FROM province_runs WHERE status = 'done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_interrupted_run_resumed_equals_uninterrupted(province, pool_run, tmp_path):
    out = tmp_path / "province.gpkg"
    cmd = [
        sys.executable,
        "-m",
        "huijiao_plugin.province",
        "--preset",
        PRESET,
        "--source",
        str(province.folder),
    ]
    cmd += ["--output", str(out), "--workers", "1", "--engine", "pool"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while _done(out) < 1 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and its worker, mid-run
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    finished = _done(out)
    assert 1 <= finished < len(province.codes)
    summary = run_province(ProvinceConfig(PRESET, str(province.folder), str(out), workers=2, engine="pool"))
    assert len(summary.skipped) == finished and len(summary.done) == len(province.codes) - finished
    for level in ("county", "city", "province"):
        same(stats(out, level), stats(pool_run, level))
    assert pieces(out) == pieces(pool_run)


PG = os.environ.get("HUIJIAO_TEST_PG", "")


@pytest.mark.skipif(not PG, reason="HUIJIAO_TEST_PG not set (optional PostgreSQL component)")
def test_postgis_source_equals_folder(province, pool_run, tmp_path):
    schema = f"province_test_{os.getpid()}"
    subprocess.run(["psql", PG, "-qc", f"CREATE SCHEMA {schema}"], check=True)
    try:
        for n, code in enumerate(province.codes):
            for name in ROLE_LAYERS:
                subprocess.run(
                    ["ogr2ogr", "-f", "PostgreSQL", f"PG:{_libpq(PG)}", str(province.gpkg(code))]
                    + [
                        "-sql",
                        f"SELECT *, '{code}' AS county_code FROM \"{name}\"",
                        "-nln",
                        f"{schema}.{name}",
                    ]
                    + ["-nlt", "MULTIPOLYGON", "-lco", "GEOMETRY_NAME=geom"]
                    + (["-append"] if n else []),
                    check=True,
                )
        out = tmp_path / "pg.gpkg"
        source = f"{PG}?schema={schema}"
        summary = run_province(ProvinceConfig(PRESET, source, str(out), workers=2, engine="pool"))
        assert summary.failed == {} and sorted(summary.done) == province.codes
        for level in ("county", "city", "province"):
            same(stats(out, level), stats(pool_run, level), rounding=True)
        assert len(pieces(out)) == len(pieces(pool_run))
    finally:
        subprocess.run(["psql", PG, "-qc", f"DROP SCHEMA {schema} CASCADE"], check=True)


def _libpq(url: str) -> str:
    from urllib.parse import urlparse

    u = urlparse(url)
    db = u.path.lstrip("/")
    return f"host={u.hostname} port={u.port or 5432} dbname={db} user={u.username} password={u.password}"


def test_processing_algorithm_equals_engine_run(province, pool_run, huijiao_provider, tmp_path):
    import processing

    out = tmp_path / "alg.gpkg"
    xlsx = tmp_path / "alg.xlsx"
    params = {
        "PRESET": PRESET,
        "SOURCE": str(province.folder),
        "WORKERS": 2,
        "OUTPUT": str(out),
        "XLSX": str(xlsx),
    }
    result = processing.run("huijiao:provincecompare", params)
    assert result["DONE"] == len(province.codes) and result["FAILED"] == 0
    for level in ("county", "city", "province"):
        same(stats(out, level), stats(pool_run, level))
    # the workbook: one row per statistics row, the province rows under 省级
    import openpyxl

    sheet = openpyxl.load_workbook(xlsx).active
    levels = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert levels.count("省级") == len(stats(pool_run, "province"))
    assert levels.count("县级") == len(stats(pool_run, "county"))


def test_killed_worker_retried_once(province, pool_run, tmp_path):
    import psutil  # installed with dask[distributed]

    killed: list[int] = []
    retried: list[str] = []

    def kill_worker_mid_county(code: str, state: str, message: str) -> None:
        if state == "retry":
            retried.append(code)
        if state == "running" and not killed:
            # the worker has started the county: kill it now (no timing guess: as soon as it is found)
            def later() -> None:
                end = time.monotonic() + 60
                while not killed and time.monotonic() < end:
                    for child in psutil.Process().children():
                        try:
                            worker = "spawn_main" in " ".join(child.cmdline())
                        except psutil.Error:  # an exited process
                            continue
                        if worker and not killed:
                            killed.append(child.pid)
                            os.kill(child.pid, signal.SIGKILL)
                    time.sleep(0.01)

            import threading

            threading.Thread(target=later, daemon=True).start()

    out = tmp_path / "province.gpkg"
    summary = run_province(
        ProvinceConfig(PRESET, str(province.folder), str(out), workers=1, engine="pool"),
        kill_worker_mid_county,
    )
    assert killed, "no worker process was killed"
    assert retried, "the county of the killed worker was not resubmitted"
    assert summary.failed == {} and sorted(summary.done) == province.codes
    same(stats(out, "province"), stats(pool_run, "province"))


def test_command_line_with_preset_parameters(province, pool_run, tmp_path, capsys):
    from huijiao_plugin.core.province.cli import main

    out = tmp_path / "cli.gpkg"
    argv = ["--preset", PRESET, "--source", str(province.folder), "--output", str(out), "--engine", "pool"]
    assert main([*argv, "--workers", "2", "--param", "MIN_AREA=5000"]) == 0
    assert "engine=pool done=3 skipped=0 failed=0" in capsys.readouterr().out
    # the larger MIN_AREA moves area into within_tolerance; all categories still add up to the same union
    mine, reference = stats(out, "province"), stats(pool_run, "province")
    assert mine[("61", "within_tolerance")][1] > reference[("61", "within_tolerance")][1]
    total = sum(v[1] for v in reference.values())
    assert math.isclose(sum(v[1] for v in mine.values()), total, rel_tol=1e-9)
