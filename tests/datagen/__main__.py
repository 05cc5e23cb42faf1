"""CLI: ``python -m tests.datagen --out DIR --size N --seed S [--formats gpkg,shp,gdb] [--year 2023]``."""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.datagen", description="Synthetic 三调 county generator"
    )
    parser.add_argument("--out", required=True, help="output directory (county.gpkg, shp/DLTB.shp, DLTB.gdb)")
    parser.add_argument("--size", type=int, default=1500, help="number of DLTB polygons (200 … 500000)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--year", type=int, default=2023, help="year N of DLTB (DLTB_N1 is year N+1)")
    parser.add_argument("--formats", default="gpkg,shp,gdb", help="comma-separated subset of gpkg,shp,gdb")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication.instance()
    own_app = app is None
    if own_app:
        app = QgsApplication([], False)
        app.initQgis()
    from tests.datagen import generate_county

    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    if "gpkg" not in formats:
        formats = ("gpkg", *formats)
    t = time.perf_counter()
    result = generate_county(args.out, size=args.size, seed=args.seed, formats=formats, year=args.year)
    elapsed = time.perf_counter() - t
    if not args.quiet:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(f"county {result.county_code} {result.county_name}, year {result.year}/{result.year + 1}")
        print(
            f"wrote {result.gpkg}"
            + (f", {result.shp}" if result.shp else "")
            + (f", {result.gdb}" if result.gdb else "")
        )
        print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
        print(f"total {elapsed:.1f}s, peak RSS {rss:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
