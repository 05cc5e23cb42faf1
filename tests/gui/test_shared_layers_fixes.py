"""共享图层 fixes: notifications only of other departments' data (bug 7); a finding points at the layer that
was checked (bug 2); one check in 共享图层 and 成果汇交 naming the user's layer and the field's Chinese alias
(bug 5)."""

from __future__ import annotations

import shutil
import time

from osgeo import gdal, ogr
from qgis.core import Qgis, QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QCoreApplication, Qt

from huijiao_plugin.core.session import Session
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.gui.docks.dock_shared_layers import (
    COL_STATE,
    DATASET_PROPERTY,
    ROLE_DATASET,
    STATE_FOUND,
    STATE_LOADED,
    HuijiaoSharedLayersDock,
)
from huijiao_plugin.gui.docks.dock_submit import HuijiaoSubmitDock
from tests.gui.project_support import clear_project
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


def _wait_task(dock, timeout=120):
    end = time.time() + timeout
    while dock.is_busy():
        QCoreApplication.processEvents()
        time.sleep(0.01)
        assert time.time() < end, "the task did not finish"
    for _ in range(20):
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


# ---- bugs 2 and 5: the finding points at the checked layer; one check, the user's names in both panels --


def _county_folder(demo_county, root):
    """A folder with 40 features of DLTB_N1 in a GeoPackage: ZLDWDM emptied on two, DLBM 0105 on one."""
    folder = root / "scan"
    folder.mkdir()
    gpkg = folder / "变更调查.gpkg"
    gdal.VectorTranslate(
        str(gpkg), str(demo_county.gpkg), SQLStatement="SELECT * FROM DLTB_N1 LIMIT 40", layerName="DLTB_N1"
    )
    ds = ogr.Open(str(gpkg), update=1)
    layer = ds.GetLayerByName("DLTB_N1")
    feats = [layer.GetNextFeature() for _ in range(4)]
    for f in feats[1:3]:
        f.SetFieldNull("ZLDWDM")
        layer.SetFeature(f)
    feats[3].SetField("DLBM", "0105")
    layer.SetFeature(feats[3])
    empty, bad = sorted(f.GetFID() for f in feats[1:3]), feats[3].GetFID()
    ds = None
    return folder, gpkg, empty, bad


def _click_row(view, row):
    from qgis.PyQt.QtTest import QTest

    index = view.model().index(row, 0)
    view.scrollTo(index)
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(index).center())


def test_finding_points_at_the_checked_layer_and_both_panels_share_one_check(
    qgis_iface, qgis_new_project, demo_county, tmp_path
):
    folder, gpkg, empty_fids, bad_fid = _county_folder(demo_county, tmp_path)
    # another layer of the same dataset is already loaded (e.g. downloaded from the server)
    (tmp_path / "download").mkdir()
    copy = shutil.copy(gpkg, tmp_path / "download" / "变更调查.gpkg")
    decoy = QgsVectorLayer(f"{copy}|layername=DLTB_N1", "服务器下载的变更调查", "ogr")
    decoy.setCustomProperty(DATASET_PROPERTY, "dltb_biangeng")
    QgsProject.instance().addMapLayer(decoy)
    session = Session(HuijiaoSettings(department="zrzy", region_code="610431"), state_dir=tmp_path / "state")
    dock = HuijiaoSharedLayersDock(qgis_iface, session=session)
    dock.feed_timer.stop()
    dock.first_feed_timer.stop()
    dock.scan_path(str(folder))
    _wait_task(dock)
    # the tree follows the scanned file: the decoy does not make it 已加载
    item = dock.dataset_item("dltb_biangeng")
    assert item.data(COL_STATE, ROLE_DATASET) == STATE_FOUND

    dock.tree.clearSelection()
    item.setSelected(True)
    dock.check_button.click()
    _wait_task(dock)
    [report] = dock.reports
    rows = {dock.finding_at(r)[1].rule_id: r for r in range(dock.findings_proxy.rowCount())}
    empty = dock.finding_at(rows["required_field_empty"])[1]
    assert sorted(empty.feature_ids) == empty_fids
    assert "“坐落单位代码”" in empty.message_zh and "DLTB_N1" not in empty.message_zh

    # a click on the code finding selects in the checked file's layer (loaded now), not in the decoy
    _click_row(dock.findings_view, rows["code_domain"])
    checked = [lyr for lyr in dock.loaded_layers("dltb_biangeng") if lyr.id() != decoy.id()]
    assert len(checked) == 1 and checked[0].source() == f"{gpkg}|layername=DLTB_N1"
    # the message named the layer as the Layers panel shows it
    assert checked[0].name().startswith("年度国土变更调查地类图斑")
    assert f"“{checked[0].name()}”" in empty.message_zh
    assert checked[0].selectedFeatureIds() == [bad_fid]
    assert decoy.selectedFeatureCount() == 0
    assert dock.dataset_item("dltb_biangeng").data(COL_STATE, ROLE_DATASET) == STATE_LOADED

    # 成果汇交 预检 of the same layer: the same check, the same words
    submit = HuijiaoSubmitDock(qgis_iface, session=session)
    submit.select_layers([checked[0]], "dltb_biangeng")
    submit.validate_button.click()
    assert submit.wait(120)
    messages = [
        submit.findings_tree.topLevelItem(i).text(1) for i in range(submit.findings_tree.topLevelItemCount())
    ]
    assert empty.message_zh in messages, messages
    assert not any("DLTB_N1" in m or "DLTB_BG" in m for m in messages), messages
    for widget in (dock, submit):
        widget.deleteLater()
    clear_project(qgis_iface)  # the next tests start from an empty project
