"""xlsx export of comparison statistics (openpyxl): Chinese headers with units, one sheet of rule
parameters in words. Every table has the same look: a bold header on a shaded band, widths from the
content, number formats per column, the header frozen, a bold 合计 row."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HEADER_FILL = "FFD9E1F2"  # the header band (light blue-grey)
TOTAL_LABEL = "合计"


class XlsxError(Exception):
    """The workbook cannot be written; ``str(error)`` is a Chinese message for the user."""


def write_table(
    path: str | Path,
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    sheet_title: str = "统计",
    extra_sheets: dict[str, list[tuple[str, str]]] | None = None,
    number_formats: dict[int, str] | None = None,
) -> Path:
    """Write ``rows`` under bold ``headers`` (frozen header row, auto filter); ``extra_sheets`` maps a sheet
    title
    to (key, value) rows. ``number_formats`` maps a column index to an Excel number format."""
    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        path = path.with_suffix(".xlsx")
    try:
        from openpyxl import Workbook
        from openpyxl.styles import Alignment, Font, PatternFill
    except ImportError:  # e.g. qgis_process on a QGIS without openpyxl: a plain workbook, same content
        sheets = [(sheet_title, [list(headers)] + [list(r) for r in rows])]
        for title, pairs in (extra_sheets or {}).items():
            sheets.append((title, [["项目", "内容"]] + [[k, _json_text(v)] for k, v in pairs]))
        return write_plain_xlsx(path, sheets)
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = sheet_title[:31]
    sheet.append(list(headers))
    header_fill = PatternFill("solid", start_color=HEADER_FILL, end_color=HEADER_FILL)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = header_fill
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for row in rows:
        sheet.append([_cell(v) for v in row])
    if rows and rows[-1] and rows[-1][0] == TOTAL_LABEL:
        for cell in sheet[sheet.max_row]:
            cell.font = Font(bold=True)
    for column, fmt in (number_formats or {}).items():
        for (cell,) in sheet.iter_rows(min_row=2, min_col=column + 1, max_col=column + 1):
            cell.number_format = fmt
    for index, header in enumerate(headers, start=1):
        width = max([len(str(header)) * 2] + [len(str(r[index - 1] or "")) for r in rows[:200]]) + 2
        sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = min(width, 60)
    sheet.freeze_panes = "A2"
    if rows:
        sheet.auto_filter.ref = sheet.dimensions
    for title, pairs in (extra_sheets or {}).items():
        extra = workbook.create_sheet(title[:31])
        extra.append(["项目", "内容"])
        for cell in extra[1]:
            cell.font = Font(bold=True)
            cell.fill = header_fill
        for key, value in pairs:
            extra.append([key, _json_text(value)])
        extra.column_dimensions["A"].width = 30
        extra.column_dimensions["B"].width = 100
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        workbook.save(path)
    except OSError as exc:
        raise XlsxError(f"无法写入 xlsx 文件 {path}: {exc}") from exc
    return path


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def write_plain_xlsx(path: Path, sheets: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> Path:
    """A minimal Office Open XML workbook (inline strings, numbers) written with zipfile only."""
    import zipfile
    from xml.sax.saxutils import escape

    def sheet_xml(rows: Sequence[Sequence[Any]]) -> str:
        out = []
        for r, row in enumerate(rows, start=1):
            cells = []
            for c, value in enumerate(row):
                value = _cell(value)
                ref = f"{_column_letter(c)}{r}"
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    text = escape(str(value))
                    cells.append(
                        f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'
                    )
                else:
                    cells.append(f'<c r="{ref}"><v>{value!r}</v></c>')
            out.append(f'<row r="{r}">{"".join(cells)}</row>')
        return (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            f"<sheetData>{''.join(out)}</sheetData></worksheet>"
        )

    ns = "http://schemas.openxmlformats.org"
    types = "".join(
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        for i in range(1, len(sheets) + 1)
    )
    files = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<Types xmlns="{ns}/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        f"{types}</Types>",
        "_rels/.rels": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<Relationships xmlns="{ns}/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{ns}/officeDocument/2006/relationships/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<workbook xmlns="{ns}/spreadsheetml/2006/main" xmlns:r="{ns}/officeDocument/2006/relationships">'
        "<sheets>"
        + "".join(
            f'<sheet name="{escape(title[:31])}" sheetId="{i}" r:id="rId{i}"/>'
            for i, (title, _rows) in enumerate(sheets, start=1)
        )
        + "</sheets></workbook>",
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<Relationships xmlns="{ns}/package/2006/relationships">'
        + "".join(
            f'<Relationship Id="rId{i}" Type="{ns}/officeDocument/2006/relationships/worksheet" '
            f'Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, len(sheets) + 1)
        )
        + "</Relationships>",
    }
    for i, (_title, rows) in enumerate(sheets, start=1):
        files[f"xl/worksheets/sheet{i}.xml"] = sheet_xml(rows)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in files.items():
                archive.writestr(name, text.encode("utf-8"))
    except OSError as exc:
        raise XlsxError(f"无法写入 xlsx 文件 {path}: {exc}") from exc
    return path


def _cell(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (int, float, str)):
        return value
    try:
        from qgis.PyQt.QtCore import QVariant

        if isinstance(value, QVariant) and value.isNull():
            return None
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def write_statistics_xlsx(path: str | Path, rows: Sequence[Any], results: Sequence[Any] = ()) -> Path:
    """Statistics rows (``compare.statistics.StatRow``) plus a 规则参数 sheet (rule, parameters, inputs)."""
    from huijiao_plugin.core.compare.statistics import LEVEL_NAMES, STAT_COLUMNS

    headers = [header for _name, _type, header in STAT_COLUMNS]
    values = []
    for row in rows:
        v = row.values()
        v[0] = LEVEL_NAMES.get(v[0], v[0])
        values.append(v)
    from huijiao_plugin.core.stat_table import rule_parameter_rows

    params = rule_parameter_rows(results)
    formats = {7: "#,##0.00", 8: "#,##0.00", 9: "#,##0.0000", 10: "0.00"}
    return write_table(path, headers, values, "比对统计", {"规则参数": params}, formats)
