"""The 成果汇交 panel validates and builds packages in QgsTasks: QGIS keeps running, progress is shown and
cancel leaves no package file behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from qgis.core import (
    QgsApplication,
    QgsFeature,
    QgsGeometry,
    QgsProject,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QCoreApplication, QTimer

from huijiao_plugin.core.ellipsoidal_area import EllipsoidalAreaCalculator
from huijiao_plugin.core.exchange.verify import read_manifest
from huijiao_plugin.core.package import LayerInput, PackageCanceledError, build_package
from huijiao_plugin.core.preflight import run_preflight
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.gui.docks.dock_submit import FID_ROLE, HuijiaoSubmitDock
from tests.integration.server_support import dltb_layer

BIG = 20_000


def grid_layer(n: int, columns: int = 200, cell: float = 50.0) -> QgsVectorLayer:
    """A memory DLTB_BG layer (EPSG:4545) of ``n`` 水田 squares on a grid: a partition, no findings."""
    fields = ["BSM", "TBBH", "DLBM", "DLMC", "QSXZ", "ZLDWDM", "TBMJ"]
    spec = "&".join(f"field={f}:{'double' if f == 'TBMJ' else 'string'}" for f in fields)
    layer = QgsVectorLayer(f"Polygon?crs=EPSG:4545&{spec}", "DLTB_BG", "memory")
    geometries = [
        QgsGeometry.fromRect(
            QgsRectangle(
                580000 + cell * (i % columns),
                3800000 + cell * (i // columns),
                580000 + cell * (i % columns + 1),
                3800000 + cell * (i // columns + 1),
            )
        )
        for i in range(n)
    ]
    areas = EllipsoidalAreaCalculator(layer.crs()).areas(geometries)
    features = []
    for i, (geometry, area) in enumerate(zip(geometries, areas)):
        feature = QgsFeature(layer.fields())
        feature.setAttributes([f"G{i:07d}", str(i), "0101", "水田", "30", "6101020010010000000", area])
        feature.setGeometry(geometry)
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


@pytest.fixture()
def dock(qgis_iface, qgis_new_project, tmp_path):
    widget = HuijiaoSubmitDock(qgis_iface)
    widget.state_dir = tmp_path / "profile"
    widget.apply_settings(
        HuijiaoSettings(department="zrzy", region_code="610102", unit_name="新城区自然资源局", server_url="")
    )
    widget.period_edit.setText("2025")
    widget.accept_warnings_check.setChecked(True)
    yield widget
    widget.unload()
    QgsApplication.taskManager().cancelAll()
    widget.deleteLater()


class Ticker:
    """A QTimer on the GUI thread; records when it fires."""

    def __init__(self, interval_ms: int = 20) -> None:
        self.times: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(lambda: self.times.append(time.monotonic()))
        self.timer.start()

    def max_gap(self) -> float:
        gaps = [b - a for a, b in zip(self.times, self.times[1:])]
        return max(gaps) if gaps else float("inf")


def spin(until, timeout: float = 120.0) -> None:
    """Run the GUI event loop (as QGIS does) until ``until()`` or the timeout."""
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.005)
    assert until(), "timed out"


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*")) if path.exists() else []


def test_big_layer_validates_in_background_and_build_cancels_cleanly(dock):
    layer = grid_layer(BIG)
    QgsProject.instance().addMapLayer(layer)
    dock.select_layers([layer], "dltb_biangeng")
    progress: list[int] = []
    dock.progress_bar.valueChanged.connect(progress.append)

    # ---- validation: a task, the GUI thread keeps ticking, progress is shown
    reports = []
    ticker = Ticker()
    started = time.monotonic()
    task = dock.start_validation(reports.append)
    assert task is not None and dock.is_busy()
    assert not dock.validate_button.isEnabled() and dock.cancel_button.isEnabled()
    spin(lambda: bool(reports))
    elapsed = time.monotonic() - started
    ticker.timer.stop()
    [report] = reports
    assert report is not None and report.ok, [f.message for f in report.findings]
    assert report.checked_layers == ["DLTB_BG"]
    print(
        f"validation of {BIG} polygons: {elapsed:.2f} s, {len(ticker.times)} ticks,",
        f"longest gap {ticker.max_gap():.3f} s",
    )
    assert elapsed > 0.3, "the layer is too small to show anything"
    assert len(ticker.times) > 0.25 * elapsed / 0.02, (len(ticker.times), elapsed)
    assert ticker.max_gap() < 0.5, ticker.max_gap()
    steps = sorted(set(progress))
    assert len([v for v in steps if 0 < v < 1000]) >= 5, steps
    assert not dock.is_busy() and dock.validate_button.isEnabled() and not dock.cancel_button.isEnabled()
    assert dock.report is report

    # ---- build: cancel while the package is being written
    progress.clear()
    outbox = dock.state_dir / "outbox"
    results = []
    ticker = Ticker()
    assert dock.start_package(results.append)
    assert dock.is_busy()
    spin(lambda: dock._task is not None and dock._task_text == "Building the package…")  # validated
    progress.clear()
    spin(lambda: max(progress, default=0) > 300 or bool(results))  # past the copy, writing the GeoPackage
    assert not results, "finished before it could be canceled"
    assert files_under(outbox), "the build writes under the outbox"
    dock.cancel()
    spin(lambda: bool(results), timeout=30)
    ticker.timer.stop()
    assert results == [None]
    assert ticker.max_gap() < 0.5, ticker.max_gap()
    assert files_under(outbox) == []  # neither the zip nor the work folder is left
    assert dock.last_package is None
    assert dock.progress_label.text() == "Canceled."
    assert dock.progress_bar.value() == 0
    assert not dock.is_busy() and dock.submit_button.isEnabled() and not dock.cancel_button.isEnabled()


def test_cancel_during_validation_stops_a_submission(dock):
    layer = grid_layer(BIG // 2)
    QgsProject.instance().addMapLayer(layer)
    dock.select_layers([layer], "dltb_biangeng")
    assert dock.submit()
    assert dock.pause_button.isEnabled() and dock.cancel_button.isEnabled()
    spin(lambda: dock.progress_bar.value() > 0)
    dock.cancel()
    assert dock.wait(30)
    assert dock.report is None and dock.last_package is None and dock.last_result is None
    assert dock.progress_label.text() == "Canceled."
    assert files_under(dock.state_dir / "outbox") == []
    assert dock.findings_tree.topLevelItemCount() == 0


def test_findings_name_the_project_fids_of_a_memory_layer(dock):
    """The task validates a copy; the findings still select the right features of the project layer."""
    layer = dltb_layer(n=8, seed="fid")
    layer.dataProvider().deleteFeatures([1, 2, 3])  # fids 4…8 are left: the copy renumbers them 1…5
    overlap = QgsFeature(layer.fields())
    overlap.setAttributes(["X1", "9", "0101", "水田", "30", "6101020010010000000", 2500.0])
    overlap.setGeometry(QgsGeometry.fromRect(QgsRectangle(580450, 3800000, 580550, 3800050)))
    layer.dataProvider().addFeatures([overlap])
    QgsProject.instance().addMapLayer(layer)
    dock.select_layers([layer], "dltb_biangeng")
    report = dock.validate()
    assert report is not None and not report.ok
    [finding] = [f for f in report.findings if f.code == "OVERLAP"]
    assert finding.layer_id == layer.id()
    assert sorted(finding.fids) == [5, 6, 9]
    items = [dock.findings_tree.topLevelItem(i) for i in range(dock.findings_tree.topLevelItemCount())]
    [item] = [i for i in items if "overlap" in i.text(1)]
    dock._zoom_to_finding(item)
    assert sorted(layer.selectedFeatureIds()) == [5, 6, 9] == sorted(item.data(0, FID_ROLE))


def test_geopackage_layer_packages_like_the_core_function(dock, tmp_path):
    """A GeoPackage layer is opened again in the task; the package data equal a direct build."""
    memory = dltb_layer(n=40, seed="gpkg")
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    path = tmp_path / "dltb.gpkg"
    QgsVectorFileWriter.writeAsVectorFormatV3(
        memory, str(path), QgsProject.instance().transformContext(), options
    )
    layer = QgsVectorLayer(f"{path}|layername=dltb", "DLTB_BG", "ogr")
    assert layer.isValid() and layer.featureCount() == 40
    QgsProject.instance().addMapLayer(layer)
    dock.select_layers([layer], "dltb_biangeng")
    package = dock.build_current_package()
    assert package is not None and package.is_file() and package.parent == dock.state_dir / "outbox"
    direct = build_package(
        tmp_path / "direct.zip",
        [LayerInput(layer, "DLTB_BG")],
        dataset_id="dltb_biangeng",
        region_code="610102",
        period="2025",
        department="zrzy",
        unit="新城区自然资源局",
    )
    built = read_manifest(package)
    assert [f["sha256"] for f in built["files"]] == [f["sha256"] for f in direct.manifest["files"]]
    assert built["layers"][0]["feature_count"] == 40
    assert files_under(dock.state_dir / "outbox") == [package]


def test_core_cancel_plumbing_the_tasks_rely_on(tmp_path):
    """build_package stops at a cancel in any phase and leaves nothing; a cancel inside the catalog
    checks ends the pre-flight quietly, and their progress reaches the callback."""
    layer = dltb_layer(n=30, seed="core")
    args = dict(dataset_id="dltb_biangeng", region_code="610102", period="2025", department="zrzy", unit="u")
    counted: list[int] = []
    build_package(
        tmp_path / "full.zip",
        [LayerInput(layer, "DLTB_BG")],
        **args,
        is_canceled=lambda: bool(counted.append(1)),
    )
    assert len(counted) > 30  # per feature, then between the later phases
    for after in range(0, len(counted), 3):  # a cancel in every phase: features, GeoPackage, hashes, zip
        calls: list[int] = []

        def is_canceled(calls: list[int] = calls, after: int = after) -> bool:
            calls.append(1)
            return len(calls) > after

        out = tmp_path / f"c{after}" / "p.zip"
        with pytest.raises(PackageCanceledError):
            build_package(out, [LayerInput(layer, "DLTB_BG")], **args, is_canceled=is_canceled)
        assert files_under(out.parent) == []

    values: list[float] = []
    report = run_preflight([("DLTB_BG", layer)], "dltb_biangeng", "610102", progress=values.append)
    assert report.ok and values[-1] == 100.0
    assert len([v for v in values if 0 < v < 40]) >= 2, values  # the catalog checks' share

    asked = []
    report = run_preflight(
        [("DLTB_BG", layer)],
        "dltb_biangeng",
        "610102",
        progress=values.append,
        is_canceled=lambda: bool(asked.append(1)) or len(asked) > 3,
    )
    assert len(asked) > 3 and report.checked_layers == ["DLTB_BG"]
