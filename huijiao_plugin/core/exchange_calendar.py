"""The exchange calendar and the evaluation indicators, as people read them (from the server's answers).

* :func:`calendar_rows`: per dataset of the user's department, the last release, the deadline (30 days
  after the release unless the catalog says otherwise) with the days left, and for monitoring data the
  exchanges this year against the twice-a-year rule; overdue items first.
* :func:`evaluation_rows`: the four indicator groups the server computes per county (数据采集汇聚、共享开放、
  安全保障、应用成效) as rates 0…1, exported to xlsx (:func:`write_evaluation_xlsx`) and drawn with matplotlib
  (:func:`evaluation_figure`, :func:`write_evaluation_pdf`; the Agg/PDF canvases, no GUI).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huijiao_plugin.core.timefmt import local_time
from huijiao_plugin.toolbelt.i18n import tr

STATUS_ORDER = ("overdue", "pending", "late", "met")
#: the server's indicator groups -> (key in its answer, rate field)
INDICATOR_SOURCES = {
    "collection": ("completeness", "rate"),
    "sharing": ("timeliness", "rate"),
    "security": ("validation", "pass_rate"),
    "use": ("use", "rate"),
}
#: fonts with Chinese glyphs on Windows, Debian/Ubuntu and macOS, preferred first
CJK_FONTS = ["Microsoft YaHei", "SimHei", "Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC",
             "WenQuanYi Micro Hei", "PingFang SC", "Noto Serif CJK SC", "Noto Serif CJK JP"]  # fmt: skip
CJK_HINTS = ("CJK", "Hei", "Song", "Kai", "Han Sans", "Han Serif")


def chart_fonts() -> list[str]:
    """The sans-serif list for charts: installed Chinese fonts first (matplotlib's own default has no
    Chinese glyphs), then matplotlib's default."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    found = [name for name in CJK_FONTS if name in installed]
    found += sorted(n for n in installed if n not in found and any(h in n for h in CJK_HINTS))
    return [*found, "DejaVu Sans"]


def status_label(status: str) -> str:
    labels = {
        "met": tr("On time"),
        "late": tr("Delivered late"),
        "overdue": tr("Overdue"),
        "pending": tr("Not yet due"),
    }
    return labels.get(status, status)


def indicator_labels() -> dict[str, str]:
    return {
        "collection": tr("Data collection"),
        "sharing": tr("Sharing"),
        "security": tr("Security"),
        "use": tr("Use"),
    }


@dataclass
class CalendarRow:
    dataset_id: str
    dataset_name: str
    region_code: str
    kind: str  # annual | monitoring
    status: str
    due_date: str = ""
    release_date: str = ""
    days_left: int | None = None
    delivered: int = 0
    required: int = 0
    submitted_at: str = ""

    @property
    def overdue(self) -> bool:
        return self.status == "overdue"

    def progress_text(self) -> str:
        """Monitoring: 本年 1/2 次; annual: delivered or not."""
        if self.kind == "monitoring":
            return tr("{done} of {required} this year").format(done=self.delivered, required=self.required)
        return tr("Delivered") if self.delivered else tr("Not delivered")

    def days_text(self) -> str:
        if self.days_left is None or self.status in ("met", "late"):
            return ""
        if self.days_left < 0:
            return tr("{days} days late").format(days=-self.days_left)
        return tr("{days} days left").format(days=self.days_left)


