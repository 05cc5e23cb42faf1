"""Run every ``benchmarks/bench_*.py`` module (or one, ``--only area``) and print one table.

.venv/bin/python -m benchmarks [--only NAME] [--size N] [--gpkg PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def discover() -> list[str]:
    return sorted(p.stem[len("bench_") :] for p in HERE.glob("bench_*.py"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only", action="append", help="run only this benchmark (repeatable): " + ", ".join(discover())
    )
    parser.add_argument(
        "--size", type=int, default=None, help="problem size (each benchmark has its own default)"
    )
    parser.add_argument("--gpkg", default=None, help="input GeoPackage for benchmarks that read polygons")
    parser.add_argument("--seed", type=int, default=20240601, help="random seed of generated data")
    parser.add_argument(
        "--json", default=None, help="also write the rows and the QGIS version here (benchmarks.versions)"
    )
    return parser.parse_args(argv)


def format_value(value: object) -> str:
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e7:
            return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.0f}"
        return f"{value:.3e}"
    return str(value)


def print_table(rows: list[dict]) -> None:
    headers = ("benchmark", "metric", "value", "unit")
    table = [
        [str(r.get("benchmark", "")), str(r["metric"]), format_value(r["value"]), str(r.get("unit", ""))]
        for r in rows
    ]
    widths = [
        max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(c.rjust(w) if i == 2 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = discover()
    selected = args.only or names
    unknown = sorted(set(selected) - set(names))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(names)}", file=sys.stderr)
        return 2

    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    rows: list[dict] = []
    try:
        for name in selected:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            started = time.perf_counter()
            for row in module.run(args):
                rows.append({"benchmark": name, **row})
            rows.append(
                {
                    "benchmark": name,
                    "metric": "wall time of the benchmark",
                    "value": time.perf_counter() - started,
                    "unit": "s",
                }
            )
    finally:
        print_table(rows)
        if args.json:
            from qgis.core import Qgis

            Path(args.json).write_text(
                json.dumps(
                    {"qgis": Qgis.version().split("-")[0], "rows": rows}, ensure_ascii=False, indent=1
                ),
                encoding="utf-8",
            )
        app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
