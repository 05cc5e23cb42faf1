"""The comparison dock's province mode (gui/widgets/wdg_province_run.py), driven from its widgets: typed
source and output, a click on Run, one row and progress bar per county, a broken county shown as failed,
cancel, and a second run that resumes (the finished counties shown as done earlier)."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtTest import QTest

from huijiao_plugin.gui.widgets.wdg_province_run import WdgProvinceRun
from tests.datagen.province import generate_province


@pytest.fixture(scope="module")
def folder(qgis_app, tmp_path_factory):
    province = generate_province(tmp_path_factory.mktemp("province"), size=600, counties=3, seed=5)
    (province.folder / "610799.gpkg").write_bytes(b"broken")
    return province


def wait_for(widget, timeout=180.0):
    end = time.time() + timeout
    while widget.task is not None and time.time() < end:
        QCoreApplication.processEvents()
        time.sleep(0.02)
    assert widget.task is None
    QCoreApplication.processEvents()


def type_into(edit, text):
    edit.clear()
    QTest.keyClicks(edit, text)


def test_province_run_from_the_widgets(folder, tmp_path):
    widget = WdgProvinceRun(lambda: ("pbfnongrain", {"MIN_AREA": 0.5}))
    widget.show()
    QTest.mouseClick(widget.start_button, Qt.MouseButton.LeftButton)
    assert widget.task is None and widget.status.text() == "Choose a source and an output GeoPackage."
    type_into(widget.source_edit, str(folder.folder))
    type_into(widget.output_edit, str(tmp_path / "province.gpkg"))
    widget.workers_spin.selectAll()
    QTest.keyClicks(widget.workers_spin, "2")
    assert widget.workers_spin.value() == 2
    QTest.mouseClick(widget.start_button, Qt.MouseButton.LeftButton)
    assert (
        widget.task is not None and not widget.start_button.isEnabled() and widget.cancel_button.isEnabled()
    )
    wait_for(widget)
    assert sorted(widget.rows) == [*folder.codes, "610799"]
    for code in folder.codes:
        assert widget.county_state(code) == "Done"
        assert widget.table.cellWidget(widget.rows[code], 2).value() == 100
    assert widget.county_state("610799").startswith("Failed: ")
    assert widget.status.text() == "3 counties done, 1 failed."
    assert (tmp_path / "province.xlsx").exists()
    # a second run on the same output resumes: nothing to compute, every county done earlier
    QTest.mouseClick(widget.start_button, Qt.MouseButton.LeftButton)
    wait_for(widget)
    assert all(widget.county_state(code) == "Done earlier" for code in folder.codes)
    assert sorted(widget.summary.skipped) == folder.codes and widget.summary.done == []
    widget.close()
    widget.deleteLater()


def test_cancel_from_the_widget(folder, tmp_path):
    widget = WdgProvinceRun(lambda: ("pbfnongrain", {}))
    type_into(widget.source_edit, str(folder.folder))
    type_into(widget.output_edit, str(tmp_path / "province.gpkg"))
    widget.workers_spin.setValue(1)
    QTest.mouseClick(widget.start_button, Qt.MouseButton.LeftButton)
    end = time.time() + 60
    while not widget.rows and time.time() < end:  # the counties are listed as queued
        QCoreApplication.processEvents()
        time.sleep(0.02)
    QTest.mouseClick(widget.cancel_button, Qt.MouseButton.LeftButton)
    wait_for(widget)
    assert widget.status.text() == "Canceled."
    assert widget.summary is None or len(widget.summary.done) < len(folder.codes)
    widget.deleteLater()


PG = os.environ.get("HUIJIAO_TEST_PG", "")


@pytest.mark.skipif(not PG, reason="HUIJIAO_TEST_PG not set (optional PostgreSQL component)")
def test_province_run_into_postgis_from_the_widgets(folder):
    import psycopg

    schema = f"province_dock_{uuid.uuid4().hex[:8]}"
    widget = WdgProvinceRun(lambda: ("pbfnongrain", {}))
    try:
        type_into(widget.source_edit, str(folder.folder))
        type_into(widget.output_edit, f"{PG}?schema={schema}")
        widget.workers_spin.setValue(2)
        QTest.mouseClick(widget.start_button, Qt.MouseButton.LeftButton)
        wait_for(widget)
        assert widget.status.text() == "3 counties done, 1 failed."
        with psycopg.connect(PG) as db:
            runs = dict(db.execute(f"SELECT county_code, status FROM {schema}.province_runs").fetchall())
            levels = dict(
                db.execute(f"SELECT level, count(*) FROM {schema}.province_stats GROUP BY 1").fetchall()
            )
        assert runs == {**{code: "done" for code in folder.codes}, "610799": "failed"}
        assert levels.keys() == {"county", "city", "province"}
        # a second click resumes from the database
        QTest.mouseClick(widget.start_button, Qt.MouseButton.LeftButton)
        wait_for(widget)
        assert all(widget.county_state(code) == "Done earlier" for code in folder.codes)
    finally:
        widget.deleteLater()
        with psycopg.connect(PG, autocommit=True) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
