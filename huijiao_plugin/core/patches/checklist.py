"""外业核查清单: the checklist workbook (xlsx, one row per patch) that goes with a field package or atlas.
Regions by name with the code in brackets (names from the township/village layers given or in the project,
counties from the catalog), the rule by its name: never a bare code or rule id."""

from __future__ import annotations

from pathlib import Path

from huijiao_plugin.core.patches import schema, workflow
from huijiao_plugin.core.patches.atlas_text import region_label, region_names
from huijiao_plugin.core.patches.store import PatchStore
from huijiao_plugin.core.settings import AREA_UNIT_MU
from huijiao_plugin.core.stat_table import rule_name
from huijiao_plugin.core.units import UNIT_EXCEL_FORMATS, area_header, area_text, rounded_area
from huijiao_plugin.core.xlsx import XlsxError, write_table

CHECKLIST_HEADERS = (
    "序号",
    "图斑编号",
    "唯一标识",
    "图斑类型",
    "原因",
    "规则",
    "县级行政区",
    "乡镇",
    "村",
    "面积（平方米）",
    "面积（亩）",  # replaced by the chosen unit: checklist_headers()
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


AREA_COLUMN = 10  # the area in the chosen unit (column 9 is always m², the stored TBMJ)


def checklist_headers(unit: str = AREA_UNIT_MU) -> tuple[str, ...]:
    headers = list(CHECKLIST_HEADERS)
    headers[AREA_COLUMN] = area_header(unit)
    return tuple(headers)


def checklist_rows(
    store: PatchStore,
    patch_uuids: list[str] | None = None,
    unit: str = AREA_UNIT_MU,
    context_layers: list | None = None,
) -> list[list]:
    """Rows of the checklist, sorted by patch number; the area in m² and in ``unit``; regions as
    名称（代码） with names from ``context_layers`` and the project's region layers."""
    names = region_names(context_layers or [])
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
                rule_name(row["rule_id"]) if row["rule_id"] else "",
                region_label(row["county_code"] or "", names),
                region_label(row["township_code"] or "", names),
                region_label(row["village_code"] or "", names),
                row["area_m2"],
                rounded_area(row["area_m2"] or 0.0, unit),
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
    store: PatchStore,
    path: str | Path,
    patch_uuids: list[str] | None = None,
    title: str = "",
    unit: str = AREA_UNIT_MU,
    context_layers: list | None = None,
) -> Path:
    """Write the checklist xlsx; a second sheet holds totals per type (count, 亩) and the notes on units.
    openpyxl is used when installed (styled workbook), else GDAL's XLSX driver."""
    rows = checklist_rows(store, patch_uuids, unit, context_layers)
    info = checklist_info(rows, title, unit)
    try:
        import openpyxl  # noqa: F401
    except ImportError:  # QGIS installs without openpyxl: GDAL's XLSX driver writes a plainer workbook
        return write_checklist_ogr(path, rows, info, checklist_headers(unit))
    formats = {
        9: "#,##0.00",
        10: UNIT_EXCEL_FORMATS[unit],
        11: "0.000000",
        12: "0.000000",
        13: "0.000",
        14: "0.000",
    }
    return write_table(path, checklist_headers(unit), rows, "核查清单", {"说明": info}, formats)


def checklist_info(rows: list[list], title: str = "", unit: str = AREA_UNIT_MU) -> list[tuple[str, str]]:
    """The 说明 sheet: title, count, totals per type (count / area in ``unit``), notes on areas and
    coordinates."""
    totals: dict[str, list[float]] = {}
    for row in rows:
        entry = totals.setdefault(row[3] or "", [0, 0.0])
        entry[0] += 1
        entry[1] += row[9] or 0.0
    info: list[tuple[str, str]] = [("标题", title or "变化图斑外业核查清单"), ("图斑数", str(len(rows)))]
    for type_label, (count, m2) in sorted(totals.items()):
        info.append((f"{type_label} 图斑数 / {area_header(unit)}", f"{int(count):,} / {area_text(m2, unit)}"))
    info.append(("面积说明", "椭球面积（CGCS2000）；1 亩 = 2000/3 平方米，1 公顷 = 10000 平方米"))
    info.append(("坐标说明", "经纬度为 CGCS2000 (EPSG:4490)；X 为北坐标、Y 为东坐标(高斯-克吕格)"))
    return info


def write_checklist_ogr(
    path: str | Path,
    rows: list[list],
    info: list[tuple[str, str]],
    headers: tuple[str, ...] = CHECKLIST_HEADERS,
) -> Path:
    """The checklist through GDAL's XLSX driver (no styling), for Python environments without openpyxl."""
    from osgeo import ogr

    from huijiao_plugin.core.patches.store import ogr_exceptions

    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        path = path.with_suffix(".xlsx")
    kinds = {0: ogr.OFTInteger, 20: ogr.OFTInteger, **{i: ogr.OFTReal for i in range(9, 15)}}
    with ogr_exceptions():
        try:
            if path.exists():
                path.unlink()
            path.parent.mkdir(parents=True, exist_ok=True)
            ds = ogr.GetDriverByName("XLSX").CreateDataSource(str(path))
            sheet = ds.CreateLayer("核查清单", None, ogr.wkbNone)
            for index, header in enumerate(headers):
                sheet.CreateField(ogr.FieldDefn(header, kinds.get(index, ogr.OFTString)))
            for row in rows:
                feature = ogr.Feature(sheet.GetLayerDefn())
                for index, value in enumerate(row):
                    if value is not None:
                        feature.SetField(index, value)
                sheet.CreateFeature(feature)
            notes = ds.CreateLayer("说明", None, ogr.wkbNone)
            notes.CreateField(ogr.FieldDefn("项目", ogr.OFTString))
            notes.CreateField(ogr.FieldDefn("内容", ogr.OFTString))
            for key, value in info:
                feature = ogr.Feature(notes.GetLayerDefn())
                feature.SetField(0, key)
                feature.SetField(1, value)
                notes.CreateFeature(feature)
            ds = None
        except (OSError, RuntimeError) as exc:
            raise XlsxError(f"无法写入 xlsx 文件 {path}: {exc}") from exc
    return path
