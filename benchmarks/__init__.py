"""Micro-benchmarks of huijiao_plugin hot paths: ``python -m benchmarks [--only NAME] [--size N]``.

Each ``benchmarks/bench_<name>.py`` module defines ``run(args) -> list[dict]``; every dict is one row of the
printed table with the keys ``metric``, ``value`` and ``unit``.
"""

from __future__ import annotations
