"""Small hand-made GeoPackages shared by the change-patch tests (and a check of them)."""

from __future__ import annotations

import json
from pathlib import Path

from osgeo import ogr, osr

X0, Y0 = 580000.0, 3800000.0  # EPSG:4545, near 108.87°E 34.32°N
COUNTY = "610423"
TOWNSHIPS = {"610423100": (0, 1000), "610423101": (1000, 2000)}  # x ranges (relative to X0), y 0..1000
VILLAGES = {
    "6104231002010000000": (0, 500),
    "6104231002020000000": (500, 1000),
    "6104231012010000000": (1000, 2000),
}


def rect_wkt(x1: float, y1: float, x2: float, y2: float) -> str:
    return f"POLYGON(({x1} {y1},{x2} {y1},{x2} {y2},{x1} {y2},{x1} {y1}))"


def rel_rect(x1: float, y1: float, x2: float, y2: float) -> str:
    return rect_wkt(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2)


def _srs() -> osr.SpatialReference:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4545)
    return srs


def write_layer(path: Path, name: str, fields: dict[str, int], rows: list[tuple[str, dict]]) -> str:
    """Write a polygon layer (append to ``path``); returns the QGIS uri."""
    ds = (
        ogr.Open(str(path), update=1)
        if path.exists()
        else ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    )
    layer = ds.CreateLayer(name, _srs(), ogr.wkbMultiPolygon)
    for fname, ftype in fields.items():
        layer.CreateField(ogr.FieldDefn(fname, ftype))
    for wkt, attrs in rows:
        feature = ogr.Feature(layer.GetLayerDefn())
        for key, value in attrs.items():
            feature.SetField(key, value)
        feature.SetGeometry(ogr.ForceToMultiPolygon(ogr.CreateGeometryFromWkt(wkt)))
        layer.CreateFeature(feature)
    ds = None
    return f"{path}|layername={name}"


def make_regions(path: Path) -> tuple[str, str]:
    """XZQ (two townships) and CJDCQ (three villages, 19-digit ZLDWDM); returns their uris."""
    xzq = write_layer(
        path,
        "XZQ",
        {"XZQDM": ogr.OFTString, "XZQMC": ogr.OFTString},
        [(rel_rect(a, 0, b, 1000), {"XZQDM": code, "XZQMC": "镇"}) for code, (a, b) in TOWNSHIPS.items()],
    )
    cjdcq = write_layer(
        path,
        "CJDCQ",
        {"ZLDWDM": ogr.OFTString, "ZLDWMC": ogr.OFTString},
        [(rel_rect(a, 0, b, 1000), {"ZLDWDM": code, "ZLDWMC": "村"}) for code, (a, b) in VILLAGES.items()],
    )
    return xzq, cjdcq


COMPARISON_FIELDS = {
    "rule_id": ogr.OFTString,
    "rule_params": ogr.OFTString,
    "inputs": ogr.OFTString,
    "category": ogr.OFTString,
    "area_m2": ogr.OFTReal,
}


def comparison_rows() -> list[tuple[str, dict]]:
    """Pieces of a 非粮化 comparison: two adjacent pieces (merge into one 40x20 m = 800 m² patch),
    one isolated 30x30 m piece, one 10x10 m sliver (dropped, < 400 m²), and a 非农化 piece touching
    the first pair (other rule: not merged with them)."""
    params = json.dumps({"nongrain_codes": ["FLS", "WG"]})
    inputs = json.dumps({"DLTB": "2023", "YJJBNTBHTB": "2022"})
    grain = {"rule_id": "pbfnongrain", "rule_params": params, "inputs": inputs, "category": "FLS"}
    return [
        (rel_rect(100, 100, 120, 120), dict(grain)),
        (rel_rect(120, 100, 140, 120), dict(grain, category="WG")),
        (rel_rect(600, 600, 630, 630), dict(grain)),
        (rel_rect(300, 300, 310, 310), dict(grain)),
        (
            rel_rect(140, 100, 160, 120),
            {"rule_id": "nonagri", "rule_params": "{}", "inputs": inputs, "category": "建设"},
        ),
    ]


def make_comparison(path: Path, name: str = "nongrain") -> str:
    return write_layer(path, name, COMPARISON_FIELDS, comparison_rows())


def import_field_results(store_path: str, package_gpkg: str, tmp_path: Path) -> dict:
    """Run huijiao:importfieldresults as 分析员 with a JSON report in ``tmp_path``."""
    import processing

    params = {
        "STORE": store_path,
        "PACKAGE": package_gpkg,
        "USER": "分析员",
        "REPORT": str(tmp_path / "r.json"),
    }
    return processing.run("huijiao:importfieldresults", params)


def test_helpers_write_readable_layers(tmp_path):
    from qgis.core import QgsVectorLayer

    xzq, cjdcq = make_regions(tmp_path / "regions.gpkg")
    comparison = make_comparison(tmp_path / "cmp.gpkg")
    assert QgsVectorLayer(xzq, "x", "ogr").featureCount() == 2
    assert QgsVectorLayer(cjdcq, "c", "ogr").featureCount() == 3
    layer = QgsVectorLayer(comparison, "c", "ogr")
    assert layer.featureCount() == 5
    assert layer.crs().authid() == "EPSG:4545"
