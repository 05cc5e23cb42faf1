"""At 1366×768 every page of the 耕地比对 and 变化图斑 docks fits at the default docked width (420 px):
no clipped or cut button, no elided tab title, the main action visible (see layout_support.py).
``HUIJIAO_SCREENSHOTS=<folder>`` also writes a PNG of every page to look at."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QMainWindow, QTabWidget, QWidget

from huijiao_plugin.core.patches.store import PatchStore
from huijiao_plugin.core.session import Session
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.gui.docks.dock_compare import HuijiaoCompareDock
from huijiao_plugin.gui.docks.dock_patches import HuijiaoPatchesDock
from tests.gui.layout_support import (
    QGIS_CHROME_HEIGHT,
    SCREEN_HEIGHT,
    SCREEN_WIDTH,
    layout_problems,
    settle,
)

DOCK_WIDTH = 420


@pytest.fixture()
def window(qgis_iface, tmp_path):
    main = QMainWindow()
    main.setCentralWidget(QWidget(main))  # the map canvas
    main.resize(SCREEN_WIDTH, SCREEN_HEIGHT - QGIS_CHROME_HEIGHT)
    session = Session(HuijiaoSettings(region_code="610102", unit_name="分析员"), state_dir=tmp_path)
    store = PatchStore.create(tmp_path / "bghtb.gpkg", "EPSG:4545", county_code="610102")
    session.set_patch_store(str(store.path))
    docks = [HuijiaoCompareDock(qgis_iface, session, main), HuijiaoPatchesDock(qgis_iface, session, main)]
    for dock in docks:
        main.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    main.tabifyDockWidget(docks[0], docks[1])
    main.resizeDocks(docks, [DOCK_WIDTH, DOCK_WIDTH], Qt.Orientation.Horizontal)
    main.show()
    settle()
    assert main.height() == SCREEN_HEIGHT - QGIS_CHROME_HEIGHT, "the docks' minimum height grew the window"
    yield main, docks
    main.close()
    main.deleteLater()


def _screenshots(dock, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pages = [("", None, 0)]
    for tabs in dock.findChildren(QTabWidget):
        pages += [(tabs.tabText(i), tabs, i) for i in range(tabs.count())]
    for n, (title, tabs, index) in enumerate(pages):
        if tabs is not None:
            tabs.setCurrentIndex(index)
            settle()
        dock.grab().save(str(folder / f"{dock.objectName()}_{n:02d}_{title or 'main'}.png"))


def test_compare_dock_fits(window):
    _main, (compare, _patches) = window
    compare.raise_()
    settle()
    assert compare.width() >= DOCK_WIDTH - 20
    problems = layout_problems(compare, {"run": compare.run_button})
    if os.environ.get("HUIJIAO_SCREENSHOTS"):
        _screenshots(compare, Path(os.environ["HUIJIAO_SCREENSHOTS"]))
    assert problems == [], "\n".join(problems)


def test_patches_dock_fits(window):
    _main, (_compare, patches) = window
    patches.raise_()
    settle()
    problems = layout_problems(patches, {"set status": patches.status_widget.apply_button})
    if os.environ.get("HUIJIAO_SCREENSHOTS"):
        _screenshots(patches, Path(os.environ["HUIJIAO_SCREENSHOTS"]))
    assert problems == [], "\n".join(problems)
