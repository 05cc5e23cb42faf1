"""Roll-up of a province run's county statistics: per city (市, the first 4 digits of the county code) and for
the province, as exact sums of the county rows (the partition invariant: sum of counties = province total),
and the formatted workbook through ``core.xlsx``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from huijiao_plugin.core.compare.statistics import StatRow
from huijiao_plugin.core.xlsx import write_statistics_xlsx

Row = tuple[str, str, str, str, str, int, float, float | None]
LEVEL_LABELS = {"county": "县级", "city": "市级", "province": "省级"}


def rollup(county_rows: Sequence[dict[str, Any]], province_code: str = "") -> list[Row]:
    """City and province rows from county rows (dicts with region_code, rule_id, category, category_name,
    count, area_m2). The HSF coverage ratio is recomputed from the summed covered / total areas."""
    sums: dict[tuple[str, str, str, str], list[Any]] = {}
    for row in county_rows:
        code = str(row["region_code"])
        for level, region in (("city", code[:4]), ("province", province_code or code[:2])):
            key = (level, region, row["rule_id"], row["category"])
            acc = sums.setdefault(key, [row["category_name"], 0, 0.0])
            acc[1] += int(row["count"] or 0)
            acc[2] += float(row["area_m2"] or 0.0)
    out: list[Row] = []
    for (level, region, rule_id, category), (name, count, area) in sorted(sums.items()):
        ratio = None
        if category == "coverage" and area > 0:
            covered = sums.get((level, region, rule_id, "covered"), [None, 0, 0.0])[2]
            ratio = 100.0 * covered / area
        out.append((level, region, rule_id, category, name, count, area, ratio))
    return out


def stat_rows(county_rows: Sequence[dict[str, Any]], rolled: Sequence[Row]) -> list[StatRow]:
    rows = [
        StatRow(
            LEVEL_LABELS["county"],
            str(r["region_code"]),
            "",
            r["rule_id"],
            r["category"],
            r["category_name"],
            int(r["count"] or 0),
            float(r["area_m2"] or 0.0),
            r.get("ratio_pct"),
        )
        for r in sorted(county_rows, key=lambda r: (r["region_code"], r["rule_id"], r["category"]))
    ]
    for level, region, rule_id, category, name, count, area, ratio in rolled:
        rows.append(StatRow(LEVEL_LABELS[level], region, "", rule_id, category, name, count, area, ratio))
    return rows


def write_xlsx(path: str | Path, county_rows: Sequence[dict[str, Any]], rolled: Sequence[Row]) -> Path:
    return write_statistics_xlsx(path, stat_rows(county_rows, rolled))
