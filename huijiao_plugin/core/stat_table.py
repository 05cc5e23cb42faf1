"""The statistics table of a comparison as people read it, one definition for the panel and the xlsx:
names rather than codes (区域 "名称（代码）", the preset's Chinese name), the area in the user's unit with the
unit in the header, a 比例 column always filled and a 合计 row."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from huijiao_plugin.core.compare.presets import PRESETS
from huijiao_plugin.core.compare.statistics import LEVEL_NAMES, StatRow
from huijiao_plugin.core.units import UNIT_EXCEL_FORMATS, area_header, rounded_area
from huijiao_plugin.core.xlsx import TOTAL_LABEL, write_table
from huijiao_plugin.toolbelt.i18n import tr

AREA_NOTE = "面积为 2000 国家大地坐标系椭球面积；1 亩 = 2000/3 平方米，1 公顷 = 10000 平方米"
COUNT_COLUMN, AREA_COLUMN, RATIO_COLUMN = 4, 5, 6


def stat_headers(unit: str) -> list[str]:
    return ["级别", "区域", "规则", "类别", "图斑数", area_header(unit), "比例（%）"]


def rule_name(rule_id: str) -> str:
    """``huijiao:hsfnotinpbf`` → the preset's name in the user's language."""
    spec = PRESETS.get(rule_id.split(":")[-1])
    return tr(spec.title) if spec is not None else rule_id


def region_text(name: str, code: str) -> str:
    return f"{name}（{code}）" if name and code else name or code


def stat_table(rows: Sequence[StatRow], unit: str) -> tuple[list[str], list[list[Any]], list[Any]]:
    """(headers, body rows, 合计 row). 比例 is the row's share of the summed area unless the row carries its
    own ratio (coverage rows, which stay out of the sums)."""
    counted = [r for r in rows if r.ratio_pct is None]
    total_m2 = sum(r.area_m2 for r in counted)
    body = []
    for row in rows:
        ratio = row.ratio_pct
        if ratio is None:
            ratio = 100.0 * row.area_m2 / total_m2 if total_m2 > 0 else 0.0
        body.append(
            [
                LEVEL_NAMES.get(row.level, row.level),
                region_text(row.region_name, row.region_code),
                rule_name(row.rule_id),
                row.category_name,
                row.count,
                rounded_area(row.area_m2, unit),
                round(ratio, 2),
            ]
        )
    total = [
        TOTAL_LABEL,
        "",
        "",
        "",
        sum(r.count for r in counted),
        rounded_area(total_m2, unit),
        100.0 if counted else 0.0,
    ]
    return stat_headers(unit), body, total


def write_stat_table_xlsx(
    path: str | Path, rows: Sequence[StatRow], unit: str, results: Sequence[Any] = ()
) -> Path:
    """The panel's table (same headers, 合计 row last) plus a 规则参数 sheet in words."""
    headers, body, total = stat_table(rows, unit)
    params = rule_parameter_rows(results)
    formats = {COUNT_COLUMN: "#,##0", AREA_COLUMN: UNIT_EXCEL_FORMATS[unit], RATIO_COLUMN: "0.00"}
    return write_table(path, headers, [*body, total], "比对统计", {"规则参数": params}, formats)


def rule_parameter_rows(results: Sequence[Any]) -> list[tuple[str, str]]:
    """The 规则参数 sheet in words, as on the atlas pages: per rule its name, what it finds with its
    parameters by their labels, the datasets compared by Chinese name and version; never ids or JSON."""
    from huijiao_plugin.core.patches.atlas_text import inputs_description, rule_description

    rows: list[tuple[str, str]] = []
    for result in results:
        name = rule_name(result.rule_id)
        rows.append(("规则", name))
        rows.append((f"{name}：说明", rule_description(result.rule_id, result.rule_params or {})))
        rows.append((f"{name}：比对数据", inputs_description(result.inputs or {})))
    rows.append(("面积说明", AREA_NOTE))
    return rows
