"""Screenshots of the plugin's docks at 1366×768 in Chinese, for the manual and for looking at the layout.

Run: ``xvfb-run -s "-screen 0 1366x768x24" .venv/bin/python -m pytest tests/gui/grab_screens.py -q``
with ``HUIJIAO_SCREENS=<folder>`` (the PNGs land there; without it the test is not collected).
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


def test_grab_every_dock_page(qgis_iface):
    from qgis.PyQt.QtWidgets import QTabWidget

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
            tabs = dock.findChild(QTabWidget)
            pages = range(tabs.count()) if tabs is not None else [0]
            for index in pages:
                if tabs is not None:
                    tabs.setCurrentIndex(index)
                settle()
                window.grab().save(str(out / f"{name}_{index}.png"))
        plugin.unload()
    flush_deletes()
