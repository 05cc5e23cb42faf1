"""Put benchmark runs made under different QGIS versions side by side (``make bench-compat``).

.venv/bin/python -m benchmarks.versions RUN.json [RUN.json ...]

Each RUN.json is written by ``python -m benchmarks --json``. Rows are matched by (benchmark, metric);
a row missing from a run shows "–". Timings from runs made one after another on the same machine are
comparable as ratios; absolute seconds also carry the machine's load at the time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.__main__ import format_value


def load(paths: list[str]) -> list[dict]:
    return [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]


def side_by_side(runs: list[dict]) -> list[list[str]]:
    keys: list[tuple[str, str]] = []
    values: list[dict[tuple[str, str], object]] = []
    units: dict[tuple[str, str], str] = {}
    for run in runs:
        by_key = {}
        for row in run["rows"]:
            key = (str(row.get("benchmark", "")), str(row["metric"]))
            if key not in units:
                keys.append(key)
                units[key] = str(row.get("unit", ""))
            by_key[key] = row["value"]
        values.append(by_key)
    return [
        [
            bench,
            metric,
            *(format_value(v[(bench, metric)]) if (bench, metric) in v else "–" for v in values),
            units[(bench, metric)],
        ]
        for bench, metric in keys
    ]


def markdown(runs: list[dict]) -> str:
    header = ["benchmark", "metric", *(f"QGIS {run['qgis']}" for run in runs), "unit"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in side_by_side(runs)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    print(markdown(load(paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
