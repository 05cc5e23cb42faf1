"""Command line of a province run, for a server without a desktop::

    python -m huijiao_plugin.province --preset pbfnongrain --source DIR_OR_PG_URI --output GPKG_OR_PG_URI \
        [--workers N] [--scheduler tcp://host:8786] [--engine auto|dask|pool] [--xlsx stats.xlsx] \
        [--param MIN_AREA=0.5 --param NOISE_WIDTH=1.0 …] [--rules profile.json] [--county 610402 …]

``--output`` is a GeoPackage or ``postgresql://user:pw@host:port/db?schema=name`` (tables in that schema).
``--param`` takes the preset's own parameters by their Processing names (see ``--list-params``).
"""

from __future__ import annotations

import argparse
import logging
import sys

from huijiao_plugin.core.province.worker import ensure_qgis


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m huijiao_plugin.province", description="Province run")
    p.add_argument("--preset", required=True, help="county preset id, e.g. pbfnongrain")
    p.add_argument("--source", required=True, help="folder of county GeoPackages or a PostGIS URI")
    p.add_argument(
        "--output",
        required=True,
        help="output GeoPackage or postgresql://…?schema=name (re-running resumes it)",
    )
    p.add_argument(
        "--parts", default="", help="folder for finished counties' part files (shared with workers)"
    )
    p.add_argument("--workers", type=int, default=0, help="worker processes (0 = cores)")
    p.add_argument("--scheduler", default="", help="Dask scheduler address (default: a LocalCluster)")
    p.add_argument("--engine", default="auto", choices=("auto", "dask", "pool"))
    p.add_argument("--xlsx", default="", help="statistics workbook")
    p.add_argument("--rules", default="", help="rule profile JSON")
    p.add_argument("--code-column", default="county_code", help="county code column of PostGIS tables")
    p.add_argument("--county", action="append", default=[], help="only this county (repeatable)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a preset parameter")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ensure_qgis()
    from huijiao_plugin.core.province.engine import ProvinceConfig, run_province  # noqa: PLC0415

    values = {}
    for item in args.param:
        name, _, value = item.partition("=")
        values[name.strip().upper()] = value.strip()
    config = ProvinceConfig(
        preset=args.preset,
        source=args.source,
        output=args.output,
        values=values,
        profile_path=args.rules,
        workers=args.workers,
        scheduler=args.scheduler,
        engine=args.engine,
        xlsx=args.xlsx,
        code_column=args.code_column,
        counties=args.county,
        parts=args.parts,
    )

    def progress(code: str, state: str, message: str) -> None:
        print(f"{code} {state} {message}".rstrip(), flush=True)

    summary = run_province(config, progress)
    print(
        f"engine={summary.engine} done={len(summary.done)} skipped={len(summary.skipped)} "
        f"failed={len(summary.failed)}",
        flush=True,
    )
    for code, reason in sorted(summary.failed.items()):
        print(f"FAILED {code}: {reason.splitlines()[0] if reason else ''}", flush=True)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
