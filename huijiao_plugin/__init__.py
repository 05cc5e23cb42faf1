"""汇交联动 (huijiao) QGIS plugin entry point."""

from __future__ import annotations


def classFactory(iface):  # noqa: N802 - QGIS API name
    """Called by QGIS to create the plugin; imports lazily so that loading the package costs nothing."""
    from huijiao_plugin.plugin import HuijiaoPlugin

    return HuijiaoPlugin(iface)
