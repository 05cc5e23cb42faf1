"""The 成果汇交 panel driven through one submission against the real exchange server."""

from __future__ import annotations

import pytest
from qgis.core import Qgis, QgsFeature, QgsGeometry, QgsProject, QgsRectangle

from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.gui.docks.dock_submit import FID_ROLE, HuijiaoSubmitDock
from huijiao_plugin.gui.layer_tasks import format_progress
from tests.gui.task_support import wait_until
from tests.integration.server_support import client_for, demo_server_fixture, dltb_layer

server = demo_server_fixture("exchange-gui")


@pytest.fixture()
def dock(qgis_iface, qgis_new_project, server, tmp_path):
    widget = HuijiaoSubmitDock(qgis_iface)
    widget.state_dir = tmp_path / "profile"
    widget.client_factory = lambda: client_for(server.url, "demo_zrzy_submitter", tmp_path / "profile")
    widget.apply_settings(
        HuijiaoSettings(
            department="zrzy", region_code="610102", unit_name="新城区自然资源局", server_url=server.url
        )
    )
    widget.period_edit.setText("2025")
    yield widget
    widget.deleteLater()


def test_one_submission_through_the_panel(dock, qgis_iface):
    layer = dltb_layer(seed="gui")
    QgsProject.instance().addMapLayer(layer)
    dock.select_layers([layer], "dltb_biangeng")
    assert dock.dataset_combo.currentData() == "dltb_biangeng"
    assert [lyr.id() for lyr in dock.selected_layers()] == [layer.id()]

    report = dock.validate()
    assert report is not None and report.ok, [f.message for f in report.findings]
    assert dock.submit()
    assert not dock.submit_button.isEnabled()  # running
    assert dock.wait(60)
    text = dock.receipt_view.toPlainText()
    assert dock.last_result is not None and dock.last_result.accepted, text
    assert dock.last_result.submission_id in text
    assert "verified" in text
    assert dock.progress_bar.value() == 1000
    assert dock.submit_button.isEnabled()
    assert any("accepted" in m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Success))

    # the receipt is in the history and re-verifies
    assert dock.receipts_tree.topLevelItemCount() == 1
    dock.receipts_tree.setCurrentItem(dock.receipts_tree.topLevelItem(0))
    assert dock.reverify_selected() is True
    assert dock.last_result.submission_id in dock.receipt_detail.toPlainText()

    # the deadline of the unit is met now
    dock.tabs.setCurrentWidget(dock.deadlines)
    dock.deadlines.year_spin.setValue(2025)
    dock.deadlines.load_button.click()
    wait_until(lambda: not dock.deadlines.bar.busy())
    tree = dock.deadlines.tree
    rows = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    dltb = [r for r in rows if r.text(0) == "年度国土变更调查地类图斑"]
    assert dltb and dltb[0].text(2) == "2025-03-31"


def test_errors_block_and_findings_zoom_to_features(dock, qgis_iface):
    layer = dltb_layer(seed="err")
    overlap = QgsFeature(layer.fields())
    overlap.setAttributes(["X1", "9", "0101", "水田", "30", "6101020010010000000", 2500.0])
    overlap.setGeometry(QgsGeometry.fromRect(QgsRectangle(580050, 3800000, 580150, 3800050)))
    layer.dataProvider().addFeatures([overlap])
    QgsProject.instance().addMapLayer(layer)
    dock.select_layers([layer], "dltb_biangeng")
    assert dock.submit()  # validation runs in the background; its errors stop the submission
    assert dock.wait(60)
    assert any("errors" in m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical))
    assert dock.last_package is None and dock.last_result is None
    assert not list((dock.state_dir / "outbox").glob("*")) if (dock.state_dir / "outbox").exists() else True
    assert dock.submit_button.isEnabled() and not dock.cancel_button.isEnabled()
    items = [dock.findings_tree.topLevelItem(i) for i in range(dock.findings_tree.topLevelItemCount())]
    [overlap_item] = [i for i in items if "overlap" in i.text(1)]
    dock._zoom_to_finding(overlap_item)
    assert sorted(layer.selectedFeatureIds()) == sorted(overlap_item.data(0, FID_ROLE))
    assert len(layer.selectedFeatureIds()) == 3


def test_offline_export_and_import_through_the_panel(dock, qgis_iface, tmp_path):
    layer = dltb_layer(seed="off")
    QgsProject.instance().addMapLayer(layer)
    dock.select_layers([layer], "dltb_biangeng")
    exported = dock.export_offline(tmp_path / "usb")
    assert exported is not None and exported.exists()
    assert dock.import_package_file(exported) is not None  # hashes checked in a task
    wait_until(lambda: not dock.offline.busy())
    loaded = dock.offline.last_layers
    assert [lyr.featureCount() for lyr in loaded] == [layer.featureCount()]
    dock.import_package_file(exported)
    wait_until(lambda: not dock.offline.busy())
    assert dock.offline.last_layers == []
    assert "already imported" in dock.offline_label.text()
    # a registration canceled at once hands nothing back; the next one gets the verified receipt
    dock.register_offline_file(exported)
    assert not dock.offline.register_button.isEnabled() and dock.offline.cancel_button.isVisibleTo(
        dock.offline
    )
    dock.offline.cancel_button.click()
    wait_until(lambda: not dock.offline.busy())
    assert dock.offline.last_result is None and dock.offline_label.text() in ("Canceled.", "已取消。")
    dock.register_offline_file(exported)
    wait_until(lambda: not dock.offline.busy())
    result = dock.offline.last_result
    assert result is not None and result.receipt["offline"] is True


