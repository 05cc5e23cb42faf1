"""pbfnongrain / hsfnotinpbf with DuckDB spatial (SQL, a spatial join), tolerances off, GeoPackage out.

The spatial extension comes from PyPI (duckdb-extension-spatial) and is loaded from its package folder, so
nothing is downloaded at run time. Prints the total planar area of the output.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import duckdb_extension_spatial

FARM = "('0101','0102','0103')"
NONGRAIN = "('FLS','WG')"

SQL = {
    "pbfnongrain": f"""
        CREATE TABLE pbf AS SELECT BSM AS PBF_ID, geom FROM ST_Read($county, layer='YJJBNTBHTB');
        CREATE TABLE dltb AS SELECT BSM AS DLTB_BSM, DLBM, ZZSXDM, ZLDWDM,
            CASE WHEN DLBM IN {FARM} THEN 'nongrain' ELSE 'occupied' END AS category, geom
            FROM ST_Read($county, layer='DLTB')
            WHERE (DLBM IN {FARM} AND ZZSXDM IN {NONGRAIN}) OR DLBM NOT IN {FARM};
        CREATE TABLE result AS SELECT * FROM (
            SELECT p.PBF_ID, d.DLTB_BSM, d.DLBM, d.ZZSXDM, d.ZLDWDM, d.category,
                ST_CollectionExtract(ST_Intersection(p.geom, d.geom), 3) AS geom
            FROM pbf p JOIN dltb d ON ST_Intersects(p.geom, d.geom)
        ) WHERE ST_Area(geom) > 0;
    """,
    "hsfnotinpbf": f"""
        CREATE TABLE hsf AS SELECT XMBH, XMMC, geom FROM ST_Read($county, layer='GBZNT');
        CREATE TABLE farm AS SELECT BSM AS DLTB_BSM, DLBM, ZLDWDM, geom FROM ST_Read($county, layer='DLTB')
            WHERE DLBM IN {FARM};
        CREATE TABLE pbf AS SELECT geom FROM ST_Read($county, layer='YJJBNTBHTB');
        CREATE TABLE on_farm AS SELECT row_number() OVER () AS id, * FROM (
            SELECT h.XMBH, h.XMMC, f.DLTB_BSM, f.DLBM, f.ZLDWDM,
                ST_CollectionExtract(ST_Intersection(h.geom, f.geom), 3) AS geom
            FROM hsf h JOIN farm f ON ST_Intersects(h.geom, f.geom)
        ) WHERE ST_Area(geom) > 0;
        CREATE TABLE result AS SELECT * EXCLUDE (id) FROM (
            SELECT o.id, any_value(o.XMBH) AS XMBH, any_value(o.XMMC) AS XMMC,
                any_value(o.DLTB_BSM) AS DLTB_BSM, any_value(o.DLBM) AS DLBM, any_value(o.ZLDWDM) AS ZLDWDM,
                CASE WHEN count(p.geom) = 0 THEN any_value(o.geom)
                     ELSE ST_CollectionExtract(ST_Difference(any_value(o.geom), ST_Union_Agg(p.geom)), 3)
                END AS geom
            FROM on_farm o LEFT JOIN pbf p ON ST_Intersects(o.geom, p.geom)
            GROUP BY o.id
        ) WHERE ST_Area(geom) > 0;
    """,
}


def main(argv: list[str]) -> int:
    preset, county, out = argv
    con = duckdb.connect()
    extension = Path(duckdb_extension_spatial.__file__).parent / "extensions"
    con.execute(f"LOAD '{next(extension.glob('*/spatial.duckdb_extension'))}'")
    for statement in filter(str.strip, SQL[preset].split(";")):
        con.execute(statement, {"county": county} if "$county" in statement else None)
    options = f"FORMAT GDAL, DRIVER 'GPKG', LAYER_NAME '{preset}', SRS 'EPSG:4545'"
    con.execute(f"COPY result TO '{out}' WITH ({options})")
    count, area = con.execute("SELECT count(*), sum(ST_Area(geom)) FROM result").fetchone()
    print(f"{count} {area:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
