"""Layout checks for docks at a small screen (1366×768), reusable for every dock of the plugin.

``layout_problems(dock, main_actions)`` shows every page of the dock in turn (each tab of every inner
QTabWidget, nested ones included) and lists, in words, what a user would see as broken:

* a button whose text does not fit (its sizeHint is wider than its geometry);
* a button cut by the dock's edge (not wholly inside the dock's visible area; inside an inner scroll area —
  secondary content — only a horizontal cut counts, scrolling down is allowed there);
* an elided or cut tab title (inner tab bars, and the dock's own tab in the main window's dock tab bar);
* a main action (e.g. 运行, 提交) that is not wholly visible without scrolling, on the page that holds it.

``show_in_small_window(main_window)`` sizes the QGIS main window as a 1366×768 screen leaves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QCoreApplication, QRect
from qgis.PyQt.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractScrollArea,
    QDockWidget,
    QMainWindow,
    QStyle,
    QTabBar,
    QTabWidget,
    QWidget,
)

SCREEN_WIDTH = 1366
SCREEN_HEIGHT = 768
#: what QGIS itself takes of a 768 px high screen: window title, menu bar, two toolbar rows, status bar and
#: the desktop's task bar. The test main window has none of these, so it is made this much shorter.
QGIS_CHROME_HEIGHT = 190


@contextmanager
def chinese_ui() -> Iterator[None]:
    """The QGIS UI locale set to zh_CN while inside (the plugin loads its translation in initGui)."""
    settings = QgsSettings()
    old = settings.value("locale/userLocale", "", type=str)
    settings.setValue("locale/userLocale", "zh_CN")
    try:
        yield
    finally:
        settings.setValue("locale/userLocale", old)


def settle(rounds: int = 3) -> None:
    for _ in range(rounds):
        QCoreApplication.processEvents()


def show_in_small_window(main_window: QMainWindow) -> None:
    """Size the main window as QGIS is on a 1366×768 screen; a stand-in for the map canvas takes the centre
    (the test main window has none), so docks get their docked width, not the whole window."""
    if main_window.centralWidget() is None:
        canvas = QWidget(main_window)
        canvas.setObjectName("LayoutTestCanvas")
        canvas.setMinimumWidth(400)
        main_window.setCentralWidget(canvas)
    main_window.resize(SCREEN_WIDTH, SCREEN_HEIGHT - QGIS_CHROME_HEIGHT)
    main_window.show()
    settle()


def _rect_in(widget: QWidget, ancestor: QWidget) -> QRect:
    return QRect(widget.mapTo(ancestor, widget.rect().topLeft()), widget.size())


def _describe(widget: QWidget) -> str:
    text = widget.text() if isinstance(widget, QAbstractButton) else ""
    name = widget.objectName() or type(widget).__name__
    tip = widget.toolTip() if not text else ""
    return f"{name} '{text or tip}'"


def _ancestors(widget: QWidget, stop: QWidget) -> list[QWidget]:
    out = []
    parent = widget.parentWidget()
    while parent is not None and parent is not stop:
        out.append(parent)
        parent = parent.parentWidget()
    return out


def _dock_viewport(dock: QDockWidget) -> QWidget:
    """What the dock shows: its content widget, or the viewport when the content is a scroll area."""
    content = dock.widget()
    if isinstance(content, QAbstractScrollArea):
        return content.viewport()
    return content


def _inner_scroll_area(widget: QWidget, dock: QDockWidget) -> QAbstractScrollArea | None:
    outer = dock.widget()
    for parent in _ancestors(widget, dock):
        if isinstance(parent, QAbstractScrollArea) and parent is not outer:
            return parent
    return None


def _internal(button: QAbstractButton, dock: QDockWidget) -> bool:
    """Buttons Qt makes itself: title bar, tab scroll arrows, table corners, spin box arrows."""
    if button.objectName().startswith("qt_"):
        return True
    title = dock.titleBarWidget()
    if title is not None and title.isAncestorOf(button):  # the title bar's own small buttons
        return True
    parent = button.parentWidget()
    return isinstance(parent, (QTabBar, QAbstractItemView, QDockWidget)) and parent is not dock.widget()


def fully_visible(widget: QWidget, dock: QDockWidget) -> bool:
    """Wholly shown: inside every ancestor up to the dock and inside the dock's visible area."""
    if not widget.isVisible():
        return False
    for parent in _ancestors(widget, dock):
        if not parent.rect().contains(_rect_in(widget, parent)):
            return False
    viewport = _dock_viewport(dock)
    return _rect_in(viewport, dock).contains(_rect_in(widget, dock))


