"""Fast GeoPackage writing: OGR creates the tables (so the metadata is standard), rows go in through sqlite3.

Geometries are given as little-endian WKB; they are wrapped into GeoPackage binary blobs with an envelope.
The spatial index is built afterwards by OGR (``CreateSpatialIndex``) and the feature counts are set.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from osgeo import gdal, ogr, osr

ogr.UseExceptions()
osr.UseExceptions()


@contextmanager
def shapefile_recoding() -> Iterator[None]:
    """Let GDAL recode Shapefile text (e.g. to GBK) while writing.

    QGIS's OGR provider sets SHAPE_ENCODING="" (no recoding) process-wide once it has opened a layer;
    without this, a DBF asked for with ENCODING=GBK would silently receive UTF-8 bytes.
    """
    previous = gdal.GetConfigOption("SHAPE_ENCODING")
    gdal.SetConfigOption("SHAPE_ENCODING", None)
    try:
        yield
    finally:
        gdal.SetConfigOption("SHAPE_ENCODING", previous)


_HDR = struct.Struct("<2sBBi4d")  # magic, version, flags, srs_id, envelope minx maxx miny maxy


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "str", "int", "real"
    width: int = 0
    precision: int = 0


def gpkg_blob(wkb: bytes, srs_id: int, env: tuple[float, float, float, float]) -> bytes:
    """GeoPackage binary geometry (little-endian, xy envelope) around a WKB."""
    return _HDR.pack(b"GP", 0, 0b00000011, srs_id, env[0], env[1], env[2], env[3]) + wkb


def polygon_wkb(rings: Sequence[np.ndarray]) -> bytes:
    """Polygon WKB from closed rings given as (n, 2) float64 arrays (first = shell)."""
    parts = [struct.pack("<BII", 1, 3, len(rings))]
    for r in rings:
        parts.append(struct.pack("<I", r.shape[0]))
        parts.append(np.ascontiguousarray(r, dtype="<f8").tobytes())
    return b"".join(parts)


def multipolygon_wkb(polygons: Sequence[bytes]) -> bytes:
    return struct.pack("<BII", 1, 6, len(polygons)) + b"".join(polygons)


def create_gpkg_layers(
    path: str,
    layers: Sequence[tuple[str, Sequence[Field], int | None]],
    epsg: int,
    descriptions: dict[str, str] | None = None,
) -> None:
    """Create (or add to) a GeoPackage with empty layers. geometry type None = attribute table."""
    drv = ogr.GetDriverByName("GPKG")
    ds = ogr.Open(path, 1) if os.path.exists(path) else drv.CreateDataSource(path)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    for name, fields, gtype in layers:
        opts = ["FID=fid"]
        if descriptions and name in descriptions:
            opts.append(f"DESCRIPTION={descriptions[name]}")
        if gtype is None:
            lyr = ds.CreateLayer(name, None, ogr.wkbNone, options=opts)
        else:
            lyr = ds.CreateLayer(name, srs, gtype, options=[*opts, "SPATIAL_INDEX=NO", "GEOMETRY_NAME=geom"])
        for f in fields:
            if f.kind == "str":
                fd = ogr.FieldDefn(f.name, ogr.OFTString)
                fd.SetWidth(f.width)
            elif f.kind == "int":
                fd = ogr.FieldDefn(f.name, ogr.OFTInteger)
                if f.width:
                    fd.SetWidth(f.width)
            else:
                fd = ogr.FieldDefn(f.name, ogr.OFTReal)
                if f.width:
                    fd.SetWidth(f.width)
                    fd.SetPrecision(f.precision)
            lyr.CreateField(fd)
    ds = None


def insert_rows(
    path: str,
    name: str,
    fields: Sequence[Field],
    rows: Sequence[Sequence[object]],
    geoms: Sequence[bytes] | None,
    envelopes: np.ndarray | None,
    srs_id: int,
) -> None:
    """Insert attribute rows (and WKB geometries with their (minx, maxx, miny, maxy) envelopes)."""
    con = sqlite3.connect(path)
    try:
        cols = [f'"{f.name}"' for f in fields]
        if geoms is not None:
            cols = ['"geom"', *cols]
        sql = f'INSERT INTO "{name}" ({", ".join(cols)}) VALUES ({", ".join("?" * len(cols))})'
        if geoms is not None:
            assert envelopes is not None
            env = envelopes.tolist()
            data = (
                (gpkg_blob(g, srs_id, e), *r)
                for g, e, r in zip(geoms, env, rows)  # noqa: B905
            )
        else:
            data = (tuple(r) for r in rows)
        con.execute("PRAGMA synchronous=OFF")
        con.executemany(sql, data)
        if geoms is not None and len(geoms):
            con.execute(
                "UPDATE gpkg_contents SET min_x=?, max_x=?, min_y=?, max_y=? WHERE table_name=?",
                (
                    float(envelopes[:, 0].min()),
                    float(envelopes[:, 1].max()),
                    float(envelopes[:, 2].min()),
                    float(envelopes[:, 3].max()),
                    name,
                ),
            )
        has_counts = con.execute(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='gpkg_ogr_contents'"
        ).fetchone()[0]
        if has_counts:
            n = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            con.execute("UPDATE gpkg_ogr_contents SET feature_count=? WHERE table_name=?", (n, name))
        con.commit()
    finally:
        con.close()


def create_spatial_indexes(path: str, names: Sequence[str]) -> None:
    ds = ogr.Open(path, 1)
    for name in names:
        ds.ExecuteSQL(f"SELECT CreateSpatialIndex('{name}', 'geom')")
    ds = None
