"""pbfnongrain / hsfnotinpbf with GeoPandas (pyogrio I/O, ``overlay``), tolerances off, GeoPackage out.

Written as a competent user would: read only the columns needed, filter by attribute before the overlay,
``keep_geom_type`` so touching neighbours give no lines. Prints the total planar area of the output.
"""

from __future__ import annotations

import sys

import geopandas as gpd

FARM = ["0101", "0102", "0103"]
NONGRAIN = ["FLS", "WG"]


def read(county: str, layer: str, columns: list[str]) -> gpd.GeoDataFrame:
    return gpd.read_file(county, layer=layer, columns=columns, engine="pyogrio")


def pbfnongrain(county: str) -> gpd.GeoDataFrame:
    pbf = read(county, "YJJBNTBHTB", ["BSM"]).rename(columns={"BSM": "PBF_ID"})
    dltb = read(county, "DLTB", ["BSM", "DLBM", "ZZSXDM", "ZLDWDM"])
    farm = dltb["DLBM"].isin(FARM)
    dltb = dltb[(farm & dltb["ZZSXDM"].isin(NONGRAIN)) | ~farm].copy()
    dltb["category"] = dltb["DLBM"].isin(FARM).map({True: "nongrain", False: "occupied"})
    return gpd.overlay(pbf, dltb, how="intersection", keep_geom_type=True)


def hsfnotinpbf(county: str) -> gpd.GeoDataFrame:
    hsf = read(county, "GBZNT", ["XMBH", "XMMC"])
    dltb = read(county, "DLTB", ["BSM", "DLBM", "ZLDWDM"])
    pbf = read(county, "YJJBNTBHTB", [])
    on_farm = gpd.overlay(hsf, dltb[dltb["DLBM"].isin(FARM)], how="intersection", keep_geom_type=True)
    return gpd.overlay(on_farm, pbf, how="difference", keep_geom_type=True)


def main(argv: list[str]) -> int:
    preset, county, out = argv
    result = {"pbfnongrain": pbfnongrain, "hsfnotinpbf": hsfnotinpbf}[preset](county)
    result.to_file(out, layer=preset, driver="GPKG", engine="pyogrio")
    print(f"{len(result)} {result.geometry.area.sum():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