def _button_problems(dock: QDockWidget, page: str) -> list[str]:
    problems = []
    viewport = _dock_viewport(dock)
    visible_area = _rect_in(viewport, dock)
    for button in dock.findChildren(QAbstractButton):
        if not button.isVisible() or _internal(button, dock):
            continue
        what = f"{page}: {_describe(button)}"
        if button.sizeHint().width() > button.width():
            problems.append(
                f"{what} is narrower ({button.width()} px) than its text needs "
                f"({button.sizeHint().width()} px)"
            )
        inner = _inner_scroll_area(button, dock)
        if inner is not None:
            area = _rect_in(inner.viewport(), dock)
            rect = _rect_in(button, dock)
            if rect.intersects(area) and (rect.left() < area.left() or rect.right() > area.right()):
                problems.append(f"{what} is cut by the side of its scroll area")
            continue
        if not visible_area.contains(_rect_in(button, dock)):
            problems.append(f"{what} is cut by the dock's edge")
    return problems


def _tab_width_needed(bar: QTabBar, index: int) -> int:
    """The width the whole title needs: text, icon and the style's horizontal tab padding."""
    text_width = bar.fontMetrics().horizontalAdvance(bar.tabText(index).replace("&", ""))
    padding = bar.style().pixelMetric(QStyle.PixelMetric.PM_TabBarTabHSpace, None, bar)
    icon = bar.iconSize().width() + 4 if not bar.tabIcon(index).isNull() else 0
    return text_width + padding + icon


def _tab_bar_problems(bar: QTabBar, page: str, only: Iterable[str] | None = None) -> list[str]:
    problems = []
    wanted = set(only) if only is not None else None
    for index in range(bar.count()):
        text = bar.tabText(index)
        if wanted is not None and text not in wanted:
            continue
        rect = bar.tabRect(index)
        if rect.width() < _tab_width_needed(bar, index):
            problems.append(f"{page}: tab title '{text}' is elided")
        elif rect.right() > bar.width() or rect.left() < 0:
            problems.append(f"{page}: tab title '{text}' is cut off")
    return problems


def _page_problems(dock: QDockWidget, page: str, main_actions: dict[str, QWidget]) -> list[str]:
    problems = _button_problems(dock, page)
    for bar in dock.findChildren(QTabBar):
        if bar.isVisible():
            problems += _tab_bar_problems(bar, page)
    for name, widget in main_actions.items():
        if _page_holds(widget, dock) and not fully_visible(widget, dock):
            problems.append(f"{page}: the main action {name} is not visible")
    return problems


def _page_holds(widget: QWidget, dock: QDockWidget) -> bool:
    """The widget sits on the page shown now (every enclosing tab page is the current one)."""
    for parent in _ancestors(widget, dock):
        if isinstance(parent, QTabWidget):
            page = parent.currentWidget()
            if page is None or not (page is widget or page.isAncestorOf(widget)):
                return False
    return True


def _visit(dock, main_actions, seen, page, problems) -> None:
    problems += _page_problems(dock, page, main_actions)
    for tabs in dock.findChildren(QTabWidget):
        if tabs in seen or not tabs.isVisible():
            continue
        seen.add(tabs)
        current = tabs.currentIndex()
        for index in range(tabs.count()):
            tabs.setCurrentIndex(index)
            settle()
            _visit(dock, main_actions, seen, f"{page} / {tabs.tabText(index)}", problems)
        tabs.setCurrentIndex(current)
        settle()


def layout_problems(dock: QDockWidget, main_actions: dict[str, QWidget] | None = None) -> list[str]:
    """Every layout problem on every page of ``dock`` (see the module docstring); [] when it all fits."""
    dock.raise_()
    settle()
    problems: list[str] = []
    _visit(dock, main_actions or {}, set(), dock.windowTitle(), problems)
    main_window = dock.parentWidget()
    if isinstance(main_window, QMainWindow):
        for bar in main_window.findChildren(QTabBar):
            if bar.parentWidget() is main_window and bar.isVisible():
                problems += _tab_bar_problems(bar, "dock tabs", only=[dock.windowTitle()])
    return sorted(set(problems), key=problems.index)
