"""Screenshots of the plugin at 1366×768 in Chinese: the window, every dock page and the settings dialog.

Run: ``HUIJIAO_SCREENS=<folder> xvfb-run -s "-screen 0 1366x768x24" .venv/bin/python -m pytest
tests/gui/grab_screens.py -q`` (without HUIJIAO_SCREENS the test is skipped). The manual's pictures
(huijiao_plugin/docs/images) are made this way.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import huijiao_plugin
from tests.gui.layout_support import chinese_ui, settle, show_in_small_window
from tests.gui.test_plugin_lifecycle import ensure_qm, flush_deletes

OUT = os.environ.get("HUIJIAO_SCREENS", "")
pytestmark = pytest.mark.skipif(not OUT, reason="screenshots only on request (HUIJIAO_SCREENS)")
SHORT = {
    "HuijiaoSharedLayersDock": "shared_layers",
    "HuijiaoCompareDock": "compare",
    "HuijiaoPatchesDock": "patches",
    "HuijiaoSubmitDock": "submit",
}


def test_grab_every_dock_page(qgis_iface):
    from qgis.PyQt.QtWidgets import QTabWidget

    from huijiao_plugin.gui.dialogs.dlg_settings import HuijiaoSettingsDialog

    ensure_qm()
    flush_deletes()
    out = Path(OUT)
    out.mkdir(parents=True, exist_ok=True)
    with chinese_ui():
        plugin = huijiao_plugin.classFactory(qgis_iface)
        plugin.initGui()
        window = qgis_iface.mainWindow()
        show_in_small_window(window)
        for name, dock in plugin.docks.items():
            dock.raise_()
            settle()
            if name == "HuijiaoSharedLayersDock":
                window.grab().save(str(out / "window.png"))
            tabs = dock.findChild(QTabWidget)
            pages = range(tabs.count()) if tabs is not None else [0]
            for index in pages:
                if tabs is not None:
                    tabs.setCurrentIndex(index)
                settle()
                dock.grab().save(str(out / f"{SHORT[name]}_{index}.png"))
            if tabs is not None:
                tabs.setCurrentIndex(0)
        dialog = HuijiaoSettingsDialog(window)
        dialog.show()
        settle()
        dialog.grab().save(str(out / "settings.png"))
        dialog.close()
        plugin.unload()
    flush_deletes()
