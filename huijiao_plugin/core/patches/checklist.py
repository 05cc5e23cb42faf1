"""外业核查清单: the checklist workbook (xlsx, one row per patch) that goes with a field package or atlas."""

from __future__ import annotations

from pathlib import Path

from huijiao_plugin.core.patches import schema, workflow
from huijiao_plugin.core.patches.store import PatchStore
from huijiao_plugin.core.xlsx import write_table

CHECKLIST_HEADERS = (
    "序号",
    "图斑编号",
    "唯一标识",
    "图斑类型",
    "原因",
    "规则",
    "县级代码",
    "乡级代码",
    "村级代码",
    "面积(平方米)",
    "面积(亩)",
    "中心点经度",
    "中心点纬度",
    "中心点X(北)",
    "中心点Y(东)",
    "状态",
    "核查结果",
    "核查人",
    "核查日期",
    "外业说明",
    "照片数",
    "签字",
)


def checklist_rows(store: PatchStore, patch_uuids: list[str] | None = None) -> list[list]:
    """Rows of the checklist, sorted by patch number."""
    rows = store.patches(with_geometry=False)
    if patch_uuids is not None:
        wanted = set(patch_uuids)
        rows = [r for r in rows if r["uuid"] in wanted]
    rows.sort(key=lambda r: r["number"] or "")
    photo_counts: dict[str, int] = {}
    for attachment in store.attachments():
        photo_counts[attachment["patch_uuid"]] = photo_counts.get(attachment["patch_uuid"], 0) + 1
    out = []
    for n, row in enumerate(rows, start=1):
        out.append(
            [
                n,
                row["number"],
                row["uuid"],
                schema.PATCH_TYPES.get(row["patch_type"] or "", row["patch_type"]),
                row["reason"],
                row["rule_id"],
                row["county_code"],
                row["township_code"],
                row["village_code"],
                row["area_m2"],
                row["area_mu"],
                row["lon"],
                row["lat"],
                row["gk_x"],
                row["gk_y"],
                workflow.status_label(row["status"]),
                workflow.result_label(row["result"]),
                row["verifier"],
                row["verify_date"],
                row["field_notes"],
                photo_counts.get(row["uuid"], 0),
                None,
            ]
        )
    return out


def write_checklist(
    store: PatchStore, path: str | Path, patch_uuids: list[str] | None = None, title: str = ""
) -> Path:
    """Write the checklist xlsx; a second sheet holds totals per type (count, 亩) and the notes on units."""
    rows = checklist_rows(store, patch_uuids)
    totals: dict[str, list[float]] = {}
    for row in rows:
        entry = totals.setdefault(row[3] or "", [0, 0.0])
        entry[0] += 1
        entry[1] += row[10] or 0.0
    info: list[tuple[str, str]] = [("标题", title or "变化图斑外业核查清单"), ("图斑数", str(len(rows)))]
    for type_label, (count, mu) in sorted(totals.items()):
        info.append((f"{type_label} 图斑数 / 面积(亩)", f"{int(count)} / {mu:.2f}"))
    info.append(("面积说明", "椭球面积(CGCS2000)；1 亩 = 2000/3 平方米"))
    info.append(("坐标说明", "经纬度为 CGCS2000 (EPSG:4490)；X 为北坐标、Y 为东坐标(高斯-克吕格)"))
    formats = {9: "#,##0.00", 10: "#,##0.00", 11: "0.000000", 12: "0.000000", 13: "0.000", 14: "0.000"}
    return write_table(path, CHECKLIST_HEADERS, rows, "核查清单", {"说明": info}, formats)
