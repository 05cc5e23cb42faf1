"""The analyst's day in the 共享图层 and 成果汇交 panels, driven from the widgets with the plugin loaded as
QGIS loads it, against the real exchange server: what is due → 一张图 loads → check a delivered layer →
pre-flight and submit → the verified receipt; the new version is on the server, but neither announced nor
listed as shared data to its own department. (The comparison and change-patch steps are D2's part.)"""

from __future__ import annotations

import datetime as dt
import time

from osgeo import gdal, ogr
from qgis.core import Qgis, QgsProject
from qgis.PyQt.QtCore import QCoreApplication, Qt

import huijiao_plugin
from huijiao_plugin.core.session import Session
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.gui.docks.dock_shared_layers import COL_STATE, ROLE_DATASET, STATE_LOADED
from tests.gui.layout_support import show_in_small_window
from tests.gui.project_support import clear_project
from tests.gui.task_support import china_today
from tests.gui.test_plugin_lifecycle import flush_deletes
from tests.integration.server_support import client_for, demo_server_fixture, dltb_layer

server = demo_server_fixture("exchange-day")


def _until(done, timeout=120):
    end = time.time() + timeout
    while not done():
        QCoreApplication.processEvents()
        time.sleep(0.01)
        assert time.time() < end, "timed out"
    for _ in range(20):
        QCoreApplication.processEvents()


def _delivered_folder(demo_county, root):
    """What 农业农村 delivered on a disk: 30 features of 年度变更 DLTB_N1, two with an empty ZLDWDM."""
    folder = root / "delivered"
    folder.mkdir()
    gpkg = folder / "县级成果.gpkg"
    gdal.VectorTranslate(
        str(gpkg), str(demo_county.gpkg), SQLStatement="SELECT * FROM DLTB_N1 LIMIT 30", layerName="DLTB_N1"
    )
    ds = ogr.Open(str(gpkg), update=1)
    layer = ds.GetLayerByName("DLTB_N1")
    for _ in range(2):
        feature = layer.GetNextFeature()
        feature.SetFieldNull("ZLDWDM")
        layer.SetFeature(feature)
    ds = None
    return folder


def test_the_analysts_day(qgis_iface, qgis_new_project, demo_county, server, tmp_path):
    flush_deletes()
    state = tmp_path / "profile"
    session = Session(
        HuijiaoSettings(
            department="zrzy", region_code="610102", unit_name="新城区自然资源局", server_url=server.url
        ),
        state_dir=state,
    )
    session.client_factory = lambda: client_for(server.url, "demo_zrzy_submitter", state)
    plugin = huijiao_plugin.classFactory(qgis_iface)
    plugin.session = session  # what plugin.py makes from the saved settings
    plugin.initGui()
    show_in_small_window(qgis_iface.mainWindow())
    shared = plugin.docks["HuijiaoSharedLayersDock"]
    submit = plugin.docks["HuijiaoSubmitDock"]
    shared.feed_timer.stop()
    shared.first_feed_timer.stop()
    try:
        # 1. what is due: 年度变更 was released 2025-03-01, due 30 days later, nothing delivered yet
        submit.raise_()
        submit.tabs.setCurrentWidget(submit.deadlines)
        submit.deadlines.year_spin.setValue(2025)
        submit.deadlines.load_button.click()
        _until(lambda: not submit.deadlines.bar.busy())
        first = submit.deadlines.tree.topLevelItem(0)
        assert first.text(0) == "年度国土变更调查地类图斑" and first.text(2) == "2025-03-31"
        assert first.text(3) == f"{(china_today() - dt.date(2025, 3, 31)).days} days late"

        # 2. 一张图 loads from the delivered folder
        shared.raise_()
        shared.scan_path(str(_delivered_folder(demo_county, tmp_path)))
        _until(lambda: not shared.is_busy())
        shared.load_button.click()
        _until(lambda: not shared.is_busy())
        item = shared.dataset_item("dltb_biangeng")
        assert item.data(COL_STATE, ROLE_DATASET) == STATE_LOADED
        [loaded] = shared.loaded_layers("dltb_biangeng")
        group = QgsProject.instance().layerTreeRoot().findGroup("自然资源")
        assert group is not None and group.findLayer(loaded.id()) is not None

        # 3. check the delivered layer: the empty 坐落单位代码 is found and named as the user knows it
        shared.tree.clearSelection()
        item.setSelected(True)
        shared.check_button.click()
        _until(lambda: not shared.is_busy())
        messages = [f.message_zh for r in shared.reports for f in r.findings]
        assert any(f"“{loaded.name()}”" in m and "坐落单位代码" in m for m in messages), messages

        # 4. pre-flight and submit the county's own result layer
        result = dltb_layer(seed="day")
        result.setName("新城区年度变更成果")
        QgsProject.instance().addMapLayer(result)
        submit.raise_()
        submit.tabs.setCurrentWidget(submit.form)
        submit.dataset_combo.setCurrentIndex(submit.dataset_combo.findData("dltb_biangeng"))
        submit.period_edit.setText("2025")
        for i in range(submit.layer_list.count()):
            row = submit.layer_list.item(i)
            ticked = row.data(Qt.ItemDataRole.UserRole) == result.id()
            row.setCheckState(Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)
        submit.validate_button.click()
        assert submit.wait(120)
        assert submit.report is not None and submit.report.ok, [f.message for f in submit.report.findings]
        submit.accept_warnings_check.setChecked(True)
        submit.submit_button.click()
        assert submit.wait(120)

        # 5. the receipt: verified, in the history with names and local time
        assert submit.last_result is not None and submit.last_result.accepted
        assert "年度国土变更调查地类图斑" in submit.receipt_view.toPlainText()
        receipts = submit.receipts.tree
        assert receipts.topLevelItemCount() == 1
        received = receipts.topLevelItem(0)
        assert received.text(1) == "年度国土变更调查地类图斑"
        assert dt.datetime.strptime(received.text(0), "%Y-%m-%d %H:%M")
        submit.tabs.setCurrentWidget(submit.receipts)
        receipts.setCurrentItem(received)
        submit.receipts.reverify_button.click()
        assert "verified" in submit.receipts.detail.toPlainText()

        # 6. the version is on the server; the shared-data list (other departments' data) and the
        # notifications leave out what the department sent itself
        bar = qgis_iface.messageBar()
        before = len(bar.get_messages(Qgis.MessageLevel.Info))
        assert shared.poll_feed(0.0) is not None
        _until(lambda: shared.feed_task is None)
        assert shared.last_feed_items == []
        assert bar.get_messages(Qgis.MessageLevel.Info)[before:] == []
        shared.tabs.setCurrentWidget(shared.server_tab)
        _until(lambda: not shared.server_busy())
        sha = submit.last_result.receipt["package_sha256"]
        assert sha in [v["package_sha256"] for v in shared.server_versions]
        assert sha not in [v["package_sha256"] for v in shared.visible_versions()]
    finally:
        plugin.unload()
        clear_project(qgis_iface)  # the next tests start from an empty project
        flush_deletes()
