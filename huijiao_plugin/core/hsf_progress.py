"""成效评估 from the 一张图: how much 永久基本农田 (PBF) has been built as 高标准农田 (HSF) per year, per
township, toward the goal that all PBF is high-standard by 2035 (domain.md §3).

Computed from the loaded layers, not asked from the server: per township the PBF inside it (dissolved, so
overlapping PBF polygons count once), then year by year the PBF covered by the HSF projects built up to that
year (the 建设年度 field). A year's area is the growth of the covered area, so a project rebuilt on land that
an earlier project covered (提质改造) is not counted twice. Areas are ellipsoidal (the 三调 area code).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateTransform,
    QgsCoordinateTransformContext,
    QgsFeatureRequest,
    QgsGeometry,
    QgsProject,
    QgsSpatialIndex,
    QgsVectorLayer,
    QgsWkbTypes,
)

from huijiao_plugin.core.catalog import get_catalog
from huijiao_plugin.core.ellipsoidal_area import ellipsoidal_area
from huijiao_plugin.core.exchange_calendar import chart_figure, chart_fonts, pdf_table
from huijiao_plugin.core.one_map import dataset_layers
from huijiao_plugin.core.units import (
    UNIT_DECIMALS,
    UNIT_EXCEL_FORMATS,
    UNIT_NAMES,
    convert_area,
    rounded_area,
)
from huijiao_plugin.toolbelt.i18n import tr

PBF_DATASET, HSF_DATASET, TOWNSHIP_DATASET = "yjjbnt", "gbznt", "xzq"
#: the standard fields read (the catalog's names; the recognised mapping gives the layer's own)
YEAR_FIELD, CODE_FIELD, NAME_FIELD = "JSND", "XZQDM", "XZQMC"
#: every PBF is to be built as high-standard farmland by this year (the policy goal)
GOAL_YEAR = 2035


class HsfProgressError(Exception):
    """The layers needed are missing or unusable; ``str(error)`` is a message for the user."""


@dataclass
class ProgressLayer:
    layer: QgsVectorLayer
    fields: dict[str, str] = field(default_factory=dict)  # standard name -> the layer's field


@dataclass
class TownshipProgress:
    code: str
    name: str
    pbf_m2: float
    #: year -> PBF covered by HSF built up to and including that year (m²)
    covered_m2: dict[int, float] = field(default_factory=dict)

    def label(self) -> str:
        return f"{self.name}（{self.code}）" if self.name and self.code else self.name or self.code

    def built_m2(self, year: int, years: Sequence[int]) -> float:
        """PBF newly covered in ``year`` (the growth over the year before in ``years``)."""
        index = list(years).index(year)
        before = self.covered_m2.get(years[index - 1], 0.0) if index > 0 else 0.0
        return self.covered_m2.get(year, 0.0) - before


@dataclass
class HsfProgress:
    townships: list[TownshipProgress]
    years: list[int]
    goal_year: int = GOAL_YEAR

    def total(self) -> TownshipProgress:
        total = TownshipProgress("", tr("Total"), sum(t.pbf_m2 for t in self.townships))
        for year in self.years:
            total.covered_m2[year] = sum(t.covered_m2.get(year, 0.0) for t in self.townships)
        return total

    def share(self, township: TownshipProgress, year: int) -> float:
        """Covered share of the township's PBF by the end of ``year`` (0…1)."""
        return township.covered_m2.get(year, 0.0) / township.pbf_m2 if township.pbf_m2 > 0 else 0.0


# ---- finding the layers ------------------------------------------------------------------------------------


def find_progress_layers(
    layers: Iterable[QgsVectorLayer] | None = None,
) -> dict[str, ProgressLayer]:
    """PBF, HSF and township layers among ``layers`` and the project by their dataset (the 一张图's tag,
    else the catalog recognition; never by layer-name text). Raises HsfProgressError naming what is
    missing."""
    wanted = {PBF_DATASET: (), HSF_DATASET: (YEAR_FIELD,), TOWNSHIP_DATASET: (CODE_FIELD, NAME_FIELD)}
    found: dict[str, ProgressLayer] = {}
    for dataset_id, layer, fields in dataset_layers(wanted, layers or ()):
        mapping = {name: fields.get(name, "") for name in wanted[dataset_id]}
        if dataset_id not in found and all(mapping.values()):
            found[dataset_id] = ProgressLayer(layer, mapping)
    missing = [d for d in wanted if d not in found]
    if missing:
        catalog = get_catalog()
        names = "、".join(catalog.dataset(d).name_zh if d in catalog.datasets else d for d in missing)
        raise HsfProgressError(
            tr("Load these layers of the one map first (with their fields): {names}").format(names=names)
        )
    return found


# ---- computing ----------------------------------------------------------------------------------------