def test_progress_text():
    text = format_progress(30 * 1024 * 1024, 40 * 1024 * 1024, 10.0, 10 * 1024 * 1024)
    assert text == "30.0 / 40.0 MB, 2.0 MB/s, 5 s left"
    assert format_progress(40 * 1024 * 1024, 40 * 1024 * 1024, 10.0) == "40.0 / 40.0 MB, 4.0 MB/s"
    assert format_progress(512, 2048, 1.0) == "0.5 / 2.0 KB, 3 s left"


def test_paused_upload_resumes_after_restart(qgis_iface, qgis_new_project, server, tmp_path):
    settings = HuijiaoSettings(department="zrzy", region_code="610102", unit_name="u", server_url=server.url)

    def make_dock():
        widget = HuijiaoSubmitDock(qgis_iface)
        widget.state_dir = tmp_path / "profile"
        widget.client_factory = lambda: client_for(
            server.url, "demo_zrzy_submitter", tmp_path / "profile", chunk_size=4096
        )
        widget.apply_settings(settings)
        widget.period_edit.setText("2025")
        return widget

    layer = dltb_layer(n=300, seed="pause")
    QgsProject.instance().addMapLayer(layer)
    first = make_dock()
    first.select_layers([layer], "dltb_biangeng")
    assert first.submit()
    first.pause()
    assert first.wait(60)
    assert "Paused" in first.progress_label.text()
    assert first.pending_packages() == [first.last_package]
    assert first.pending_label.isVisible() or not first.isVisible()
    first.deleteLater()

    second = make_dock()  # QGIS started again: the panel finds the interrupted upload
    [package] = second.pending_packages()
    assert second.submit()
    assert second.wait(60)
    assert second.last_result is not None and second.last_result.accepted
    assert second.last_package == package
    assert second.pending_packages() == []


def test_layer_list_follows_the_project_and_ticks_the_chosen_dataset(dock):
    from huijiao_plugin.core.one_map import DATASET_PROPERTY

    dock.dataset_combo.setCurrentIndex(dock.dataset_combo.findData("dltb_biangeng"))
    recognised = dltb_layer(seed="recognised")
    recognised.setCustomProperty(DATASET_PROPERTY, "dltb_biangeng")
    other = dltb_layer(seed="other")
    QgsProject.instance().addMapLayers([recognised, other])  # no refresh by hand
    assert [lyr.id() for lyr in dock.selected_layers()] == [recognised.id()]
    assert dock.layer_list.count() == 2

    QgsProject.instance().removeMapLayer(other.id())
    assert dock.layer_list.count() == 1
    dock.unload()  # disconnects from the project
    QgsProject.instance().addMapLayer(dltb_layer(seed="late"))
    assert dock.layer_list.count() == 1


def test_upload_is_a_task_and_quitting_pauses_it(qgis_iface, qgis_new_project, server, tmp_path):
    """The upload runs as a QgsTask in QGIS's task manager (its bytes shown by the panel); a cancel from
    outside the panel, as when QGIS closes and cancels its tasks, pauses it: the next 提交 resumes it and
    the receipt comes back. (A slow relay, about 16 KB per 50 ms server → client, keeps it running.)"""
    from qgis.core import QgsApplication, QgsTask

    from tests.integration.server_support import CuttingRelay

    relay = CuttingRelay(server.port, down_delay=0.05)
    settings = HuijiaoSettings(department="zrzy", region_code="610102", unit_name="u", server_url=relay.url)

    def make_dock():
        widget = HuijiaoSubmitDock(qgis_iface)
        widget.state_dir = tmp_path / "profile"
        widget.client_factory = lambda: client_for(
            relay.url, "demo_zrzy_submitter", tmp_path / "profile", chunk_size=2048
        )
        widget.apply_settings(settings)
        widget.period_edit.setText("2025")
        return widget

    layer = dltb_layer(n=300, seed="quit")
    QgsProject.instance().addMapLayer(layer)
    first = make_dock()
    first.select_layers([layer], "dltb_biangeng")
    assert first.submit()
    wait_until(lambda: first._upload is not None and first._upload.done_bytes > 0, 60)
    upload = first._upload
    manager = QgsApplication.taskManager()
    assert upload in manager.activeTasks() and upload.description().endswith(first.last_package.name)
    assert upload.flags() & QgsTask.Flag.CanCancel
    wait_until(lambda: first.progress_bar.value() > 0, 10)
    assert "KB" in first.progress_label.text()

    manager.cancelAll()  # what QGIS does with running tasks when it closes
    assert first.wait(60)
    assert "Paused" in first.progress_label.text(), first.progress_label.text()
    assert first.pending_packages() == [first.last_package]
    first.deleteLater()

    second = make_dock()  # QGIS started again
    [package] = second.pending_packages()
    assert second.submit()
    assert second.wait(120)
    assert second.last_result is not None and second.last_result.accepted
    assert second.last_package == package and second.pending_packages() == []
    second.deleteLater()
    relay.close()
