"""The comparison dock's 全省 (province) page, driven as a user would: the preset chosen on the Inputs page,
the page switched, source and output typed, Run clicked; every county ends done and the output holds the
preset's pieces with their county codes."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing

from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtTest import QTest

from huijiao_plugin.gui.docks.dock_compare import HuijiaoCompareDock
from tests.datagen.province import generate_province


def test_province_page_runs_the_chosen_preset(qgis_iface, tmp_path):
    province = generate_province(tmp_path / "province", size=400, counties=2, seed=11)
    dock = HuijiaoCompareDock(qgis_iface)
    dock.show()
    try:
        dock.preset_combo.setCurrentIndex(dock.preset_combo.findData("hsfnotinpbf"))
        dock.pages.setCurrentIndex(dock.pages.count() - 1)
        assert dock.pages.tabText(dock.pages.currentIndex()) == "Province"
        page = dock.province_widget
        QTest.keyClicks(page.source_edit, str(province.folder))
        QTest.keyClicks(page.output_edit, str(tmp_path / "out.gpkg"))
        QTest.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
        end = time.time() + 300
        while page.task is not None and time.time() < end:
            QCoreApplication.processEvents()
            time.sleep(0.02)
        assert page.task is None, page.status.text()
        assert sorted(page.rows) == sorted(province.codes), page.status.text()
        assert all(page.county_state(code) == "Done" for code in province.codes)
        with closing(sqlite3.connect(tmp_path / "out.gpkg")) as db:
            rules = {r[0] for r in db.execute("SELECT DISTINCT rule_id FROM province_result")}
            counties = {r[0] for r in db.execute("SELECT DISTINCT run_county FROM province_result")}
        assert rules == {"huijiao:hsfnotinpbf"}
        assert counties <= set(province.codes) and counties
    finally:
        dock.unload()
        dock.deleteLater()
