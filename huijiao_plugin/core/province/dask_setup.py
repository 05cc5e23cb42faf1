"""Dask worker set-up (imported only when Dask runs the province): PyQGIS initialised once per worker
process when the worker starts, in the worker's main thread, not lazily in a task thread."""

from __future__ import annotations

from typing import Any

try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # Dask is optional; the province run falls back to a process pool without it
    WorkerPlugin = object

from huijiao_plugin.core.province.worker import ensure_qgis


class QgisWorkerPlugin(WorkerPlugin):
    name = "huijiao-qgis"

    def setup(self, worker: Any) -> None:
        ensure_qgis()
