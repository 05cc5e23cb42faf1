"""Small real datasets for the shared-layers tests (catalog, recognition, checks, the panel).

Layers are written with OGR into GeoPackage, Shapefile (GBK), FileGDB or PostGIS. Polygons are small
squares in the CGCS2000 3° zone 36 (EPSG:4524, CM 108°E, 乾县 area); TBMJ is the real ellipsoidal area.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlparse

from osgeo import gdal, ogr, osr

from tests.datagen.gpkg import shapefile_recoding

gdal.UseExceptions()

COUNTY = "610424"  # 乾县, near 108.2°E
X0, Y0 = 36_520_000.0, 3_822_000.0  # zone-36 GK, about 108.22°E 34.52°N

S, INT, D = ogr.OFTString, ogr.OFTInteger, ogr.OFTReal

DLTB_FIELDS = [
    ("BSM", S),
    ("YSDM", S),
    ("TBBH", S),
    ("DLBM", S),
    ("DLMC", S),
    ("QSXZ", S),
    ("QSDWDM", S),
    ("QSDWMC", S),
    ("ZLDWDM", S),
    ("ZLDWMC", S),
    ("TBMJ", D),
    ("KCDLBM", S),
    ("KCXS", D),
    ("KCMJ", D),
    ("TBDLMJ", D),
    ("GDLX", S),
    ("GDPDJB", S),
    ("TBXHDM", S),
    ("ZZSXDM", S),
    ("GDDB", INT),
    ("CZCSXM", S),
    ("SJNF", INT),
]

CODES = [
    ("0101", "水田"),
    ("0103", "旱地"),
    ("0201", "果园"),
    ("0301", "乔木林地"),
    ("0702", "农村宅基地"),
    ("1006", "农村道路"),
]


@dataclass
class LayerData:
    name: str
    fields: list[tuple[str, int]]
    rows: list[dict] = field(default_factory=list)
    wkts: list[str] = field(default_factory=list)
    epsg: int | None = 4524
    geometry: int = ogr.wkbPolygon


def square(i: int, size: float = 100.0, x0: float = X0, y0: float = Y0, per_row: int = 20) -> str:
    x = x0 + (i % per_row) * size
    y = y0 + (i // per_row) * size
    return "POLYGON(({0} {1},{2} {1},{2} {3},{0} {3},{0} {1}))".format(x, y, x + size, y + size)


def ellipsoidal_area(wkt: str, epsg: int = 4524) -> float:
    from qgis.core import QgsCoordinateReferenceSystem, QgsGeometry

    from huijiao_plugin.core.ellipsoidal_area import EllipsoidalAreaCalculator

    calc = EllipsoidalAreaCalculator(QgsCoordinateReferenceSystem(f"EPSG:{epsg}"))
    return calc.area(QgsGeometry.fromWkt(wkt))


def dltb_data(n: int = 12, name: str = "DLTB", year: int = 2019, epsg: int = 4524) -> LayerData:
    """A clean DLTB: valid codes, unique BSM, TBMJ = ellipsoidal area."""
    data = LayerData(name, list(DLTB_FIELDS), epsg=epsg)
    for i in range(n):
        wkt = square(i)
        code, dlmc = CODES[i % len(CODES)]
        tbmj = ellipsoidal_area(wkt, 4524)
        farmland = code.startswith("01")
        data.wkts.append(wkt)
        data.rows.append(
            {
                "BSM": f"{COUNTY}{i + 1:012d}",
                "YSDM": "2001010100",
                "TBBH": str(i + 1),
                "DLBM": code,
                "DLMC": dlmc,
                "QSXZ": "30",
                "QSDWDM": COUNTY + "1002010000000",
                "QSDWMC": "某村",
                "ZLDWDM": COUNTY + "1002010000000",
                "ZLDWMC": "某村",
                "TBMJ": tbmj,
                "KCDLBM": "1203" if farmland else None,
                "KCXS": 0.05 if farmland else 0.0,
                "KCMJ": round(tbmj * 0.05, 2) if farmland else 0.0,
                "TBDLMJ": round(tbmj * 0.95, 2) if farmland else tbmj,
                "GDLX": "TT" if farmland else None,
                "GDPDJB": "2" if farmland else None,
                "TBXHDM": None,
                "ZZSXDM": "LS" if farmland else None,
                "GDDB": 7 if farmland else None,
                "CZCSXM": "203" if code == "0702" else None,
                "SJNF": year,
            }
        )
    return data


def simple_data(name: str, fields: list[tuple[str, int]], values: list[dict], epsg: int = 4524,
                geometry: int = ogr.wkbPolygon, x0: float = X0) -> LayerData:  # fmt: skip
    data = LayerData(name, fields, epsg=epsg, geometry=geometry)
    for i, v in enumerate(values):
        if geometry == ogr.wkbPoint:
            data.wkts.append(f"POINT({x0 + 50 + i * 100} {Y0 + 50})")
        else:
            data.wkts.append(square(i, x0=x0))
        data.rows.append(v)
    return data


def write_layer(
    path: str,
    data: LayerData,
    driver: str = "GPKG",
    encoding: str | None = None,
    keep_cpg: bool = True,
    schema: str | None = None,
) -> str:
    """Write ``data`` as layer ``data.name`` of ``path`` (created or appended); returns the path."""
    with shapefile_recoding():
        return _write_layer(path, data, driver, encoding, keep_cpg, schema)


def _write_layer(path, data, driver, encoding, keep_cpg, schema) -> str:
    drv = ogr.GetDriverByName(driver)
    if driver == "PostgreSQL":
        ds = ogr.Open(path, update=1)
    elif os.path.exists(path):
        ds = ogr.Open(path, update=1) if driver != "ESRI Shapefile" else drv.CreateDataSource(path)
    else:
        ds = drv.CreateDataSource(path)
    srs = None
    if data.epsg:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(data.epsg)
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    options = []
    if encoding:
        options.append(f"ENCODING={encoding}")
    name = data.name
    if schema:
        options += [f"SCHEMA={schema}", "OVERWRITE=YES"]
        name = f"{schema}.{data.name}"
    layer = ds.CreateLayer(name if not schema else data.name, srs, data.geometry, options=options)
    for fname, ftype in data.fields:
        layer.CreateField(ogr.FieldDefn(fname, ftype))
    defn = layer.GetLayerDefn()
    layer.StartTransaction()
    for wkt, row in zip(data.wkts, data.rows):
        feat = ogr.Feature(defn)
        for k, v in row.items():
            if v is not None:
                feat.SetField(k, v)
        if wkt:
            feat.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        layer.CreateFeature(feat)
    layer.CommitTransaction()
    ds = None
    if driver == "ESRI Shapefile" and not keep_cpg:
        cpg = os.path.splitext(path)[0] + ".cpg"
        if os.path.exists(cpg):
            os.remove(cpg)
    return path


def pg_ogr_dsn(url: str) -> str:
    p = urlparse(url)
    return "PG:host={} port={} dbname={} user={} password={}".format(
        p.hostname, p.port or 5432, p.path.lstrip("/"), p.username, p.password
    )


def pg_execute(url: str, sql: str) -> None:
    ds = ogr.Open(pg_ogr_dsn(url), update=1)
    ds.ExecuteSQL(sql)
    ds = None
