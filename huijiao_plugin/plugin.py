"""HuijiaoPlugin: the one composition root of the plugin (conventions §3.4).

Wiring only: the 汇交联动 menu and toolbar, one toggle action per dock, the settings action, the four
docks, the Processing provider, the translator and the log handler. ``unload()`` undoes all of it.
"""

from __future__ import annotations

import logging
from functools import partial

from qgis.core import Qgis, QgsApplication, QgsSettings
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication, QLocale, Qt, QTimer, QTranslator
from qgis.PyQt.QtWidgets import QAction, QMenu, QScrollArea, QToolBar

from huijiao_plugin.toolbelt import log as plugin_log
from huijiao_plugin.toolbelt.i18n import tr
from huijiao_plugin.toolbelt.resources import I18N_DIR

log = logging.getLogger(__name__)

TRANSLATION_NAME = "huijiao"
PROVIDER_ID = "huijiao"
MENU_OBJECT_NAME = "HuijiaoMenu"
TOOLBAR_OBJECT_NAME = "HuijiaoToolbar"
SETTINGS_ACTION_OBJECT_NAME = "HuijiaoSettingsAction"
HELP_ACTION_OBJECT_NAME = "HuijiaoHelpAction"
#: the docks' default width (px): two buttons side by side, and the map keeps most of a 1366 px screen
DOCK_WIDTH = 420
#: no narrower: the panels' content and the four dock tab titles fit without scrolling or eliding
DOCK_MIN_WIDTH = 380

# (dock objectName, module, class, theme icon, manual section) in panel order; titles come from the docks.
DOCK_SPECS = (
    ("HuijiaoSharedLayersDock", "dock_shared_layers", "HuijiaoSharedLayersDock", "mActionAddLayer.svg",
     "shared-layers"),
    ("HuijiaoCompareDock", "dock_compare", "HuijiaoCompareDock", "/algorithms/mAlgorithmIntersect.svg",
     "compare"),
    ("HuijiaoPatchesDock", "dock_patches", "HuijiaoPatchesDock", "mActionCapturePolygon.svg", "patches"),
    ("HuijiaoSubmitDock", "dock_submit", "HuijiaoSubmitDock", "mActionSharingExport.svg", "submit"),
)  # fmt: skip


def user_locale() -> QLocale:
    """The QGIS UI locale: the override if set (e.g. ``zh-Hans``), else the system locale."""
    return QLocale(QgsSettings().value("locale/userLocale", QLocale().name(), type=str))