def _year(value: Any) -> int | None:
    try:
        year = int(str(value).strip()[:4])
    except (TypeError, ValueError):
        return None
    return year if 1900 <= year <= 2100 else None


def _read(
    source: ProgressLayer,
    crs_target: Any,
    context: QgsCoordinateTransformContext,
    attributes: Sequence[str] = (),
) -> tuple[list[QgsGeometry], list[list[Any]]]:
    """Valid geometries in ``crs_target`` and, per feature, the values of the standard ``attributes``."""
    layer = source.layer
    transform = None
    if layer.crs() != crs_target:
        transform = QgsCoordinateTransform(layer.crs(), crs_target, context)
    indexes = [layer.fields().lookupField(source.fields[name]) for name in attributes]
    geometries, values = [], []
    for feature in layer.getFeatures(QgsFeatureRequest()):
        geometry = QgsGeometry(feature.geometry())
        if geometry.isEmpty():
            continue
        if transform is not None:
            geometry.transform(transform)
        if not geometry.isGeosValid():
            geometry = geometry.makeValid()
        geometries.append(geometry)
        attrs = feature.attributes()
        values.append([attrs[i] if i >= 0 else None for i in indexes])
    return geometries, values


def _index(geometries: Sequence[QgsGeometry]) -> QgsSpatialIndex:
    index = QgsSpatialIndex()
    for fid, geometry in enumerate(geometries):
        index.addFeature(fid, geometry.boundingBox())
    return index


def _clip_union(
    parts: Sequence[QgsGeometry], index: QgsSpatialIndex, ids_ok: Callable[[int], bool], clip: QgsGeometry
) -> QgsGeometry | None:
    """The union of the ``parts`` that pass ``ids_ok``, clipped to ``clip`` (polygons only)."""
    pieces = []
    for fid in index.intersects(clip.boundingBox()):
        if not ids_ok(fid) or not parts[fid].intersects(clip):
            continue
        piece = parts[fid].intersection(clip)
        if not piece.isEmpty():
            pieces.append(piece)
    if not pieces:
        return None
    union = QgsGeometry.unaryUnion(pieces)
    polygons = union.convertToType(QgsWkbTypes.GeometryType.PolygonGeometry, True)
    return polygons if polygons is not None and not polygons.isEmpty() else None


def hsf_progress(
    layers: dict[str, ProgressLayer],
    is_canceled: Callable[[], bool] = lambda: False,
    progress: Callable[[float], None] = lambda _value: None,
    context: QgsCoordinateTransformContext | None = None,
) -> HsfProgress | None:
    """Per township (sorted by code) and per build year: the PBF covered by HSF up to that year. All
    geometry in the PBF layer's CRS (``context``: the project's transformations, taken on the main thread
    when this runs in a task). None when canceled."""
    context = context if context is not None else QgsProject.instance().transformContext()
    pbf_source = layers[PBF_DATASET]
    crs = pbf_source.layer.crs()
    pbf, _ = _read(pbf_source, crs, context)
    hsf, hsf_values = _read(layers[HSF_DATASET], crs, context, (YEAR_FIELD,))
    towns, town_values = _read(layers[TOWNSHIP_DATASET], crs, context, (CODE_FIELD, NAME_FIELD))
    year_of = [_year(v[0]) for v in hsf_values]
    years = sorted({y for y in year_of if y is not None})
    codes = [str(v[0] or "").strip() for v in town_values]
    names = [str(v[1] or "").strip() for v in town_values]
    pbf_index, hsf_index = _index(pbf), _index(hsf)
    result = []
    order = sorted(range(len(towns)), key=lambda i: codes[i])
    for step, i in enumerate(order):
        if is_canceled():
            return None
        progress(100.0 * step / max(len(order), 1))
        township = TownshipProgress(codes[i], names[i], 0.0)
        pbf_here = _clip_union(pbf, pbf_index, lambda _fid: True, towns[i])
        if pbf_here is not None:
            township.pbf_m2 = ellipsoidal_area(pbf_here, crs)
            covered: QgsGeometry | None = None
            for year in years:  # what the year's projects add to what earlier years covered
                added = _clip_union(hsf, hsf_index, lambda fid, y=year: year_of[fid] == y, pbf_here)
                if added is not None:
                    covered = added if covered is None else QgsGeometry.unaryUnion([covered, added])
                township.covered_m2[year] = ellipsoidal_area(covered, crs) if covered is not None else 0.0
        else:
            township.covered_m2 = {year: 0.0 for year in years}
        result.append(township)
    progress(100.0)
    return HsfProgress(result, years)


# ---- table, chart, exports -------------------------------------------------------------------------------


