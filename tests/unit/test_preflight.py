"""Pre-flight validation: geometry validity, partition overlaps, region codes, required fields."""

from __future__ import annotations

import pytest
from qgis.core import QgsFeature, QgsGeometry, QgsRectangle, QgsVectorLayer

from huijiao_plugin.core.catalog import Catalog
from huijiao_plugin.core.ellipsoidal_area import EllipsoidalAreaCalculator
from huijiao_plugin.core.preflight import ERROR, WARNING, run_preflight

FIELDS = ["BSM", "TBBH", "DLBM", "DLMC", "QSXZ", "ZLDWDM", "TBMJ"]


@pytest.fixture(scope="module")
def catalog():
    return Catalog.load()


def dltb(rows, fields=FIELDS) -> QgsVectorLayer:
    spec = "&".join(f"field={f}:{'double' if f == 'TBMJ' else 'string'}" for f in fields)
    layer = QgsVectorLayer(f"Polygon?crs=EPSG:4545&{spec}", "DLTB_BG", "memory")
    feats = []
    calculator = EllipsoidalAreaCalculator(layer.crs())
    for values, geometry in rows:
        f = QgsFeature(layer.fields())
        if "TBMJ" in fields and not geometry.isNull():
            values = [*values[:-1], calculator.area(geometry)]
        f.setAttributes(values)
        f.setGeometry(geometry)
        feats.append(f)
    assert layer.dataProvider().addFeatures(feats)
    return layer


X0, Y0 = 580000, 3800000  # a place in 西安 (EPSG:4545)


def rect(x0, y0, x1, y1) -> QgsGeometry:
    return QgsGeometry.fromRect(QgsRectangle(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1))


def row(bsm, zldwdm="6101020010010000000", dlmc="水田"):
    return [bsm, bsm, "0101", dlmc, "30", zldwdm, 100.0]


def codes(report, severity=None):
    return sorted(f.code for f in report.findings if severity is None or f.severity == severity)


def test_clean_partition_passes(qgis_app, catalog):
    layer = dltb([(row("1"), rect(0, 0, 10, 10)), (row("2"), rect(10, 0, 20, 10))])
    report = run_preflight([("DLTB_BG", layer)], "dltb_biangeng", "610100", "610102", catalog)
    assert report.findings == []
    assert report.ok
    assert report.to_validation() == {"errors": 0, "warnings": 0, "summary": {}}


def test_overlap_invalid_geometry_and_region(qgis_app, catalog):
    bowtie = QgsGeometry.fromWkt("POLYGON((30 0, 40 10, 40 0, 30 10, 30 0))")
    bowtie.translate(X0, Y0)
    layer = dltb(
        [
            (row("1"), rect(0, 0, 10, 10)),
            (row("2"), rect(9, 0, 20, 10)),  # overlaps 1 by 10 m²
            (row("3", zldwdm="6101030010010000000"), rect(20, 0, 30, 10)),  # other county of the same city
            (row("4", zldwdm="6201020010010000000"), rect(50, 0, 60, 10)),  # other province
            (row("5", dlmc=None), bowtie),
        ]
    )
    progress = []
    report = run_preflight(
        [("DLTB_BG", layer)], "dltb_biangeng", "610100", "610102", catalog, progress=progress.append
    )
    by_code = {f.code: f for f in report.findings}
    # the catalog checks (core.checks) add their own findings on feature 5 (DLMC, TBMJ)
    assert {"GEOMETRY_INVALID", "OVERLAP", "REGION_OUTSIDE_ACCOUNT"} <= set(codes(report, ERROR))
    assert codes(report, WARNING) == ["REGION_OUTSIDE_PACKAGE", "REQUIRED_FIELD_EMPTY"]
    fid_of = {f["BSM"]: f.id() for f in layer.getFeatures()}
    assert by_code["OVERLAP"].fids == sorted([fid_of["1"], fid_of["2"]])
    assert by_code["GEOMETRY_INVALID"].fids == [fid_of["5"]]
    assert by_code["REGION_OUTSIDE_ACCOUNT"].fids == [fid_of["4"]]
    assert by_code["REGION_OUTSIDE_PACKAGE"].fids == [fid_of["3"]]
    assert by_code["REQUIRED_FIELD_EMPTY"].fids == [fid_of["5"]]
    assert by_code["OVERLAP"].layer_id == layer.id()
    assert not report.ok
    validation = report.to_validation()
    assert validation["errors"] == len(report.errors) >= 3 and validation["warnings"] == 2
    assert validation["summary"]["OVERLAP"] == 2
    assert progress[-1] == 100.0


def test_touching_and_tiny_overlaps_are_not_reported(qgis_app, catalog):
    layer = dltb([(row("1"), rect(0, 0, 10, 10)), (row("2"), rect(9.9999, 0, 20, 10))])  # 0.001 m²
    report = run_preflight([("DLTB_BG", layer)], "dltb_biangeng", "610102", None, catalog)
    assert "OVERLAP" not in codes(report)
    strict = run_preflight(
        [("DLTB_BG", layer)], "dltb_biangeng", "610102", None, catalog, overlap_tolerance_m2=0.0
    )
    assert "OVERLAP" in codes(strict)


def test_overlaps_allowed_in_non_partition_dataset(qgis_app, catalog):
    layer = QgsVectorLayer(
        "Polygon?crs=EPSG:4545&field=JCBH:string&field=TBLX:string&field=JCMJ:double&field=XZQDM:string",
        "JCTB",
        "memory",
    )
    feats = []
    for i, r in enumerate([rect(0, 0, 10, 10), rect(5, 5, 15, 15)]):
        f = QgsFeature(layer.fields())
        f.setAttributes([str(i), "20", 100.0, "610102"])
        f.setGeometry(r)
        feats.append(f)
    layer.dataProvider().addFeatures(feats)
    report = run_preflight([("JCTB", layer)], "jctb", "610102", None, catalog)
    assert report.findings == []


def test_missing_fields_unknown_dataset_and_foreign_region(qgis_app, catalog):
    layer = dltb([(["1", "0101"], rect(0, 0, 10, 10))], fields=["BSM", "DLBM"])
    report = run_preflight([("DLTB_BG", layer)], "dltb_biangeng", "610102", None, catalog)
    missing = [f for f in report.findings if f.code == "FIELD_MISSING"]
    assert missing and all(f.severity == ERROR for f in missing)
    text = " ".join(f.message for f in missing)
    for name in ("TBBH", "DLMC", "QSXZ", "ZLDWDM", "TBMJ"):
        assert name in text
    assert "BSM" not in text and "DLBM" not in text
    report = run_preflight([("X", layer)], "no_such_dataset", "610102", None, catalog)
    assert "DATASET_UNKNOWN" in codes(report, ERROR)
    report = run_preflight([("DLTB_BG", layer)], "dltb_biangeng", "610102", "610103", catalog)
    assert "REGION_OUTSIDE_ACCOUNT" in codes(report, ERROR)
    report = run_preflight([("DLTB_BG", layer)], "dltb_biangeng", "610000", "61x", catalog)
    assert "REGION_INVALID" in codes(report, ERROR)


def test_null_and_empty_geometry(qgis_app, catalog):
    layer = dltb([(row("1"), QgsGeometry()), (row("2"), rect(0, 0, 1, 1))])
    report = run_preflight([("DLTB_BG", layer)], "dltb_biangeng", "610102", None, catalog)
    assert codes(report, ERROR) == ["GEOMETRY_EMPTY"]