class HuijiaoPlugin:
    """Created by ``classFactory(iface)``; QGIS calls ``initGui``/``initProcessing`` and ``unload``."""

    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.menu: QMenu | None = None
        self.toolbar: QToolBar | None = None
        self.actions: list[QAction] = []
        self.docks: dict[str, object] = {}
        self.dock_actions: dict[str, QAction] = {}
        self._connections: list[tuple[object, object]] = []
        self._translator: QTranslator | None = None
        self._log_handler: logging.Handler | None = None
        self._settings_dialog = None
        #: what the docks share (settings, exchange client, patch store, project GeoPackage, notifications)
        self.session = None

    # --- helpers ------------------------------------------------------------------------------------
    def _connect(self, signal, slot) -> None:
        """Connect and remember the connection so that ``unload()`` can disconnect it."""
        signal.connect(slot)
        self._connections.append((signal, slot))

    def _install_translator(self) -> None:
        if self._translator is not None:
            return
        translator = QTranslator()
        if translator.load(user_locale(), TRANSLATION_NAME, "_", str(I18N_DIR)):
            QCoreApplication.installTranslator(translator)
            self._translator = translator

    def _install_log_handler(self) -> None:
        if self._log_handler is None:
            self._log_handler = plugin_log.install_handler()

    # --- QGIS plugin API ----------------------------------------------------------------------------
    def initProcessing(self) -> None:
        """Register the Processing provider; calling it again does nothing (idempotent)."""
        self._install_translator()
        self._install_log_handler()
        registry = QgsApplication.processingRegistry()
        if self.provider is not None and registry.providerById(PROVIDER_ID) is self.provider:
            return
        existing = registry.providerById(PROVIDER_ID)
        if existing is not None:
            log.warning(
                "A Processing provider with id '%s' is already registered; not adding another", PROVIDER_ID
            )
            return
        try:
            from huijiao_plugin.processing.provider import HuijiaoProvider
        except Exception as exc:  # a broken algorithm module must not take the panels down with it
            log.exception("The Processing provider cannot be imported")
            self.iface.messageBar().pushMessage(
                tr("Huijiao"),
                tr("The Processing tools could not be loaded: {error}").format(error=exc),
                level=Qgis.MessageLevel.Critical,
                duration=0,
            )
            return
        provider = HuijiaoProvider()
        if registry.addProvider(provider):
            self.provider = provider

    def initGui(self) -> None:
        self._install_translator()
        self._install_log_handler()
        main_window = self.iface.mainWindow()

        self.menu = QMenu(tr("Huijiao"), main_window)
        self.menu.setObjectName(MENU_OBJECT_NAME)
        self.toolbar = QToolBar(tr("Huijiao"), main_window)
        self.toolbar.setObjectName(TOOLBAR_OBJECT_NAME)
        self.iface.addToolBar(self.toolbar)
        if (
            self.toolbar.parent() is main_window
            and main_window.toolBarArea(self.toolbar) == Qt.ToolBarArea.NoToolBarArea
        ):
            main_window.addToolBar(self.toolbar)

        from huijiao_plugin.core.session import Session

        if self.session is None:
            self.session = Session.load()
        self._create_docks(main_window)

        self.menu.addSeparator()
        settings_action = QAction(
            QgsApplication.getThemeIcon("mActionOptions.svg"), tr("Settings…"), main_window
        )
        settings_action.setObjectName(SETTINGS_ACTION_OBJECT_NAME)
        settings_action.setToolTip(tr("Department, region, exchange server and display settings"))
        self._connect(settings_action.triggered, self.show_settings)
        self.menu.addAction(settings_action)
        self.toolbar.addAction(settings_action)
        self.actions.append(settings_action)
        help_action = QAction(QgsApplication.getThemeIcon("mActionHelpContents.svg"), tr("Help"), main_window)
        help_action.setObjectName(HELP_ACTION_OBJECT_NAME)
        help_action.setToolTip(tr("Open the user manual (Chinese)"))
        self._connect(help_action.triggered, self.show_help)
        self.menu.addAction(help_action)
        self.actions.append(help_action)

        menu_bar = main_window.menuBar()
        help_menu_action = next(
            (a for a in menu_bar.actions() if a.menu() is not None and a.menu().objectName() == "mHelpMenu"),
            None,
        )
        if help_menu_action is not None:
            menu_bar.insertMenu(help_menu_action, self.menu)
        else:
            menu_bar.addMenu(self.menu)

        self.initProcessing()

    def _create_docks(self, main_window) -> None:
        from importlib import import_module

        first = None
        from huijiao_plugin.gui.widgets.wdg_dock_title import HuijiaoDockTitleBar

        for object_name, module_name, class_name, theme_icon, section in DOCK_SPECS:
            try:
                module = import_module(f"huijiao_plugin.gui.docks.{module_name}")
                dock = getattr(module, class_name)(self.iface, session=self.session, parent=main_window)
            except Exception as exc:  # one broken panel must not take the others down
                log.exception("The panel %s cannot be created", object_name)
                self.iface.messageBar().pushMessage(
                    tr("Huijiao"),
                    tr("The panel {name} could not be opened: {error}").format(name=object_name, error=exc),
                    level=Qgis.MessageLevel.Critical,
                    duration=0,
                )
                continue
            dock.setObjectName(object_name)
            dock.setTitleBarWidget(HuijiaoDockTitleBar(dock, section))
            dock.setMinimumWidth(DOCK_MIN_WIDTH)
            self._make_scrollable(dock)
            main_window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            if first is None:
                first = dock
            else:
                main_window.tabifyDockWidget(first, dock)
            self.docks[object_name] = dock

            action = QAction(QgsApplication.getThemeIcon(theme_icon), dock.windowTitle(), main_window)
            action.setObjectName(f"{object_name}Action")
            action.setCheckable(True)
            action.setChecked(not dock.isHidden())
            self._connect(action.triggered, partial(self._toggle_dock, object_name))
            self._connect(dock.openedStateChanged, action.setChecked)
            self.menu.addAction(action)
            self.toolbar.addAction(action)
            self.actions.append(action)
            self.dock_actions[object_name] = action
        if first is not None:
            # one dock area, the docks as tabs (as QGIS's own panels): each gets the full height; the width
            # again once QGIS has laid out its window (at start-up it restores its own panels after plugins)
            main_window.resizeDocks([first], [DOCK_WIDTH], Qt.Orientation.Horizontal)
            QTimer.singleShot(0, partial(self._default_width, first))
            started = getattr(self.iface, "initializationCompleted", None)
            if started is not None:  # QGIS starting: once its window is laid out
                self._connect(started, partial(self._default_width, first))
            first.raise_()

    def _default_width(self, dock) -> None:
        if not sip.isdeleted(dock) and dock.width() < DOCK_WIDTH and not dock.isFloating():
            self.iface.mainWindow().resizeDocks([dock], [DOCK_WIDTH], Qt.Orientation.Horizontal)

    @staticmethod
    def _make_scrollable(dock) -> None:
        """Put the panel's content in a scroll area, so that a tall panel never makes the QGIS window
        taller than the screen (a dock's minimum height otherwise becomes the main window's); the content
        fills the dock and scrolls only below its minimum size."""
        from huijiao_plugin.gui.widgets.wdg_dock_scroll import HuijiaoDockScrollArea

        content = dock.widget()
        if content is None or isinstance(content, QScrollArea):
            return
        scroll = HuijiaoDockScrollArea(dock)
        scroll.setObjectName(f"{dock.objectName()}Scroll")
        scroll.setWidget(content)
        dock.setWidget(scroll)

    def _toggle_dock(self, object_name: str, _checked: bool = False) -> None:
        """Open (and bring to front) a closed or tabbed-away dock; close the dock the user is looking at."""
        dock = self.docks[object_name]
        dock.toggleUserVisible()
        self.dock_actions[object_name].setChecked(not dock.isHidden())

    def show_help(self, _checked: bool = False) -> bool:
        from huijiao_plugin.gui.widgets.wdg_dock_title import open_manual

        return open_manual("day")

    def show_settings(self) -> None:
        from huijiao_plugin.gui.dialogs.dlg_settings import HuijiaoSettingsDialog

        dialog = HuijiaoSettingsDialog(self.iface.mainWindow())
        self._settings_dialog = dialog
        try:
            if dialog.exec():
                self.apply_settings(dialog.settings)
        finally:
            self._settings_dialog = None
            dialog.deleteLater()

    def apply_settings(self, settings) -> None:
        """Put changed settings into the session and tell every dock that supports it (``apply_settings``)."""
        if self.session is not None:
            self.session.apply_settings(settings)
        for dock in self.docks.values():
            apply = getattr(dock, "apply_settings", None)
            if callable(apply):
                apply(settings)

    def _unset_map_tool(self) -> None:
        """Leave no huijiao map tool active on the canvas."""
        canvas = self.iface.mapCanvas()
        tool = canvas.mapTool() if canvas is not None else None
        if tool is not None and (
            type(tool).__module__.startswith("huijiao_plugin") or tool.objectName().startswith("Huijiao")
        ):
            canvas.unsetMapTool(tool)

    def unload(self) -> None:
        main_window = self.iface.mainWindow()
        for signal, slot in self._connections:
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):  # already gone with its sender
                pass
        self._connections.clear()

        self._unset_map_tool()
        for dock in self.docks.values():
            cleanup = getattr(dock, "unload", None)
            if callable(cleanup):  # docks may stop background work and drop their own connections here
                try:
                    cleanup()
                except Exception:
                    log.exception("Unloading %s failed", dock.objectName())
            main_window.removeDockWidget(dock)
            dock.deleteLater()
        self.docks.clear()
        self.dock_actions.clear()

        for action in self.actions:
            if self.toolbar is not None:
                self.toolbar.removeAction(action)
            if self.menu is not None:
                self.menu.removeAction(action)
            action.deleteLater()
        self.actions.clear()

        if self.menu is not None:
            main_window.menuBar().removeAction(self.menu.menuAction())
            self.menu.deleteLater()
            self.menu = None
        if self.toolbar is not None:
            main_window.removeToolBar(self.toolbar)
            self.toolbar.deleteLater()
            self.toolbar = None

        if self.provider is not None:
            registry = QgsApplication.processingRegistry()
            if registry.providerById(PROVIDER_ID) is self.provider:
                registry.removeProvider(self.provider)
            self.provider = None

        if self._translator is not None:
            QCoreApplication.removeTranslator(self._translator)
            self._translator = None
        if self._log_handler is not None:
            plugin_log.remove_handler(self._log_handler)
            self._log_handler = None
