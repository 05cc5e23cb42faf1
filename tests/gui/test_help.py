"""帮助: the plugin menu, every dock's title bar and every Processing algorithm open a section of the Chinese
manual that ships in the plugin package (the URL handler catches what QGIS would open in the browser)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QObject, QUrl, pyqtSlot
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import QAction, QToolButton

import huijiao_plugin
from tests.gui.test_plugin_lifecycle import flush_deletes

PACKAGE = Path(huijiao_plugin.__file__).resolve().parent


def manual_ids() -> set[str]:
    html = (PACKAGE / "docs" / "manual_zh.html").read_text(encoding="utf-8")
    return set(re.findall(r'id="([^"]+)"', html))


class Opened(QObject):
    def __init__(self):
        super().__init__()
        self.urls: list[QUrl] = []

    @pyqtSlot(QUrl)
    def open(self, url):  # noqa: A003
        self.urls.append(QUrl(url))


@pytest.fixture()
def opened(qgis_app):
    catcher = Opened()
    QDesktopServices.setUrlHandler("file", catcher, "open")
    yield catcher
    QDesktopServices.unsetUrlHandler("file")


def _section(url: QUrl) -> str:
    assert url.isLocalFile()
    path = Path(url.toLocalFile())
    assert path == PACKAGE / "docs" / "manual_zh.html" and path.is_file()
    return url.fragment()


def test_menu_and_every_dock_title_bar_open_their_manual_section(qgis_iface, opened):
    flush_deletes()
    plugin = huijiao_plugin.classFactory(qgis_iface)
    plugin.initGui()
    try:
        action = qgis_iface.mainWindow().findChild(QAction, "HuijiaoHelpAction")
        assert action is not None and action in plugin.menu.actions()
        action.trigger()
        assert [_section(u) for u in opened.urls] == ["day"]
        expected = {
            "HuijiaoSharedLayersDock": "shared-layers",
            "HuijiaoCompareDock": "compare",
            "HuijiaoPatchesDock": "patches",
            "HuijiaoSubmitDock": "submit",
        }
        for name, section in expected.items():
            dock = plugin.docks[name]
            button = dock.titleBarWidget().findChild(QToolButton, "HuijiaoDockHelpButton")
            button.click()
            assert _section(opened.urls[-1]) == section
        assert {_section(u) for u in opened.urls} <= manual_ids()
        # the manual's pictures are in the package
        html = (PACKAGE / "docs" / "manual_zh.html").read_text(encoding="utf-8")
        images = re.findall(r'src="([^"]+)"', html)
        assert images and all((PACKAGE / "docs" / src).is_file() for src in images)
    finally:
        plugin.unload()
        flush_deletes()


def test_every_processing_algorithm_has_a_manual_section(huijiao_provider):
    algorithms = huijiao_provider.algorithms()
    assert algorithms
    ids = manual_ids()
    for algorithm in algorithms:
        url = QUrl(algorithm.helpUrl())
        assert _section(url) in ids, algorithm.id()
    assert QgsApplication.processingRegistry().algorithmById("huijiao:checkdataset").helpUrl()
