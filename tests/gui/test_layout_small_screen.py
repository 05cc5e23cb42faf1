"""At 1366×768 in Chinese, every page of the 共享图层 and 成果汇交 docks fits (see layout_support.py)."""

from __future__ import annotations

import pytest
from qgis.PyQt.QtWidgets import QDockWidget

import huijiao_plugin
from tests.gui.layout_support import chinese_ui, layout_problems, show_in_small_window
from tests.gui.test_plugin_lifecycle import ensure_qm, flush_deletes


@pytest.fixture()
def plugin(qgis_iface):
    ensure_qm()
    flush_deletes()
    with chinese_ui():
        plugin = huijiao_plugin.classFactory(qgis_iface)
        plugin.initGui()
        show_in_small_window(qgis_iface.mainWindow())
        yield plugin
        plugin.unload()
    flush_deletes()


def _dock(plugin, name) -> QDockWidget:
    return plugin.docks[name]


def test_shared_layers_dock_fits_a_small_screen(plugin):
    dock = _dock(plugin, "HuijiaoSharedLayersDock")
    mains = {
        "load one map": dock.load_button,
        "check": dock.check_button,
        "download": dock.server_download_button,
    }
    problems = layout_problems(dock, mains)
    assert problems == [], "\n".join(problems)


def test_submit_dock_fits_a_small_screen(plugin):
    dock = _dock(plugin, "HuijiaoSubmitDock")
    problems = layout_problems(dock, {"submit": dock.submit_button})
    assert problems == [], "\n".join(problems)