def calendar_rows(
    body: dict[str, Any], department: str, dataset_name: Callable[[str], str] | None = None
) -> list[CalendarRow]:
    """The obligations of ``department`` from the server's ``/deadlines`` answer, overdue first."""
    rows = []
    for item in body.get("items", []):
        if department and item.get("department") != department:
            continue
        dataset_id = str(item.get("dataset_id", ""))
        name = dataset_name(dataset_id) if dataset_name else ""
        periods = item.get("delivered_periods") or []
        rows.append(
            CalendarRow(
                dataset_id=dataset_id,
                dataset_name=name or str(item.get("dataset_name_zh") or dataset_id),
                region_code=str(item.get("region_code", "")),
                kind=str(item.get("kind", "annual")),
                status=str(item.get("status", "")),
                due_date=str(item.get("due_date") or ""),
                release_date=str(item.get("release_date") or ""),
                days_left=item.get("days_left"),
                delivered=len(periods)
                if item.get("kind") == "monitoring"
                else int(bool(item.get("delivered"))),
                required=int(item.get("required_per_year") or 0),
                submitted_at=local_time(item.get("submitted_at")),
            )
        )
    rank = {status: i for i, status in enumerate(STATUS_ORDER)}
    rows.sort(key=lambda r: (rank.get(r.status, len(rank)), r.due_date, r.dataset_name))
    return rows


@dataclass
class EvaluationRow:
    region_code: str
    region_name: str
    rates: dict[str, float | None] = field(default_factory=dict)
    obligations: int = 0
    overdue: int = 0


def _rates(indicators: dict[str, Any]) -> dict[str, float | None]:
    out = {}
    for key, (group, rate) in INDICATOR_SOURCES.items():
        value = (indicators.get(group) or {}).get(rate)
        out[key] = None if value is None else float(value)
    return out


def evaluation_rows(
    body: dict[str, Any], region_name: Callable[[str], str] | None = None
) -> list[EvaluationRow]:
    """One row per county of the server's ``/evaluation`` answer, then the whole region (合计)."""
    rows = []
    for item in body.get("regions", []):
        code = str(item.get("region_code", ""))
        rows.append(
            EvaluationRow(
                code,
                (region_name(code) if region_name else "") or code,
                _rates(item),
                int(item.get("obligations") or 0),
                len(item.get("overdue") or []),
            )
        )
    total = body.get("indicators") or {}
    code = str(body.get("region_code", ""))
    rows.append(
        EvaluationRow(
            code,
            tr("Total"),
            _rates(total),
            int(total.get("obligations") or 0),
            len(total.get("overdue") or []),
        )
    )
    return rows


def evaluation_headers() -> list[str]:
    labels = indicator_labels()
    return [tr("Region"), *(labels[k] for k in INDICATOR_SOURCES), tr("Obligations"), tr("Overdue")]


def evaluation_table(rows: Sequence[EvaluationRow]) -> list[list[Any]]:
    return [
        [r.region_name, *(r.rates.get(k) for k in INDICATOR_SOURCES), r.obligations, r.overdue] for r in rows
    ]


def write_evaluation_xlsx(
    path: str | Path, rows: Sequence[EvaluationRow], year: int, progress: Any = None, unit: str = "mu"
) -> Path:
    """The indicator table with the panel's headers; rates as percentages, counts as integers. With
    ``progress`` (an HsfProgress from the 一张图) a second sheet holds the high-standard farmland progress."""
    from huijiao_plugin.core.xlsx import write_table

    rate_columns = {i: "0.0%" for i in range(1, 1 + len(INDICATOR_SOURCES))}
    count_columns = {1 + len(INDICATOR_SOURCES): "#,##0", 2 + len(INDICATOR_SOURCES): "#,##0"}
    written = write_table(
        path,
        evaluation_headers(),
        evaluation_table(rows),
        sheet_title=tr("Evaluation {year}").format(year=year),
        number_formats={**rate_columns, **count_columns},
    )
    if progress is not None:
        from openpyxl import load_workbook

        from huijiao_plugin.core.hsf_progress import write_progress_sheet

        workbook = load_workbook(written)
        write_progress_sheet(workbook, progress, unit)
        workbook.save(written)
    return written


def chart_figure(draw: Callable[[Any], None], figure: Any = None) -> Any:
    """``draw(axes)`` one chart into ``figure`` (e.g. a Qt canvas's) or a new matplotlib Figure, which is
    returned; Chinese fonts, a plain minus sign."""
    import matplotlib
    from matplotlib.figure import Figure

    figure = figure if figure is not None else Figure(figsize=(7.0, 3.6), dpi=100)
    figure.clear()
    with matplotlib.rc_context({"font.sans-serif": chart_fonts(), "axes.unicode_minus": False}):
        draw(figure.add_subplot(1, 1, 1))
        figure.tight_layout()
    return figure


