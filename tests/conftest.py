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


DEMO_COUNTY_SIZE = 1500
DEMO_COUNTY_SEED = 2024


@pytest.fixture(scope="session")
def demo_county(qgis_app, tmp_path_factory):
    """A small synthetic county (tests.datagen, 1500 DLTB patches, seed 2024), generated once per session.

    Yields a ``tests.datagen.DemoCounty`` (read-only: copy files before modifying them):

    * ``gpkg``: county.gpkg in EPSG:4545 with the layers DLTB, DLTB_N1 (year N+1), XZQ, CJDCQ, YJJBNTBHTB,
      GDBHMB, STBHHX, YZGHQ (严重干旱区), GBZNT (高标准农田 plots), TRHJZL (土壤环境质量类别),
      GDZLDJ (耕地质量等级), JCTB (监测图斑), BCGD (补充耕地) and the tables GENERATOR_CHANGES
      (N→N+1 ground truth) and GENERATOR_INFO;
    * ``shp``: shp/DLTB.shp (DBF in GBK + .cpg); ``gdb``: DLTB.gdb (OpenFileGDB);
    * ``year`` (2023; DLTB_N1 is 2024), ``county_code`` ("610431"), ``county_name``, ``size``, ``seed``,
      ``epsg`` (4545). Layers and fields: tests/datagen/README.md.
    """
    from tests.datagen import generate_county

    out = tmp_path_factory.mktemp("demo_county")
    yield generate_county(out, size=DEMO_COUNTY_SIZE, seed=DEMO_COUNTY_SEED)
