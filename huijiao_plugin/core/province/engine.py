"""A province run: discover the counties, skip the finished ones, run the rest in worker processes and stream
each finished county into the output GeoPackage.

Engines: Dask distributed (a ``LocalCluster`` of ``workers`` processes with a memory limit each, or the
scheduler at ``scheduler``), else — Dask not installed — a ``ProcessPoolExecutor`` (logged). A worker killed
mid-county is retried once (Dask: ``allowed-failures`` = 1; the pool: the county is resubmitted once).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from huijiao_plugin.core.compare.presets import PRESETS
from huijiao_plugin.core.province.output import ProvinceOutput, parts_dir
from huijiao_plugin.core.province.partition import neighbours
from huijiao_plugin.core.province.rollup import rollup, write_xlsx
from huijiao_plugin.core.province.sources import SourceError, discover
from huijiao_plugin.core.province.worker import CountyOutcome, CountyTask, run_county

LOG = logging.getLogger(__name__)
MEMORY_LIMIT = "2GB"  # per worker: the bound for a 250k-patch county
DASK_CONFIG = {
    "distributed.scheduler.allowed-failures": 1,  # a killed worker's county is retried once
    "distributed.worker.multiprocessing-method": "spawn",
    # one long Python task per worker: the statistical profiler's 10 ms stack sampling takes the GIL from
    # the county's run (measured: +12 % task CPU) and nobody reads it; the monitors need not poll so often
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.worker.memory.monitor-interval": "1s",
}
# (county code, state, message): state is queued / running / done / failed / skipped / retry
Progress = Callable[[str, str, str], None]


@dataclass
class ProvinceConfig:
    preset: str
    source: str
    output: str
    values: dict[str, Any] = field(default_factory=dict)  # the preset's parameters by name (MIN_AREA, …)
    profile_path: str = ""
    workers: int = 0  # 0 = the number of cores
    scheduler: str = ""  # Dask scheduler address; empty = LocalCluster
    engine: str = "auto"  # auto | dask | pool
    xlsx: str = ""
    code_column: str = "county_code"  # PostGIS sources
    counties: list[str] = field(default_factory=list)  # restrict to these codes (empty = all)
    # where workers leave finished counties' part files (a path shared with remote Dask workers);
    # empty = beside a GeoPackage output, or a temp folder for a PostgreSQL output
    parts: str = ""


@dataclass
class ProvinceSummary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    engine: str = ""
    canceled: bool = False
    peak_mb: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)


def dask_available() -> bool:
    try:
        import distributed  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def run_province(
    config: ProvinceConfig, progress: Progress | None = None, canceled: Callable[[], bool] | None = None
) -> ProvinceSummary:
    progress = progress or (lambda code, state, message: None)
    canceled = canceled or (lambda: False)
    found = discover(config.source, config.code_column)
    counties = [c for c in found.counties if not config.counties or c.code in config.counties]
    if config.preset not in PRESETS:
        raise SourceError(f"未知的比对规则: {config.preset}")
    params = {"values": config.values, "profile": config.profile_path, "source": config.source}
    out = ProvinceOutput(config.output, config.preset, params)
    summary = ProvinceSummary()
    for broken in found.broken:
        summary.failed[broken.code] = broken.reason
        out.add_county(CountyOutcome(broken.code, False, broken.reason))
        progress(broken.code, "failed", broken.reason)
    finished = out.finished()
    part_dir = config.parts or parts_dir(config.output)
    tasks = []
    for county in counties:
        if county.code in finished:
            summary.skipped.append(county.code)
            progress(county.code, "skipped", "")
            continue
        # neighbours from every county of the source, also when only some counties run
        areas = neighbours(county, found.counties)
        others = {c.code: c.layers for c in found.counties if c.code in areas and c.code != county.code}
        tasks.append(
            CountyTask(
                county.code,
                config.preset,
                county.layers,
                others,
                areas,
                config.values,
                config.profile_path,
                part_dir,
            )
        )
        progress(county.code, "queued", "")
    # the largest counties first: the last county to finish is a small one, so no worker idles long at the
    # end (with 8 unequal counties on 2 workers in submission order the tail cost up to one large county)
    tasks.sort(key=lambda t: (-_weight(t.layers), t.code))

    def finish(outcome: CountyOutcome) -> None:
        out.add_county(outcome)
        summary.seconds[outcome.code] = outcome.seconds
        summary.peak_mb[outcome.code] = outcome.peak_mb
        summary.cpu_seconds[outcome.code] = outcome.cpu_seconds
        if outcome.ok:
            summary.done.append(outcome.code)
            progress(outcome.code, "done", f"{outcome.count} pieces")
        else:
            summary.failed[outcome.code] = outcome.error
            progress(outcome.code, "failed", outcome.error)

    workers = config.workers or os.cpu_count() or 1
    use_dask = config.engine == "dask" or (config.engine == "auto" and (config.scheduler or dask_available()))
    if tasks:
        if use_dask:
            summary.engine = "dask"
            summary.canceled = _run_dask(tasks, workers, config.scheduler, finish, progress, canceled)
        else:
            if config.engine == "auto":
                LOG.info("Dask is not installed: counties run in a local process pool")
            summary.engine = "pool"
            summary.canceled = _run_pool(tasks, workers, finish, progress, canceled)
    county_rows = out.county_stats()
    rolled = rollup(county_rows)
    out.write_rollup(rolled)
    if config.xlsx:
        write_xlsx(config.xlsx, county_rows, rolled)
    out.close()
    if os.path.isdir(part_dir) and not os.listdir(part_dir):
        os.rmdir(part_dir)
    return summary


def _weight(layers: dict[str, tuple[str, str]]) -> float:
    """A county's expected work: the size of its DLTB (bytes of a county GeoPackage, else feature count)."""
    provider, uri = layers.get("DLTB") or next(iter(layers.values()), ("", ""))
    if provider == "ogr":
        try:
            return float(os.path.getsize(uri.split("|")[0]))
        except OSError:
            return 0.0
    if not provider:
        return 0.0
    from huijiao_plugin.core.province.sources import open_layer  # noqa: PLC0415

    return float(max(0, open_layer(provider, uri).featureCount())) * 1000.0


