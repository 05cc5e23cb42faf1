"""Waiting in GUI tests for work the panels run in QGIS's task manager."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from qgis.PyQt.QtCore import QCoreApplication


def wait_until(done: Callable[[], bool], timeout: float = 60.0, what: str = "the task") -> None:
    """Process events until ``done()`` (the result handed back on the main thread), then a few rounds more."""
    end = time.time() + timeout
    while not done():
        QCoreApplication.processEvents()
        time.sleep(0.01)
        assert time.time() < end, f"{what} did not finish in {timeout} s"
    for _ in range(5):
        QCoreApplication.processEvents()


def china_today() -> dt.date:
    """The exchange server's today: deadlines are counted in China time (UTC+8), not the machine's."""
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
