"""huijiao:ellipsoidalarea through processing.run on real GeoPackages."""

from __future__ import annotations

import json

import pytest
from qgis.core import (
    NULL,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsGeometry,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsVectorFileWriter,
    QgsVectorLayer,
)

PENTAGON = (
    "POLYGON((36506000 3794000,36506420.5 3794030.25,36506510.75 3794380.5,36506200 3794560,"
    "36505950.25 3794300.75,36506000 3794000))"
)
SQUARE = "POLYGON((36580000 3800000,36581000 3800000,36581000 3801000,36580000 3801000,36580000 3800000))"
WITH_HOLE = (
    "POLYGON((36500000 3800000,36500300 3800000,36500300 3800200,36500000 3800200,36500000 3800000),"
    "(36500100 3800050,36500100 3800150,36500200 3800150,36500200 3800050,36500100 3800050))"
)


def layer_with(rows, geometry_type, crs_code, fields):
    """A memory layer "dltb" with one feature per ``(wkt, attributes)`` row."""
    uri = f"{geometry_type}?{'crs=' + crs_code + '&' if crs_code else ''}{fields}"
    layer = QgsVectorLayer(uri, "dltb", "memory")
    assert layer.isValid()
    features = []
    for wkt, attributes in rows:
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromWkt(wkt))
        feature.setAttributes(attributes)
        features.append(feature)
    assert layer.dataProvider().addFeatures(features)[0]
    return layer


def write_gpkg(path, geometry_type, crs_code, rows, fields="field=DLBM:string&field=GDPDJB:string"):
    layer = layer_with(rows, geometry_type, crs_code, fields)
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "dltb"
    error = QgsVectorFileWriter.writeAsVectorFormatV3(layer, str(path), layer.transformContext(), options)
    assert error[0] == QgsVectorFileWriter.WriterError.NoError, error
    result = QgsVectorLayer(f"{path}|layername=dltb", "dltb", "ogr")
    assert result.isValid()
    assert result.featureCount() == len(rows)
    return result


