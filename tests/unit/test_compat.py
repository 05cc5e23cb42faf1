"""huijiao_plugin/compat.py: every version difference is detected by trying the feature, never by parsing a
version string. Unusual version strings and missing features are simulated here with stand-in modules."""

from __future__ import annotations

import logging
import sys
import types

import pytest
from qgis.core import QgsGeometry, QgsWkbTypes

from huijiao_plugin import compat


@pytest.mark.parametrize(
    "wkb_type, name",
    [
        (6, "MultiPolygon"),
        (3, "Polygon"),
        (1003, "PolygonZ"),
        (QgsWkbTypes.Type.MultiPolygon, "MultiPolygon"),
    ],
)
def test_wkb_display_string_takes_ints_and_enums(wkb_type, name):
    # ISO WKB numbers: 3 Polygon, 6 MultiPolygon, 1000 + n for Z (OGC 06-103r4)
    assert compat.wkb_display_string(wkb_type) == name


def test_wkb_display_string_of_a_geometry_type():
    geometry = QgsGeometry.fromWkt("MULTIPOLYGON(((0 0, 1 0, 1 1, 0 0)))")
    assert compat.wkb_display_string(geometry.wkbType()) == "MultiPolygon"


def _installed_shapely():
    try:
        import shapely

        shapely.from_wkb  # noqa: B018 - shapely 1.8 has no array functions
    except (ImportError, AttributeError):
        from tests.conftest import VECTORISED_MISSING

        pytest.skip(VECTORISED_MISSING)
    return shapely


@pytest.mark.parametrize("version", ["0+unknown", "2.1.0.dev0", "2.0.7-1+b2", ""])
def test_vectorised_shapely_ignores_the_version_string(monkeypatch, version):
    shapely = _installed_shapely()
    monkeypatch.setattr(shapely, "__version__", version)
    found, np = compat.vectorised_shapely()
    assert found is shapely
    assert np is sys.modules["numpy"]


def test_vectorised_shapely_missing_array_functions_falls_back_with_a_note(monkeypatch, caplog):
    # shapely 1.8 (Debian 12's python3-shapely): a module without the array functions, version "1.8.5"
    old = types.ModuleType("shapely")
    old.__version__ = "1.8.5"
    old.geometry = types.ModuleType("shapely.geometry")
    monkeypatch.setitem(sys.modules, "shapely", old)
    with caplog.at_level(logging.INFO, logger=compat.__name__):
        assert compat.vectorised_shapely() == (None, None)
    assert "Vectorised GEOS not available" in caplog.text
    assert "shapely.from_wkb" in caplog.text


def test_vectorised_shapely_absent_falls_back_with_a_note(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "shapely", None)  # import shapely raises ImportError
    with caplog.at_level(logging.INFO, logger=compat.__name__):
        assert compat.vectorised_shapely() == (None, None)
    assert "one feature at a time" in caplog.text


def test_vectorised_shapely_wrong_answers_fall_back(monkeypatch, caplog):
    shapely = _installed_shapely()
    # an array intersection that returns its first argument: areas 4, 4 instead of 1, 1
    monkeypatch.setattr(shapely, "intersection", lambda a, b: a)
    with caplog.at_level(logging.INFO, logger=compat.__name__):
        assert compat.vectorised_shapely() == (None, None)
    assert "expected [1, 1]" in caplog.text


def test_curved_wkb_read_as_none_beside_polygons():
    _installed_shapely()
    from huijiao_plugin.core.compare import vectorized

    curved = QgsGeometry.fromWkt("CURVEPOLYGON(CIRCULARSTRING(0 0, 1 1, 2 0, 1 -1, 0 0))")
    square = QgsGeometry.fromWkt("POLYGON((0 0, 2 0, 2 2, 0 2, 0 0))")
    shapes = vectorized.read_wkb([bytes(square.asWkb()), bytes(curved.asWkb()), b"\x01\x03"])
    assert shapes[1] is None and shapes[2] is None  # curved; truncated
    assert shapes[0].area == 4.0
