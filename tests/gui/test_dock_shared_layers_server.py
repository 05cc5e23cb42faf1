"""The 服务器共享数据 tab of the 共享图层 panel against the real exchange server on 127.0.0.1.

自然资源 submits a package; the 农业农村 reader's panel gets the feed notification (long poll in a task),
lists the newest version per dataset, downloads it with progress (a slow TCP relay makes the cancel
deterministic), verifies, caches and loads it styled into the 一张图 group of the dataset."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from qgis.core import Qgis, QgsCategorizedSymbolRenderer, QgsProject
from qgis.PyQt.QtCore import QCoreApplication

from huijiao_plugin.core.exchange.offline import PACKAGE_PROPERTY
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.gui.docks.dock_shared_layers import (
    SRV_STATE,
    HuijiaoSharedLayersDock,
    newest_per_dataset,
)
from tests.integration.server_support import CuttingRelay, client_for, demo_server_fixture, make_package

NAME_ZH = "年度国土变更调查地类图斑"


server = demo_server_fixture("exchange-shared", release=False)


def _wait(dock, attr="server_task", timeout=60):
    end = time.time() + timeout
    while getattr(dock, attr) is not None:
        QCoreApplication.processEvents()
        time.sleep(0.01)
        assert time.time() < end, f"{attr} did not finish"
    for _ in range(10):
        QCoreApplication.processEvents()


def make_dock(qgis_iface, url, state_dir):
    dock = HuijiaoSharedLayersDock(qgis_iface)
    dock.feed_timer.stop()  # the test drives the polls
    dock.first_feed_timer.stop()
    dock.state_dir = state_dir
    dock.client_factory = lambda: client_for(url, "demo_nync_reader", state_dir)
    dock.apply_server_settings(
        HuijiaoSettings(department="nync", region_code="610102", unit_name="农业农村局", server_url=url)
    )
    return dock


def test_feed_list_download_and_load_styled(qgis_iface, qgis_new_project, server, tmp_path):
    dock = make_dock(qgis_iface, server.url, tmp_path / "nync")
    assert dock.tabs.count() == 2 and dock.tabs.widget(1).objectName() == "HuijiaoServerSharedTab"
    assert dock.poll_feed(0.0) is not None  # the first poll: the cursor starts after what exists
    _wait(dock, "feed_task")
    before = len(qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Info))

    # a long poll is waiting in a task while 自然资源 submits
    task = dock.poll_feed(15.0)
    assert task is not None and dock.feed_busy()
    assert dock.poll_feed(15.0) is None  # one poll at a time
    time.sleep(0.3)
    package = make_package(tmp_path, attachment_kb=64)
    submitted = client_for(server.url, "demo_zrzy_submitter", tmp_path / "zrzy").submit_package(package)
    assert submitted.accepted, submitted.reasons
    _wait(dock, "feed_task")
    [item] = dock.last_feed_items
    assert item["submission_id"] == submitted.submission_id
    news = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Info)[before:]
    assert any(NAME_ZH in m and "610102" in m and "2025" in m for m in news), news

    # the notification refreshed the list: the newest version per dataset of the other department
    _wait(dock)
    rows = dock.visible_versions()
    assert [(v["dataset_id"], v["region_code"], v["department"]) for v in rows] == [
        ("dltb_biangeng", "610102", "zrzy")
    ]
    assert rows[0]["submission_id"] == submitted.submission_id
    item = dock.server_item(rows[0]["version_id"])
    assert item is not None and item.text(0) == NAME_ZH
    # names, not codes, and the local time, not ISO UTC
    assert item.text(1) in ("新城区 (610102)", "新城区（610102）")
    shared = dt.datetime.fromisoformat(rows[0]["created_at"].replace("Z", "+00:00"))
    assert shared.tzinfo is not None
    assert item.text(6) == shared.astimezone().strftime("%Y-%m-%d %H:%M")
    assert item.text(SRV_STATE) == "on the server"

    # 下载并加载 through the panel: progress, hash check, extraction, styled into the 自然资源 group
    progress = []
    task = dock.download_and_load(item)
    assert task is not None and dock.server_busy()
    assert not dock.server_progress.isHidden() and dock.server_cancel_button.isEnabled()
    task.progressChanged.connect(progress.append)
    _wait(dock)
    assert not dock.server_cancel_button.isEnabled()
    [layer] = dock.last_loaded
    assert layer.featureCount() == 6
    assert layer.name() == f"{NAME_ZH} 2025"
    assert layer.customProperty("huijiao/dataset_id") == "dltb_biangeng"
    assert layer.customProperty(PACKAGE_PROPERTY) == submitted.receipt["package_sha256"]
    renderer = layer.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == "DLBM"
    group = QgsProject.instance().layerTreeRoot().findGroup("自然资源")
    assert group is not None and group.findLayer(layer.id()) is not None
    assert progress and progress[-1] == pytest.approx(100.0)
    assert item.text(SRV_STATE) == "loaded"
    assert any("loaded" in m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Success))
    cached = tmp_path / "nync" / "cache" / (submitted.receipt["package_sha256"] + ".zip")
    assert cached.exists()

    # a second load comes from the cache: the server is not asked for the bytes again (unreachable here)
    QgsProject.instance().removeMapLayer(layer.id())
    dock.client_factory = lambda: client_for("http://127.0.0.1:9", "demo_nync_reader", tmp_path / "nync")
    assert dock.download_and_load(rows[0]) is not None
    _wait(dock)
    assert "(from the local cache)" in dock.server_status_label.text()
    [again] = dock.last_loaded
    assert again.featureCount() == 6
    dock.deleteLater()


def test_cancel_a_download_and_errors(qgis_iface, qgis_new_project, server, tmp_path):
    package = make_package(tmp_path, attachment_kb=3072)
    submitted = client_for(server.url, "demo_zrzy_submitter", tmp_path / "zrzy").submit_package(package)
    assert submitted.accepted, submitted.reasons
    relay = CuttingRelay(server.port, down_delay=0.016)  # about 1 MB/s server → client
    try:
        dock = make_dock(qgis_iface, relay.url, tmp_path / "nync")
        assert dock.refresh_server() is not None
        _wait(dock)
        [version] = [v for v in dock.visible_versions() if v["submission_id"] == submitted.submission_id]
        layers_before = len(QgsProject.instance().mapLayers())
        task = dock.download_and_load(version)
        end = time.time() + 30
        while task.done_bytes == 0:  # cancel once bytes are flowing
            QCoreApplication.processEvents()
            time.sleep(0.01)
            assert time.time() < end
        dock.cancel_server()
        _wait(dock)
        assert task.canceled_by_user
        assert dock.server_status_label.text() == "The download was canceled."
        assert len(QgsProject.instance().mapLayers()) == layers_before
        cache = tmp_path / "nync" / "cache"
        assert not list(cache.glob("*.zip")) and not list(cache.glob("*.part"))
        assert dock.server_download_button.isEnabled()
    finally:
        relay.close()

    # a long feed poll is canceled within one step (QGIS closing never waits for the whole poll)
    dock.client_factory = lambda: client_for(server.url, "demo_nync_reader", tmp_path / "nync")
    dock.poll_feed(0.0)  # the history first: the next poll has nothing to return and waits
    _wait(dock, "feed_task")
    _wait(dock)  # the list refresh the news started
    task = dock.poll_feed(60.0)
    time.sleep(0.3)
    assert dock.feed_busy()
    started = time.time()
    task.cancel()
    _wait(dock, "feed_task", timeout=20)
    assert time.time() - started < 8
    assert task.canceled_by_user and task.result == []

    # a wrong password: a Chinese server message in the status and the message bar, nothing crashes
    dock.client_factory = _bad_login(server.url, tmp_path / "bad")
    assert dock.refresh_server() is not None
    _wait(dock)
    assert dock.server_status_label.text()
    assert any(
        dock.server_status_label.text() in m
        for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Warning)
    )
    dock.deleteLater()


def _bad_login(url, state_dir):
    from huijiao_plugin.core.exchange.client import Credentials, ExchangeClient

    return lambda: ExchangeClient(
        url,
        Credentials(username="demo_nync_reader", password="wrong-password"),
        state_dir=state_dir,
        proxies={},
        allow_unencrypted=True,
    )


def test_newest_per_dataset():
    versions = [
        {"dataset_id": "gbznt", "region_code": "610102", "period": "2024", "version": 3},
        {"dataset_id": "gbznt", "region_code": "610102", "period": "2025", "version": 1},
        {"dataset_id": "gbznt", "region_code": "610103", "period": "2025", "version": 2},
        {"dataset_id": "bghtb", "region_code": "610102", "period": "2025Q3", "version": 1},
        {"dataset_id": "bghtb", "region_code": "610102", "period": "2025Q3", "version": 2},
    ]
    out = [
        (v["dataset_id"], v["region_code"], v["period"], v["version"]) for v in newest_per_dataset(versions)
    ]
    assert out == [
        ("bghtb", "610102", "2025Q3", 2),
        ("gbznt", "610102", "2025", 1),
        ("gbznt", "610103", "2025", 2),
    ]
