"""Shared fixtures: real PyQGIS (pytest-qgis starts QgsApplication), the huijiao Processing provider."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

QGIS_PLUGINS_DIR = "/usr/share/qgis/python/plugins"
if QGIS_PLUGINS_DIR not in sys.path:
    sys.path.append(QGIS_PLUGINS_DIR)  # QGIS's own "processing" package


_EXIT_STATUS = {"code": 0}


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS["code"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Leave without Python's interpreter shutdown once pytest has reported everything.

    pytest-qgis calls QgsApplication.exitQgis() at the end of the session. Python objects that still
    wrap QGIS layers then (held by pytest's fixture caches, or by tracebacks of exceptions raised in
    processAlgorithm() that QGIS keeps) are destroyed during interpreter shutdown, after their OGR
    datasets are gone, and the process dies with SIGSEGV (exit 139) although every test passed. The
    exit status is pytest's own.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT_STATUS["code"])


@pytest.fixture(scope="session")
def huijiao_provider(qgis_app):
    """Processing initialised with the huijiao provider registered, as QGIS does for the plugin."""
    from processing.core.Processing import Processing
    from qgis.core import QgsApplication

    from huijiao_plugin.processing.provider import HuijiaoProvider

    Processing.initialize()
    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("huijiao")
    added = provider is None
    if added:
        provider = HuijiaoProvider()
        registry.addProvider(provider)
    yield provider
    # Unregister before QgsApplication.exitQgis(): a Python provider still in the registry at exit is
    # deleted from C++ after Python has torn it down, which crashes the interpreter (exit code 139).
    if added and registry.providerById("huijiao") is not None:
        registry.removeProvider(provider)
    Processing.deinitialize()


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


VECTORISED_MISSING = "shapely >= 2 not installed (optional vectorised GEOS component)"


GEOS_PATHS = ["vectorised GEOS", "per feature"]


def use_geos_path(path: str) -> None:
    """Switch the comparison engine to one of ``GEOS_PATHS`` (skips when shapely ≥ 2 is missing for the
    vectorised one); ``vectorized.enabled(True)`` switches back."""
    from huijiao_plugin.core.compare import vectorized

    if path == GEOS_PATHS[0] and not vectorized.enabled():
        pytest.skip(VECTORISED_MISSING)
    vectorized.enabled(path == GEOS_PATHS[0])


@pytest.fixture(params=GEOS_PATHS)
def geos_path(request):
    """Run a test on both paths of the comparison engine: whole arrays through shapely (when installed)
    and one feature at a time through QgsGeometry."""
    from huijiao_plugin.core.compare import vectorized

    use_geos_path(request.param)
    yield request.param
    vectorized.enabled(True)
