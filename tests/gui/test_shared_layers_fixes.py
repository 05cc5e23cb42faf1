"""共享图层 fixes: notifications only of other departments' data (bug 7)."""

from __future__ import annotations

import time

from qgis.core import Qgis
from qgis.PyQt.QtCore import QCoreApplication

from huijiao_plugin.core.session import Session
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.gui.docks.dock_shared_layers import HuijiaoSharedLayersDock
from tests.integration.server_support import client_for, demo_server_fixture, make_package

server = demo_server_fixture("exchange-own-feed", release=False)


def _wait_feed(dock, timeout=60):
    end = time.time() + timeout
    while dock.feed_task is not None:
        QCoreApplication.processEvents()
        time.sleep(0.01)
        assert time.time() < end, "the feed poll did not finish"
    for _ in range(10):
        QCoreApplication.processEvents()


def _dock_for(qgis_iface, url, username, department, state_dir):
    session = Session(
        HuijiaoSettings(department=department, region_code="610102", server_url=url), state_dir=state_dir
    )
    session.client_factory = lambda: client_for(url, username, state_dir)
    dock = HuijiaoSharedLayersDock(qgis_iface, session=session)
    dock.feed_timer.stop()
    dock.first_feed_timer.stop()
    return dock


def test_no_notification_of_versions_the_users_department_sent(qgis_iface, server, tmp_path):
    mine = _dock_for(qgis_iface, server.url, "demo_zrzy_reader", "zrzy", tmp_path / "zrzy")
    theirs = _dock_for(qgis_iface, server.url, "demo_nync_reader", "nync", tmp_path / "nync")
    for dock in (mine, theirs):
        assert dock.poll_feed(0.0) is not None  # the cursor starts after what exists
        _wait_feed(dock)
    bar = qgis_iface.messageBar()
    before = len(bar.get_messages(Qgis.MessageLevel.Info))

    package = make_package(tmp_path, attachment_kb=16)
    sent = client_for(server.url, "demo_zrzy_submitter", tmp_path / "sender").submit_package(package)
    assert sent.accepted, sent.reasons

    # 自然资源's own reader: the feed has the version, but it is not news for its own department
    assert mine.poll_feed(0.0) is not None
    _wait_feed(mine)
    assert mine.last_feed_items == []
    assert bar.get_messages(Qgis.MessageLevel.Info)[before:] == []
    # 农业农村 is told
    assert theirs.poll_feed(0.0) is not None
    _wait_feed(theirs)
    assert [i["package_sha256"] for i in theirs.last_feed_items] == [sent.receipt["package_sha256"]]
    news = bar.get_messages(Qgis.MessageLevel.Info)[before:]
    assert len(news) == 1 and "年度国土变更调查地类图斑" in news[0]
    for dock in (mine, theirs):
        dock.deleteLater()
