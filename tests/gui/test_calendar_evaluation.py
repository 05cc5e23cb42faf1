"""截止日期 and 成效评估 in the 成果汇交 panel, driven through the widgets against the real exchange server.

The calendar names datasets and regions, counts the days from the release (2025-03-01 + 30 days), highlights
what is overdue and shows monitoring exchanges against the twice-a-year rule; the evaluation lists the four
indicator groups per county, draws them with matplotlib and exports xlsx and PDF."""

from __future__ import annotations

import datetime as dt

import pytest
from qgis.PyQt.QtGui import QColor

from huijiao_plugin.core.session import Session
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.gui.docks.dock_submit import HuijiaoSubmitDock
from tests.integration.server_support import client_for, demo_server_fixture, make_package

server = demo_server_fixture("exchange-calendar")


def _china_today() -> dt.date:
    """The server counts deadline days in China Standard Time (UTC+8), whatever the machine's zone."""
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()


def _dock(qgis_iface, server, tmp_path, username):
    session = Session(
        HuijiaoSettings(department="zrzy", region_code="610102", server_url=server.url),
        state_dir=tmp_path / username,
    )
    session.client_factory = lambda: client_for(server.url, username, tmp_path / username)
    return HuijiaoSubmitDock(qgis_iface, session=session)


def _rows(tree):
    return [
        [tree.topLevelItem(i).text(c) for c in range(tree.columnCount())]
        for i in range(tree.topLevelItemCount())
    ]


def test_calendar_days_left_overdue_first_and_monitoring_rule(qgis_iface, qgis_new_project, server, tmp_path):
    dock = _dock(qgis_iface, server, tmp_path, "demo_zrzy_submitter")
    widget = dock.deadlines
    dock.tabs.setCurrentWidget(widget)
    widget.year_spin.setValue(2025)
    widget.load_button.click()
    rows = _rows(widget.tree)
    by_name = {r[0]: r for r in rows}
    # 年度变更 was released 2025-03-01: due 30 days later, overdue since (nothing was delivered)
    dltb = by_name["年度国土变更调查地类图斑"]
    late = (_china_today() - dt.date(2025, 3, 31)).days
    assert dltb[1] == "新城区 (610102)" or dltb[1] == "新城区（610102）"
    assert dltb[2] == "2025-03-31"
    assert dltb[3] == f"{late} days late" or dltb[3] == f"逾期 {late} 天"
    assert rows[0][0] == "年度国土变更调查地类图斑"  # overdue items first
    item = widget.tree.topLevelItem(0)
    assert item.background(0).color() == QColor("#fdecea") and item.font(0).bold()
    # monitoring data: 监测图斑 is owed twice a year
    jctb = by_name["季度监测疑似耕地变化图斑"]
    assert jctb[4] in ("0 of 2 this year", "本年 0/2 次")
    assert "dltb_biangeng" not in " ".join(" ".join(r) for r in rows)  # names, not codes
    assert "overdue" in widget.summary_label.text() or "逾期" in widget.summary_label.text()
    dock.deleteLater()


def test_evaluation_table_chart_and_exports(qgis_iface, qgis_new_project, server, tmp_path):
    import openpyxl

    sent = client_for(server.url, "demo_zrzy_submitter", tmp_path / "s").submit_package(
        make_package(tmp_path)
    )
    assert sent.accepted, sent.reasons
    dock = _dock(qgis_iface, server, tmp_path, "demo_zrzy_reviewer")
    widget = dock.evaluation
    dock.tabs.setCurrentWidget(widget)
    widget.year_spin.setValue(2025)
    assert not widget.xlsx_button.isEnabled()
    widget.load_button.click()
    rows = _rows(widget.table)
    assert [r[0] for r in rows] in (["新城区 (610102)", "Total"], ["新城区（610102）", "合计"])
    # one accepted online submission out of one: the security (validation) rate is 100 %
    header = [widget.table.headerItem().text(c) for c in range(widget.table.columnCount())]
    assert header[1:5] in (
        ["Data collection", "Sharing", "Security", "Use"],
        ["数据采集汇聚", "共享开放", "安全保障", "应用成效"],
    )
    assert rows[0][3] == "100.0%"
    # the chart: one bar per indicator and county
    axes = widget.canvas.figure.axes[0]
    assert len(axes.patches) == 4 * len(rows)
    assert axes.patches[2 * len(rows)].get_height() == pytest.approx(100.0)

    assert widget.xlsx_button.isEnabled()
    path = widget.export_xlsx(str(tmp_path / "评估.xlsx"))
    sheet = openpyxl.load_workbook(path).active
    assert [c.value for c in sheet[1]] == header
    assert sheet.freeze_panes == "A2" and sheet["A1"].font.bold
    assert sheet["D2"].value == pytest.approx(1.0) and sheet["D2"].number_format == "0.0%"
    pdf = widget.export_pdf(str(tmp_path / "评估.pdf"))
    with open(pdf, "rb") as handle:
        assert handle.read(5) == b"%PDF-"
    dock.deleteLater()
