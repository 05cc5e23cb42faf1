"""Province run (core/province): generated counties run one by one, then all together in a process pool and
on a Dask LocalCluster, both with 2 workers.

Data: ``tests.datagen.province`` splits one generated county of COUNTIES × SIZE DLTB patches into COUNTIES
counties (default 8 × 250 000, the issue's benchmark; ``--size`` sets SIZE, ``HUIJIAO_BENCH_COUNTIES`` sets
COUNTIES), cached in the temp directory. Preset: ``HUIJIAO_BENCH_PRESET`` (default pbfnongrain).
Printed: the single-county wall times and their sum, each parallel run's wall time, its ratio to
(sum of single-county times) / workers (target ≤ 1.1), the scaling efficiency
(sum of single times / (workers × wall)), the workers' CPU time alone and side by side (the parallel run's
own overhead, which other jobs on a shared machine do not distort), the load average, the peak RSS of the
parent and of the largest worker (target < 2 GB each), and the extrapolation to a 5 M-patch province at the
measured throughput (wall clock) and at the measured CPU time per patch on an idle machine.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from huijiao_plugin.core.province.engine import ProvinceConfig, dask_available, run_province

WORKERS = 2
PROVINCE_PATCHES = 5_000_000


def _province(size: int, counties: int, seed: int) -> tuple[Path, list[str]]:
    from tests.datagen.province import CODES, generate_province

    base = Path(tempfile.gettempdir()) / f"huijiao_bench_province_{counties}x{size}_{seed}"
    codes = list(CODES[:counties])
    if not all((base / "counties" / f"{c}.gpkg").exists() for c in codes):
        shutil.rmtree(base / "counties", ignore_errors=True)  # a finished source county is reused
        generate_province(base, size=size * counties, counties=counties, seed=seed)
    return base / "counties", codes


def _run(folder: Path, out: Path, engine: str, workers: int, counties: list[str] | None = None) -> tuple:
    out.unlink(missing_ok=True)
    preset = os.environ.get("HUIJIAO_BENCH_PRESET", "pbfnongrain")
    config = ProvinceConfig(
        preset, str(folder), str(out), workers=workers, engine=engine, counties=counties or []
    )
    start = time.perf_counter()
    summary = run_province(config)
    wall = time.perf_counter() - start
    if summary.failed:
        raise RuntimeError(f"failed counties: {summary.failed}")
    return wall, summary


def _row(rows: list[dict], metric: str, value: float, unit: str) -> None:
    rows.append({"metric": metric, "value": value, "unit": unit})
    print(f"province: {metric}: {value:,.3f} {unit}", flush=True)


def _load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def run(args) -> list[dict]:
    size = args.size or 250_000
    counties = int(os.environ.get("HUIJIAO_BENCH_COUNTIES", "8"))
    patches = size * counties
    rows: list[dict] = []
    started = time.perf_counter()
    folder, codes = _province(size, counties, args.seed)
    _row(
        rows,
        f"province data ({counties} counties, {size:,} patches each)",
        time.perf_counter() - started,
        "s",
    )
    print(f"province: load average (1/5/15 min) before the runs: {_load()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="huijiao_bench_province_"))
    single, single_cpu = {}, {}
    for code in codes:
        wall, summary = _run(folder, work / f"single_{code}.gpkg", "pool", 1, [code])
        single[code], single_cpu[code] = wall, summary.cpu_seconds[code]
        _row(rows, f"county {code} alone (1 worker)", wall, "s")
        _row(rows, f"county {code} alone: worker CPU time", single_cpu[code], "s")
        _row(rows, f"county {code} alone: worker peak RSS", summary.peak_mb[code], "MB")
    total, total_cpu = sum(single.values()), sum(single_cpu.values())
    _row(rows, "sum of single-county times", total, "s")
    _row(rows, "sum of single-county worker CPU times", total_cpu, "s")
    print(f"province: load average after the single runs: {_load()}", flush=True)
    for engine in ["pool"] + (["dask"] if dask_available() else []):
        wall, summary = _run(folder, work / f"{engine}.gpkg", engine, WORKERS)
        name = "process pool" if engine == "pool" else "Dask LocalCluster"
        cpu = sum(summary.cpu_seconds.values())
        _row(rows, f"{name}, {WORKERS} workers: wall time", wall, "s")
        _row(rows, f"{name}: wall / (sum single / workers) (target <= 1.1)", wall / (total / WORKERS), "")
        _row(rows, f"{name}: scaling efficiency", total / (WORKERS * wall), "")
        # the same counties' CPU time inside the workers, alone vs side by side: what the parallel run adds
        # itself, independent of other jobs on a shared machine (which slow the wall clock only)
        _row(rows, f"{name}: workers' CPU time", cpu, "s")
        _row(rows, f"{name}: CPU efficiency (single CPU / parallel CPU)", total_cpu / cpu, "")
        _row(rows, f"{name}: peak RSS of the largest worker", max(summary.peak_mb.values()), "MB")
        per_patch = wall / patches
        _row(
            rows,
            f"{name}: extrapolated 5 M-patch province (wall)",
            per_patch * PROVINCE_PATCHES / 60.0,
            "min",
        )
        _row(
            rows,
            f"{name}: extrapolated 5 M-patch province (CPU / {WORKERS}, idle machine)",
            cpu / patches * PROVINCE_PATCHES / WORKERS / 60.0,
            "min",
        )
        print(f"province: load average after the {name} run: {_load()}", flush=True)
    _row(rows, "parent process peak RSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "MB")
    shutil.rmtree(work, ignore_errors=True)
    return rows