def pdf_table(
    axes: Any, cells: list[list[str]], headers: list[str], size: float, widths: list[float] | None = None
) -> None:
    """A table filling ``axes`` (no axis lines), header row shaded, in the chart fonts; ``widths`` are the
    columns' shares of the width."""
    axes.axis("off")
    if not cells:
        return
    table = axes.table(cellText=cells, colLabels=headers, loc="upper center", colWidths=widths)
    table.auto_set_font_size(False)
    table.set_fontsize(size)
    for (row, _col), cell in table.get_celld().items():
        cell.get_text().set_fontfamily(chart_fonts())
        if row == 0:
            cell.set_facecolor("#dde7f0")


def evaluation_figure(rows: Sequence[EvaluationRow], year: int, figure: Any = None) -> Any:
    """Grouped bars: the four rates (%) per county (see :func:`chart_figure`)."""
    return chart_figure(lambda axes: _draw_bars(axes, rows, year), figure)


def write_evaluation_pdf(
    path: str | Path, rows: Sequence[EvaluationRow], year: int, progress: Any = None, unit: str = "mu"
) -> Path:
    """The chart above the indicator table on page 1; with ``progress`` (an HsfProgress) its chart and table
    on page 2."""
    import matplotlib
    from matplotlib.backends.backend_pdf import FigureCanvasPdf, PdfPages
    from matplotlib.figure import Figure

    path = Path(path)
    if path.suffix.lower() != ".pdf":
        path = path.with_suffix(".pdf")
    figure = Figure(figsize=(8.27, 11.69), dpi=100)  # A4 portrait
    FigureCanvasPdf(figure)
    # TrueType (42) rather than Type 3 fonts: the text of the PDF stays searchable and copyable
    with matplotlib.rc_context({"pdf.fonttype": 42}), PdfPages(str(path)) as pdf:
        if rows:
            _evaluation_page(figure, rows, year)
            pdf.savefig(figure)
        if progress is not None:
            from huijiao_plugin.core.hsf_progress import progress_pdf_page

            progress_pdf_page(pdf, progress, unit)
    return path


def _evaluation_page(figure: Any, rows: Sequence[EvaluationRow], year: int) -> None:
    import matplotlib

    with matplotlib.rc_context({"font.sans-serif": chart_fonts(), "axes.unicode_minus": False}):
        top = figure.add_axes((0.08, 0.52, 0.86, 0.4))
        _draw_bars(top, rows, year)
        cells = [
            [r[0], *(_percent(v) for v in r[1:5]), f"{r[5]:,}", f"{r[6]:,}"] for r in evaluation_table(rows)
        ]
        pdf_table(figure.add_axes((0.05, 0.05, 0.9, 0.38)), cells, evaluation_headers(), 8)


def _draw_bars(axes: Any, rows: Sequence[EvaluationRow], year: int) -> None:
    labels = indicator_labels()
    keys = list(INDICATOR_SOURCES)
    width = 0.8 / len(keys)
    for i, key in enumerate(keys):
        values = [100.0 * (r.rates.get(key) or 0.0) for r in rows]
        positions = [x + (i - (len(keys) - 1) / 2) * width for x in range(len(rows))]
        axes.bar(positions, values, width, label=labels[key])
    axes.set_xticks(list(range(len(rows))))
    axes.set_xticklabels([r.region_name for r in rows], fontfamily=chart_fonts())
    axes.set_ylim(0, 100)
    axes.set_ylabel(tr("Rate (%)"), fontfamily=chart_fonts())
    axes.set_title(tr("Exchange evaluation {year}").format(year=year), fontfamily=chart_fonts())
    axes.legend(prop={"family": chart_fonts(), "size": 8}, ncol=len(keys), loc="upper right")


def _percent(value: Any) -> str:
    return "—" if value is None else f"{100.0 * float(value):.1f}%"
