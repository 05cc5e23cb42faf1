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
from tests.gui.task_support import china_today, wait_until
from tests.integration.server_support import client_for, demo_server_fixture, make_package

server = demo_server_fixture("exchange-calendar")


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
    assert widget.bar.busy() and not widget.load_button.isEnabled()  # the answer comes back from a task
    wait_until(lambda: not widget.bar.busy())
    assert widget.load_button.isEnabled()
    rows = _rows(widget.tree)
    by_name = {r[0]: r for r in rows}
    # 年度变更 was released 2025-03-01: due 30 days later, overdue since (nothing was delivered)
    dltb = by_name["年度国土变更调查地类图斑"]
    late = (china_today() - dt.date(2025, 3, 31)).days
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
    wait_until(lambda: not widget.bar.busy())
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


@pytest.mark.parametrize("tab", ["deadlines", "evaluation"])
def test_load_runs_in_a_task_and_cancel_discards_the_answer(
    qgis_iface, qgis_new_project, server, tmp_path, tab
):
    """The GUI thread only starts the request: cancel is offered while it runs, and a canceled answer never
    fills the table; the next load works."""
    dock = _dock(qgis_iface, server, tmp_path, "demo_zrzy_reviewer")
    widget = getattr(dock, tab)
    dock.tabs.setCurrentWidget(widget)
    table = widget.tree if tab == "deadlines" else widget.table
    label = widget.summary_label if tab == "deadlines" else widget.status_label
    widget.year_spin.setValue(2025)
    assert not widget.bar.cancel_button.isEnabled()
    widget.load_button.click()
    assert widget.bar.cancel_button.isEnabled() and widget.bar.progress.isVisibleTo(widget)
    widget.bar.cancel_button.click()
    wait_until(lambda: not widget.bar.busy())
    assert table.topLevelItemCount() == 0 and widget.rows == []
    assert label.text() in ("Canceled.", "已取消。")
    assert not widget.bar.cancel_button.isEnabled() and not widget.bar.progress.isVisibleTo(widget)
    widget.load_button.click()
    wait_until(lambda: not widget.bar.busy())
    assert table.topLevelItemCount() > 0
    dock.deleteLater()
