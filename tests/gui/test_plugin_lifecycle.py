"""classFactory(iface) → initGui() → unload(): the composition root leaves nothing behind."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsSettings
from qgis.gui import QgsMapToolPan
from qgis.PyQt.QtCore import QCoreApplication, QEvent
from qgis.PyQt.QtWidgets import QAction, QDockWidget, QMenu, QToolBar

import huijiao_plugin
from huijiao_plugin.toolbelt.resources import I18N_DIR

ROOT = Path(__file__).resolve().parents[2]
DOCK_NAMES = ("HuijiaoSharedLayersDock", "HuijiaoCompareDock", "HuijiaoPatchesDock", "HuijiaoSubmitDock")
QM = I18N_DIR / "huijiao_zh_CN.qm"
TS = ROOT / "i18n" / "huijiao_zh_CN.ts"


def ensure_qm() -> Path:
    """Build the .qm from the committed .ts when missing or older (what `make qm` does)."""
    if not QM.exists() or QM.stat().st_mtime < TS.stat().st_mtime:
        QM.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["lrelease", "-silent", str(TS), "-qm", str(QM)], check=True)
    return QM


def flush_deletes() -> None:
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()


def huijiao_children(main_window, cls) -> list:
    return [w for w in main_window.findChildren(cls) if w.objectName().startswith("Huijiao")]


@pytest.fixture()
def zh_locale():
    settings = QgsSettings()
    old = settings.value("locale/userLocale", "", type=str)
    settings.setValue("locale/userLocale", "zh_CN")
    yield
    settings.setValue("locale/userLocale", old)


@pytest.fixture()
def main_window(qgis_iface):
    window = qgis_iface.mainWindow()
    flush_deletes()
    assert huijiao_children(window, QDockWidget) == []
    return window


def test_init_gui_creates_menu_toolbar_docks_and_unload_removes_everything(
    qgis_iface, main_window, zh_locale
):
    ensure_qm()
    registry = QgsApplication.processingRegistry()
    provider_before = registry.providerById("huijiao")

    plugin = huijiao_plugin.classFactory(qgis_iface)
    plugin.initGui()

    # four docks, added to the main window, with a checkable toggle action each
    docks = {d.objectName(): d for d in huijiao_children(main_window, QDockWidget)}
    assert set(docks) == set(DOCK_NAMES)
    for name, dock in docks.items():
        assert main_window.dockWidgetArea(dock) != 0, name
        action = main_window.findChild(QAction, f"{name}Action")
        assert action is not None and action.isCheckable()
    # Chinese UI: locale zh_CN → the menu and toolbar are called 汇交联动, dock titles are Chinese
    menus = huijiao_children(main_window, QMenu)
    assert [m.objectName() for m in menus] == ["HuijiaoMenu"]
    assert menus[0].title() == "汇交联动"
    assert menus[0].menuAction() in main_window.menuBar().actions()
    assert docks["HuijiaoCompareDock"].windowTitle() == "耕地比对"
    assert docks["HuijiaoSubmitDock"].windowTitle() == "成果汇交"
    toolbars = huijiao_children(main_window, QToolBar)
    assert [t.objectName() for t in toolbars] == ["HuijiaoToolbar"]
    assert len(toolbars[0].actions()) == 5  # four docks + settings
    assert main_window.findChild(QAction, "HuijiaoSettingsAction") is not None
    assert QCoreApplication.translate("@default", "Huijiao") == "汇交联动"

    # the Processing provider is registered once, also when initProcessing() is called again
    if provider_before is None:
        provider = registry.providerById("huijiao")
        assert provider is plugin.provider
        plugin.initProcessing()
        plugin.initProcessing()
        assert registry.providerById("huijiao") is provider
        assert [p.id() for p in registry.providers()].count("huijiao") == 1
    else:  # a session fixture registered it first: the plugin must leave that one alone
        assert plugin.provider is None
        plugin.initProcessing()
        assert registry.providerById("huijiao") is provider_before

    # toggling a dock through its action
    compare = docks["HuijiaoCompareDock"]
    compare_action = plugin.dock_actions["HuijiaoCompareDock"]
    compare.close()
    assert not compare_action.isChecked()
    compare_action.trigger()
    assert not compare.isHidden() and compare_action.isChecked()

    # a huijiao map tool left active on the canvas is unset; a dock's unload() hook is called
    canvas = qgis_iface.mapCanvas()
    tool = QgsMapToolPan(canvas)
    tool.setObjectName("HuijiaoTestTool")
    canvas.setMapTool(tool)
    hook_calls = []
    docks["HuijiaoPatchesDock"].unload = lambda: hook_calls.append("patches")

    handler = plugin._log_handler
    assert handler in logging.getLogger("huijiao_plugin").handlers
    connections = list(plugin._connections)
    assert len(connections) >= 9  # 4 × (action, dock) + settings action
    plugin.unload()

    # every stored connection was disconnected (disconnecting again fails) before the senders are deleted
    for signal, slot in connections:
        with pytest.raises(TypeError):
            signal.disconnect(slot)
    assert plugin._connections == []
    assert canvas.mapTool() is not tool
    assert hook_calls == ["patches"]
    flush_deletes()

    assert huijiao_children(main_window, QDockWidget) == []
    assert huijiao_children(main_window, QMenu) == []
    assert huijiao_children(main_window, QToolBar) == []
    assert huijiao_children(main_window, QAction) == []
    assert all(a.text() != "汇交联动" for a in main_window.menuBar().actions())
    assert registry.providerById("huijiao") is provider_before
    # the translator is gone: the source string comes back untranslated
    assert QCoreApplication.translate("@default", "Huijiao") == "Huijiao"
    assert plugin._translator is None
    assert handler not in logging.getLogger("huijiao_plugin").handlers


def test_load_unload_twice(qgis_iface, main_window):
    for _ in range(2):
        plugin = huijiao_plugin.classFactory(qgis_iface)
        plugin.initGui()
        plugin.initProcessing()
        assert len(huijiao_children(main_window, QDockWidget)) == 4
        plugin.unload()
        flush_deletes()
        assert huijiao_children(main_window, QDockWidget) == []
        assert huijiao_children(main_window, QToolBar) == []
    # the same instance can be loaded again after an unload (QGIS "reload plugin")
    plugin.initGui()
    assert len(huijiao_children(main_window, QDockWidget)) == 4
    plugin.unload()
    flush_deletes()
    assert huijiao_children(main_window, QDockWidget) == []
    assert huijiao_children(main_window, QAction) == []


def test_english_locale_keeps_english_menu(qgis_iface, main_window):
    settings = QgsSettings()
    old = settings.value("locale/userLocale", "", type=str)
    settings.setValue("locale/userLocale", "en_US")
    try:
        plugin = huijiao_plugin.classFactory(qgis_iface)
        plugin.initGui()
        assert main_window.findChild(QMenu, "HuijiaoMenu").title() == "Huijiao"
        assert plugin._translator is None
        plugin.unload()
        flush_deletes()
    finally:
        settings.setValue("locale/userLocale", old)


def test_changed_settings_reach_the_panels(qgis_iface, main_window):
    from qgis.PyQt.QtWidgets import QLabel

    from huijiao_plugin.core.settings import HuijiaoSettings

    plugin = huijiao_plugin.classFactory(qgis_iface)
    plugin.initGui()
    try:
        plugin.apply_settings(
            HuijiaoSettings(department="nync", region_code="610100", unit_name="西安市农业农村局")
        )
        labels = [
            label
            for dock in plugin.docks.values()
            for label in dock.findChildren(QLabel, "HuijiaoContextLabel")
        ]
        assert labels, "no panel shows the user context"
        # the region by name with its code in brackets (the source string, the Chinese one in the UI)
        assert all(
            "西安市 (610100)" in label.text() or "西安市（610100）" in label.text() for label in labels
        ), [label.text() for label in labels]
    finally:
        plugin.unload()
        flush_deletes()


def test_dialog_buttons_are_chinese_without_qt_translations(qgis_iface, main_window, zh_locale):
    """确定/取消 come from the plugin's translation: Qt's own (qtbase_zh_CN) is missing on many installs,
    and then QDialogButtonBox shows OK/Cancel in an otherwise Chinese dialog."""
    from qgis.PyQt.QtWidgets import QDialogButtonBox

    from huijiao_plugin.gui.dialogs.dlg_settings import HuijiaoSettingsDialog
    from huijiao_plugin.gui.map_tools.map_tool_mark_patch import HuijiaoPatchAttributesDialog

    ensure_qm()
    plugin = huijiao_plugin.classFactory(qgis_iface)
    plugin.initGui()
    try:
        for dialog in (HuijiaoSettingsDialog(main_window), HuijiaoPatchAttributesDialog({}, main_window)):
            box = dialog.findChild(QDialogButtonBox)
            ok = box.button(QDialogButtonBox.StandardButton.Ok).text().replace("&", "")
            cancel = box.button(QDialogButtonBox.StandardButton.Cancel).text().replace("&", "")
            assert (ok, cancel) == ("确定", "取消"), dialog.objectName()
            dialog.deleteLater()
    finally:
        plugin.unload()
        flush_deletes()
