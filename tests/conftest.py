"""Shared fixtures: real PyQGIS (pytest-qgis starts QgsApplication), the huijiao Processing provider."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

QGIS_PLUGINS_DIR = "/usr/share/qgis/python/plugins"
if QGIS_PLUGINS_DIR not in sys.path:
    sys.path.append(QGIS_PLUGINS_DIR)  # QGIS's own "processing" package


@pytest.fixture(scope="session")
def huijiao_provider(qgis_app):
    """Processing initialised with the huijiao provider registered, as QGIS does for the plugin."""
    from processing.core.Processing import Processing
    from qgis.core import QgsApplication

    from huijiao_plugin.processing.provider import HuijiaoProvider

    Processing.initialize()
    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("huijiao")
    if provider is None:
        provider = HuijiaoProvider()
        registry.addProvider(provider)
    yield provider