def _python() -> str:
    """The Python interpreter for worker processes (inside QGIS ``sys.executable`` is the QGIS binary)."""
    name = Path(sys.executable).name.lower()
    if name.startswith("python"):
        return sys.executable
    return shutil.which("python3") or shutil.which("python") or sys.executable


def _run_pool(
    tasks: list[CountyTask],
    workers: int,
    finish: Callable[[CountyOutcome], None],
    progress: Progress,
    canceled: Callable[[], bool],
) -> bool:
    ctx = multiprocessing.get_context("spawn")  # never fork a process that runs QGIS
    ctx.set_executable(_python())
    deaths = {t.code: 0.0 for t in tasks}  # times a worker died while running the county
    todo = list(tasks)
    while todo:
        pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx)
        running: dict[Future, CountyTask] = {pool.submit(run_county, task): task for task in todo}
        todo = []
        started: set[str] = set()
        while running:
            if canceled():
                pool.shutdown(wait=False, cancel_futures=True)
                return True
            for fut, task in running.items():
                if fut.running() and task.code not in started:
                    started.add(task.code)
                    progress(task.code, "running", "")
            done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                task = running.pop(fut)
                try:
                    outcome = fut.result()
                except BrokenProcessPool:  # a worker died: the pool is gone, every unfinished county returns
                    # a queued county counts a quarter: a pool that never starts still ends
                    deaths[task.code] += 1 if task.code in started else 0.25
                    if deaths[task.code] >= 2:
                        finish(CountyOutcome(task.code, False, "工作进程两次中断（可能内存不足）"))
                    else:
                        progress(task.code, "retry", "worker process died")
                        todo.append(task)
                    continue
                finish(outcome)
        pool.shutdown(wait=True)
        if todo:
            LOG.warning("A worker process died: %s county(ies) resubmitted", len(todo))
    return False


def _run_dask(
    tasks: list[CountyTask],
    workers: int,
    scheduler: str,
    finish: Callable[[CountyOutcome], None],
    progress: Progress,
    canceled: Callable[[], bool],
) -> bool:
    import dask  # noqa: PLC0415
    from distributed import Client, LocalCluster, as_completed  # noqa: PLC0415
    from distributed.scheduler import KilledWorker  # noqa: PLC0415

    with dask.config.set(DASK_CONFIG):
        cluster = None
        if scheduler:
            client = Client(scheduler)
        else:
            multiprocessing.set_executable(_python())
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                memory_limit=MEMORY_LIMIT,
                dashboard_address=None,
            )
            client = Client(cluster)
        from huijiao_plugin.core.province.dask_setup import QgisWorkerPlugin  # noqa: PLC0415

        try:
            client.register_plugin(QgisWorkerPlugin())
            futures = {}
            for rank, task in enumerate(tasks):  # tasks come largest first: the same order on the cluster
                key = f"county-{task.code}-{uuid.uuid4().hex}"
                fut = client.submit(run_county, task, key=key, pure=False, priority=len(tasks) - rank)
                futures[fut] = task
            stream = as_completed(list(futures))
            while not stream.is_empty():
                if canceled():
                    client.cancel(list(futures))
                    return True
                batch = stream.next_batch(block=False)
                if not batch:
                    time.sleep(0.2)
                for fut in batch:
                    task = futures[fut]
                    try:
                        finish(fut.result())
                    except KilledWorker:
                        finish(CountyOutcome(task.code, False, "工作进程两次中断（可能内存不足）"))
                    except Exception as exc:  # a county's error outside run_county's own handling
                        finish(CountyOutcome(task.code, False, f"{type(exc).__name__}: {exc}"))
            return False
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def summary_dict(summary: ProvinceSummary) -> dict[str, Any]:
    return asdict(summary)