def progress_headers(unit: str) -> list[str]:
    name = UNIT_NAMES[unit]
    return [
        "乡镇",
        "建设年度",
        f"当年建成（{name}）",
        f"累计建成（{name}）",
        f"永久基本农田（{name}）",
        "累计比例（%）",
    ]


def progress_table(result: HsfProgress, unit: str) -> list[list[Any]]:
    """One row per township and year, then the 合计 rows; areas rounded in ``unit``, the share in %."""
    rows = []
    for township in [*result.townships, result.total()]:
        label = township.label() if township.code else "合计"
        for year in result.years:
            rows.append(
                [
                    label,
                    year,
                    rounded_area(township.built_m2(year, result.years), unit),
                    rounded_area(township.covered_m2.get(year, 0.0), unit),
                    rounded_area(township.pbf_m2, unit),
                    round(100.0 * result.share(township, year), 2),
                ]
            )
    return rows


def write_progress_sheet(workbook: Any, result: HsfProgress, unit: str) -> None:
    """Add the table as a sheet of an openpyxl workbook (bold frozen header, number formats, widths)."""
    from openpyxl.styles import Font

    sheet = workbook.create_sheet("高标准农田建设进度")
    sheet.append(progress_headers(unit))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in progress_table(result, unit):
        sheet.append(row)
    area_format = UNIT_EXCEL_FORMATS[unit]
    for row in sheet.iter_rows(min_row=2):
        for column in (2, 3, 4):
            row[column].number_format = area_format
        row[5].number_format = "0.00"
    for letter, width in zip("ABCDEF", (24, 10, 16, 16, 18, 14)):
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A2"


def draw_progress(axes: Any, result: HsfProgress, unit: str) -> None:
    """Cumulative share of PBF built as HSF per township (lines), the whole region (bold) and the target
    line from the last year's share to 100 % in the goal year. Fonts are named on each text: a Qt canvas
    draws later, outside any rc_context."""
    from matplotlib.ticker import MaxNLocator

    years = result.years
    for township in result.townships:
        axes.plot(
            years,
            [100.0 * result.share(township, y) for y in years],
            marker="o",
            linewidth=1,
            label=township.name,
        )
    total = result.total()
    shares = [100.0 * result.share(total, y) for y in years]
    axes.plot(years, shares, color="black", linewidth=2.5, marker="s", label=tr("Total"))
    if years:
        axes.plot(
            [years[-1], result.goal_year],
            [shares[-1], 100.0],
            color="#c0392b",
            linestyle="--",
            label=tr("Target: all by {year}").format(year=result.goal_year),
        )
        axes.set_xlim(years[0] - 0.5, result.goal_year + 0.5)
    axes.set_ylim(0, 105)
    axes.set_ylabel(tr("PBF built as HSF (%)"), fontfamily=chart_fonts())
    axes.set_title(
        tr("Permanent basic farmland built as high-standard farmland")
        + "\n"
        + tr("total {area}").format(area=f"{convert_area(total.pbf_m2, unit):,.2f} {UNIT_NAMES[unit]}"),
        fontfamily=chart_fonts(),
        fontsize=8,
    )
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, alpha=0.3)
    axes.legend(prop={"family": chart_fonts(), "size": 7}, loc="best")


def progress_figure(result: HsfProgress, unit: str, figure: Any = None) -> Any:
    """The progress chart in ``figure`` (a Qt canvas's) or a new matplotlib Figure, which is returned."""
    return chart_figure(lambda axes: draw_progress(axes, result, unit), figure)


def progress_pdf_page(pdf: Any, result: HsfProgress, unit: str) -> None:
    """One A4 page (chart above the table of the 合计 rows and the last year per township) in a PdfPages."""
    import matplotlib
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.27, 11.69), dpi=100)
    with matplotlib.rc_context({"font.sans-serif": chart_fonts(), "axes.unicode_minus": False}):
        draw_progress(figure.add_axes((0.1, 0.55, 0.84, 0.38)), result, unit)
        last = result.years[-1] if result.years else None
        shown = [r for r in progress_table(result, unit) if r[0] == "合计" or r[1] == last][:40]
        d = UNIT_DECIMALS[unit]
        cells = [[r[0], str(r[1]), *(f"{v:,.{d}f}" for v in r[2:5]), f"{r[5]:.2f}"] for r in shown]
        widths = [0.3, 0.1, 0.15, 0.15, 0.17, 0.13]
        pdf_table(figure.add_axes((0.05, 0.05, 0.9, 0.44)), cells, progress_headers(unit), 7, widths)
        pdf.savefig(figure)


def write_progress_xlsx(path: str | Path, result: HsfProgress, unit: str) -> Path:
    from openpyxl import Workbook

    path = Path(path).with_suffix(".xlsx")
    workbook = Workbook()
    workbook.remove(workbook.active)
    write_progress_sheet(workbook, result, unit)
    workbook.save(path)
    return path