class Feedback(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.errors = []

    def reportError(self, error, fatal_error=False):
        self.errors.append(error)
        super().reportError(error, fatal_error)


def run(params, feedback=None):
    import processing

    return processing.run("huijiao:ellipsoidalarea", params, feedback=feedback)


def read(path):
    layer = QgsVectorLayer(str(path), "out", "ogr")
    assert layer.isValid()
    return layer, {f["NAME"]: f for f in layer.getFeatures()}


DLTB_FIELDS = "field=NAME:string&field=DLBM:string&field=GDPDJB:string&field=GDLX:string&field=KCXS:double"


@pytest.fixture
def dltb(tmp_path):
    rows = [
        (PENTAGON, ["pentagon", "0103", "3", "PD", None]),
        (SQUARE, ["square", "0103", "2", "TT", 0.1]),
        (WITH_HOLE, ["holed", "0301", None, None, None]),
        (SQUARE, ["unknown", "0103", "9", "PD", None]),
    ]
    return write_gpkg(tmp_path / "in.gpkg", "Polygon", "EPSG:4524", rows, DLTB_FIELDS)


def test_areas_in_m2_mu_ha(huijiao_provider, dltb, tmp_path):
    out = tmp_path / "out.gpkg"
    result = run({"INPUT": dltb, "FILL_TBMJ": False, "OUTPUT": str(out)})
    layer, by_name = read(result["OUTPUT"])
    names = layer.fields().names()
    assert {"AREA_M2", "AREA_MU", "AREA_HA"} <= set(names)
    assert "TBMJ" not in names and "KCMJ" not in names
    assert layer.crs().authid() == "EPSG:4524"
    assert by_name["pentagon"]["AREA_M2"] == 221239.82
    assert by_name["square"]["AREA_M2"] == 999840.33
    assert by_name["square"]["AREA_MU"] == 1499.76
    assert by_name["square"]["AREA_HA"] == 99.984
    assert by_name["pentagon"]["AREA_HA"] == 22.124
    assert by_name["pentagon"]["AREA_MU"] == 331.86
    holed = by_name["holed"]["AREA_M2"]
    assert holed == pytest.approx(60000 - 10000, abs=0.5)
    # input attributes are kept
    assert by_name["pentagon"]["DLBM"] == "0103"
    assert by_name["square"]["KCXS"] == 0.1


def test_fill_tbmj_kcmj_tbdlmj(huijiao_provider, dltb, tmp_path):
    out = tmp_path / "filled.gpkg"
    feedback = Feedback()
    result = run({"INPUT": dltb, "FILL_TBMJ": True, "OUTPUT": str(out)}, feedback)
    _, by_name = read(result["OUTPUT"])
    pentagon = by_name["pentagon"]  # KCXS from the default table: 3PD
    assert pentagon["TBMJ"] == 221239.82
    assert pentagon["KCXS"] == 0.09
    assert pentagon["KCMJ"] == 19911.58
    assert pentagon["TBDLMJ"] == 201328.24
    square = by_name["square"]  # KCXS from the feature
    assert square["TBMJ"] == 999840.33
    assert square["KCMJ"] == 99984.03
    assert square["TBDLMJ"] == 899856.30
    holed = by_name["holed"]  # no slope level: no deduction
    assert holed["KCMJ"] == 0.0
    assert holed["TBDLMJ"] == holed["TBMJ"] == holed["AREA_M2"]
    unknown = by_name["unknown"]  # GDPDJB 9 is not in the table: reported, areas still written
    assert unknown["TBMJ"] == 999840.33
    assert unknown["KCMJ"] == NULL
    assert unknown["TBDLMJ"] == NULL
    assert len(feedback.errors) == 1
    assert "GDPDJB '9'" in feedback.errors[0]


def test_fill_with_overriding_table(huijiao_provider, dltb, tmp_path):
    table = tmp_path / "tkxs.json"
    table.write_text(json.dumps({"values": {"3PD": 0.2}}), encoding="utf-8")
    result = run(
        {"INPUT": dltb, "FILL_TBMJ": True, "TKXS_TABLE": str(table), "OUTPUT": str(tmp_path / "o.gpkg")}
    )
    _, by_name = read(result["OUTPUT"])
    assert by_name["pentagon"]["KCXS"] == 0.2
    assert by_name["pentagon"]["KCMJ"] == 44247.96
    assert by_name["pentagon"]["TBDLMJ"] == 176991.86


def memory_layer(rows, crs_code=""):
    layer = layer_with(rows, "Polygon", crs_code, DLTB_FIELDS)
    if not crs_code:
        layer.setCrs(QgsCoordinateReferenceSystem())  # QGIS gives CRS-less memory layers EPSG:4326
    return layer


def test_bad_coefficient_table_fails_clearly(huijiao_provider, dltb, tmp_path):
    table = tmp_path / "tkxs.json"
    table.write_text("{not json", encoding="utf-8")
    params = {"INPUT": dltb, "FILL_TBMJ": True, "TKXS_TABLE": str(table), "OUTPUT": str(tmp_path / "o.gpkg")}
    with pytest.raises(QgsProcessingException, match="terrace-ridge coefficient table"):
        run(params)


def test_layer_without_crs_uses_zone_prefix(huijiao_provider, tmp_path):
    layer = memory_layer([(PENTAGON, ["pentagon", "0103", "3", "PD", None])])
    assert not layer.crs().isValid()
    result = run({"INPUT": layer, "OUTPUT": str(tmp_path / "o.gpkg")})
    _, by_name = read(result["OUTPUT"])
    assert by_name["pentagon"]["AREA_M2"] == 221239.82


def test_gpkg_without_crs_opened_as_geographic_uses_zone_prefix(huijiao_provider, tmp_path):
    rows = [(PENTAGON, ["pentagon", "0103", "3", "PD", None])]
    layer = write_gpkg(tmp_path / "nocrs.gpkg", "Polygon", "", rows, DLTB_FIELDS)
    assert not layer.crs().isValid() or layer.crs().isGeographic()
    result = run({"INPUT": layer, "OUTPUT": str(tmp_path / "o.gpkg")})
    _, by_name = read(result["OUTPUT"])
    assert by_name["pentagon"]["AREA_M2"] == 221239.82


def test_layer_without_crs_and_without_prefix_fails_clearly(huijiao_provider, tmp_path):
    square = "POLYGON((500000 3800000,500100 3800000,500100 3800100,500000 3800000))"
    layer = memory_layer([(square, ["a", "0103", "", "", None])])
    with pytest.raises(QgsProcessingException, match="zone"):
        run({"INPUT": layer, "OUTPUT": str(tmp_path / "o.gpkg")})


def test_invalid_geometries_are_measured_not_rejected(huijiao_provider, tmp_path):
    bowtie = "POLYGON((36500000 3800000,36500200 3800200,36500200 3800000,36500000 3800200,36500000 3800000))"
    rows = [(bowtie, ["bowtie", "0103", "", "", None]), (SQUARE, ["square", "0103", "", "", None])]
    layer = write_gpkg(tmp_path / "invalid.gpkg", "Polygon", "EPSG:4524", rows, DLTB_FIELDS)
    result = run({"INPUT": layer, "OUTPUT": str(tmp_path / "o.gpkg")})
    _, by_name = read(result["OUTPUT"])
    assert by_name["bowtie"]["AREA_M2"] == pytest.approx(0.0, abs=0.02)  # the two lobes cancel
    assert by_name["square"]["AREA_M2"] == 999840.33


def test_point_layer_is_rejected(huijiao_provider, tmp_path):
    points = write_gpkg(
        tmp_path / "points.gpkg", "Point", "EPSG:4545", [("POINT(500000 3800000)", ["x", "0103"])]
    )
    with pytest.raises(QgsProcessingException) as error:
        run({"INPUT": points, "OUTPUT": str(tmp_path / "o.gpkg")})
    assert "must be a polygon layer" in str(error.value)
    assert "Point" in str(error.value)


def test_algorithm_metadata(huijiao_provider):
    alg = huijiao_provider.algorithm("ellipsoidalarea")
    assert alg is not None
    assert alg.groupId() == "basic"
    assert alg.displayName()
    assert "TBMJ" in alg.shortHelpString()
    assert {p.name() for p in alg.parameterDefinitions()} == {"INPUT", "FILL_TBMJ", "TKXS_TABLE", "OUTPUT"}


def test_crs_of_output_matches_input_with_multipolygons(huijiao_provider, tmp_path):
    multi = (
        "MULTIPOLYGON(((36580000 3800000,36581000 3800000,36581000 3801000,36580000 3801000,"
        "36580000 3800000)),"
        "((36506000 3794000,36506420.5 3794030.25,36506510.75 3794380.5,36506200 3794560,"
        "36505950.25 3794300.75,36506000 3794000)))"
    )
    layer = write_gpkg(
        tmp_path / "multi.gpkg",
        "MultiPolygon",
        "EPSG:4524",
        [(multi, ["m", "0103", "", "", None])],
        DLTB_FIELDS,
    )
    result = run({"INPUT": layer, "OUTPUT": str(tmp_path / "o.gpkg")})
    out, by_name = read(result["OUTPUT"])
    assert out.crs() == QgsCoordinateReferenceSystem("EPSG:4524")
    assert by_name["m"]["AREA_M2"] == pytest.approx(999840.33 + 221239.82, abs=0.011)
