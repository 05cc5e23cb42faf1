"""成效评估 from the 一张图: permanent basic farmland built as high-standard farmland per year and township.

A hand-made county in EPSG:4545: two townships, two overlapping PBF polygons across them and HSF projects
of 2019, 2021 and 2023 that overlap each other (land covered twice counts once, in its first year). The
expected areas are computed here with shapely (overlay) and pyproj (geodesic area on the CGCS2000
ellipsoid), independently of the plugin. The panel's button computes them in a task from the layers the
一张图 loaded; the chart, the xlsx sheet and the PDF page follow."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import pytest
import shapely
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCoordinateTransformContext,
    QgsFeature,
    QgsGeometry,
    QgsProject,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsVectorLayer,
)

from huijiao_plugin.compat import FieldType
from huijiao_plugin.core.one_map import DATASET_PROPERTY
from huijiao_plugin.core.session import Session
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.gui.widgets.wdg_evaluation import HuijiaoEvaluationWidget
from tests.gui.task_support import wait_until

X0, Y0 = 500000.0, 3800000.0
TOWNS = [
    ("610102001", "西一路街道", (0, 0, 1000, 1000)),
    ("610102002", "长乐中路街道", (1000, 0, 2000, 1000)),
]
PBF = [(100, 100, 1500, 600), (1200, 500, 1900, 900)]
HSF = [
    (2019, (0, 0, 600, 1000)),
    (2021, (400, 300, 1300, 1000)),  # overlaps the 2019 project: that land counts in 2019 only
    (2021, (1600, 0, 2000, 1000)),
    (2023, (1100, 700, 1800, 1000)),
    (None, (0, 0, 2000, 100)),  # no build year: not counted
]


def _rect(box):
    x1, y1, x2, y2 = box
    return QgsGeometry.fromRect(QgsRectangle(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2))


def _write(
    path: Path,
    name: str,
    fields: list[tuple[str, object]],
    rows: list[tuple[tuple, dict]],
    dataset: str,
    crs: str = "EPSG:4545",
):
    spec = "&".join(f"field={n}:{'integer' if t == FieldType.Int else 'string'}" for n, t in fields)
    memory = QgsVectorLayer(f"Polygon?crs=EPSG:4545&{spec}", name, "memory")
    features = []
    for box, values in rows:
        feature = QgsFeature(memory.fields())
        feature.setGeometry(_rect(box))
        for key, value in values.items():
            feature[key] = value
        features.append(feature)
    memory.dataProvider().addFeatures(features)
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName, options.layerName = "GPKG", name
    if crs != "EPSG:4545":  # stored in another CRS: the computation must bring it onto the PBF's
        options.ct = QgsCoordinateTransform(
            QgsCoordinateReferenceSystem("EPSG:4545"),
            QgsCoordinateReferenceSystem(crs),
            QgsProject.instance(),
        )
    if path.exists():
        options.actionOnExistingFile = QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteLayer
    error = QgsVectorFileWriter.writeAsVectorFormatV3(
        memory, str(path), QgsCoordinateTransformContext(), options
    )
    assert error[0] == QgsVectorFileWriter.WriterError.NoError, error
    layer = QgsVectorLayer(f"{path}|layername={name}", name, "ogr")
    assert layer.isValid()
    layer.setCustomProperty(DATASET_PROPERTY, dataset)  # as the 一张图 tags what it loads
    QgsProject.instance().addMapLayer(layer)
    return layer


def _expected() -> dict[str, dict[int, float]]:
    """Township code -> year -> PBF covered by HSF built up to that year (m², geodesic)."""
    from shapely.geometry import box
    from shapely.ops import transform

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyproj

        to_geo = pyproj.Transformer.from_crs("EPSG:4545", "EPSG:4490", always_xy=True).transform
    geod = pyproj.Geod(ellps="GRS80")

    def shape(b):
        return box(X0 + b[0], Y0 + b[1], X0 + b[2], Y0 + b[3])

    def area(geometry) -> float:
        parts = [p for p in shapely.get_parts(geometry) if p.geom_type == "Polygon" and not p.is_empty]
        return sum(abs(geod.geometry_area_perimeter(transform(to_geo, p))[0]) for p in parts)

    pbf = shapely.union_all([shape(b) for b in PBF])
    expected = {}
    for code, _name, town in TOWNS:
        here = pbf.intersection(shape(town))
        years = {}
        for year in (2019, 2021, 2023):
            built = shapely.union_all([shape(b) for y, b in HSF if y is not None and y <= year])
            years[year] = area(here.intersection(built))
        years[0] = area(here)  # the township's PBF
        expected[code] = years
    return expected


@pytest.fixture()
def county(qgis_new_project, tmp_path):
    gpkg = tmp_path / "一张图.gpkg"
    _write(
        gpkg,
        "XZQ",
        [("XZQDM", FieldType.String), ("XZQMC", FieldType.String)],
        [(b, {"XZQDM": code, "XZQMC": name}) for code, name, b in TOWNS],
        "xzq",
    )
    _write(
        gpkg,
        "YJJBNTBHTB",
        [("YJJBNTTBBH", FieldType.String)],
        [(b, {"YJJBNTTBBH": "1"}) for b in PBF],
        "yjjbnt",
    )
    _write(
        gpkg,
        "GBZNT",
        [("XMBH", FieldType.String), ("XMMC", FieldType.String), ("JSND", FieldType.Int)],
        [(b, {"XMBH": f"61010200{i}", "XMMC": f"项目{i}", "JSND": y}) for i, (y, b) in enumerate(HSF)],
        "gbznt",
        "EPSG:4490",  # the agriculture department's layer in geographic CGCS2000
    )
    yield
    QgsProject.instance().removeAllMapLayers()


def test_progress_per_year_and_township_from_the_one_map(qgis_iface, county, tmp_path):
    import openpyxl

    session = Session(
        HuijiaoSettings(department="nync", region_code="610102", area_unit="m2"), state_dir=tmp_path
    )
    widget = HuijiaoEvaluationWidget(session)
    assert not widget.xlsx_button.isEnabled()
    widget.progress_button.click()
    assert widget.bar.busy() and widget.bar.cancel_button.isEnabled()  # computed in a task
    wait_until(lambda: not widget.bar.busy(), 120)
    result = widget.progress
    assert result is not None, widget.status_label.text()
    assert result.years == [2019, 2021, 2023]

    expected = _expected()
    assert [t.code for t in result.townships] == ["610102001", "610102002"]
    for township in result.townships:
        want = expected[township.code]
        assert township.pbf_m2 == pytest.approx(want[0], abs=0.5)
        for year in result.years:
            assert township.covered_m2[year] == pytest.approx(want[year], abs=0.5), (township.code, year)
    # a year's area is what was newly covered: 2021 adds in the second township only what 2019 had not
    second = result.townships[1]
    assert second.built_m2(2021, result.years) == pytest.approx(expected["610102002"][2021], abs=0.5)
    assert result.townships[0].built_m2(2023, result.years) == pytest.approx(0.0, abs=0.01)

    # the chart: one line per township, the total, and the target line reaching 100 % in 2035
    axes = widget.canvas.figure.axes[0]
    assert widget.chart_combo.currentData() == "progress"
    target = axes.lines[-1]
    assert list(target.get_xdata()) == [2023, 2035] and target.get_ydata()[-1] == pytest.approx(100.0)
    total_share = 100.0 * sum(expected[c][2023] for c in expected) / sum(expected[c][0] for c in expected)
    assert target.get_ydata()[0] == pytest.approx(total_share, abs=0.01)
    assert "%" in widget.status_label.text()

    # exports: a sheet with the unit in the headers and the same numbers; a PDF page with the chart
    assert widget.xlsx_button.isEnabled()
    sheet = openpyxl.load_workbook(widget.export_xlsx(str(tmp_path / "评估.xlsx")))["高标准农田建设进度"]
    header = [c.value for c in sheet[1]]
    assert header == [
        "乡镇",
        "建设年度",
        "当年建成（平方米）",
        "累计建成（平方米）",
        "永久基本农田（平方米）",
        "累计比例（%）",
    ]
    rows = [[c.value for c in r] for r in sheet.iter_rows(min_row=2)]
    first = [r for r in rows if r[0] == "西一路街道（610102001）"]
    assert [r[1] for r in first] == [2019, 2021, 2023]
    assert first[1][3] == pytest.approx(expected["610102001"][2021], abs=0.5)
    assert [r[1] for r in rows if r[0] == "合计"] == [2019, 2021, 2023]
    assert sheet.freeze_panes == "A2" and sheet["C2"].number_format == "#,##0.00"
    pdf = widget.export_pdf(str(tmp_path / "评估.pdf"))
    text = subprocess.run(
        ["pdftotext", "-layout", pdf, "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "2035" in text and "长乐中路街道（610102002）" in text and "累计建成（平方米）" in text
    widget.deleteLater()


def test_progress_names_the_missing_layers_and_can_be_canceled(qgis_iface, county, tmp_path):
    session = Session(HuijiaoSettings(department="nync", region_code="610102"), state_dir=tmp_path)
    widget = HuijiaoEvaluationWidget(session)
    widget.progress_button.click()
    widget.bar.cancel_button.click()
    wait_until(lambda: not widget.bar.busy(), 120)
    assert widget.progress is None and widget.status_label.text() in ("Canceled.", "已取消。")

    hsf = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name() == "GBZNT"]
    QgsProject.instance().removeMapLayer(hsf[0])
    widget.progress_button.click()
    assert not widget.bar.busy()
    assert "高标准农田上图入库" in widget.status_label.text()
    widget.deleteLater()
