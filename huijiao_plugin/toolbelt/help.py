"""The Chinese user manual shipped in the plugin package, and the address of each of its sections."""

from __future__ import annotations

from qgis.PyQt.QtCore import QUrl

from huijiao_plugin.toolbelt.resources import PLUGIN_DIR

MANUAL = PLUGIN_DIR / "docs" / "manual_zh.html"

#: manual sections (HTML ids): one per panel, one per Processing group
SECTION_DAY = "day"
SECTION_SHARED_LAYERS = "shared-layers"
SECTION_COMPARE = "compare"
SECTION_PATCHES = "patches"
SECTION_SUBMIT = "submit"
SECTION_SETTINGS = "settings"
SECTION_PROCESSING = "processing"

GROUP_SECTIONS = {
    "basic": SECTION_PROCESSING,
    "catalog": SECTION_SHARED_LAYERS,
    "compare": SECTION_COMPARE,
    "patches": SECTION_PATCHES,
    "exchange": SECTION_SUBMIT,
}


def manual_url(section: str = "") -> QUrl:
    """A file:// URL of the manual, at ``section`` when given."""
    url = QUrl.fromLocalFile(str(MANUAL))
    if section:
        url.setFragment(section)
    return url
