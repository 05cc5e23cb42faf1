"""Hand-made GeoPackages with exactly known answers for the 耕地比对 tests (EPSG:4545, 100 m cells).

Grid: columns c = 0..5 (x0 + 100 c), rows r = 0..3 (y0 + 100 r). Township 610102001 = columns 0–2, 610102002 =
columns 3–5. See ``expected`` in the tests for the answers this layout implies.
"""

from __future__ import annotations

import gc
import math
import random
from pathlib import Path

from qgis.core import (
    QgsCoordinateTransformContext,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsVectorLayer,
)

from huijiao_plugin.compat import FieldType

X0, Y0 = 500000.0, 3800000.0
CELL = 100.0
T1, T2 = "610102001", "610102002"


def release(layers: dict) -> None:
    """Drop OGR layers of a module-scoped fixture before QGIS exits (deleting them later crashes the
    process)."""
    layers.clear()
    gc.collect()


def rect(x1: float, y1: float, x2: float, y2: float) -> QgsGeometry:
    return QgsGeometry.fromRect(QgsRectangle(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2))


def cell(c: int, r: int) -> QgsGeometry:
    return rect(c * CELL, r * CELL, (c + 1) * CELL, (r + 1) * CELL)


def noisy(geom: QgsGeometry, amplitude: float, seed: int, step: float = 10.0) -> QgsGeometry:
    """``geom`` with vertices every ``step`` m moved by up to ``amplitude`` m in a random direction
    (digitising
    noise)."""
    rng = random.Random(seed)
    dense = geom.densifyByDistance(step)
    ring = dense.asPolygon()[0][:-1]
    moved = []
    for p in ring:
        angle, dist = rng.uniform(0, 2 * math.pi), amplitude * math.sqrt(rng.random())
        moved.append(QgsPointXY(p.x() + dist * math.cos(angle), p.y() + dist * math.sin(angle)))
    return QgsGeometry.fromPolygonXY([moved + [moved[0]]])


def write_layer(
    path: Path,
    name: str,
    fields: list[tuple[str, object]],
    rows: list[tuple[QgsGeometry, dict]],
    crs: str = "EPSG:4545",
) -> QgsVectorLayer:
    """Write (or add) a polygon layer ``name`` to the GeoPackage ``path`` and return it opened from the
    file."""
    spec = "&".join(
        f"field={n}:{'double' if t == FieldType.Double else 'integer' if t == FieldType.Int else 'string'}"
        for n, t in fields
    )
    mem = QgsVectorLayer(f"Polygon?crs={crs}&{spec}", name, "memory")
    feats = []
    for geom, attrs in rows:
        f = QgsFeature(mem.fields())
        f.setGeometry(geom)
        for key, value in attrs.items():
            f[key] = value
        feats.append(f)
    mem.dataProvider().addFeatures(feats)
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = name
    options.actionOnExistingFile = (
        QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteLayer
        if path.exists()
        else QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteFile
    )
    err = QgsVectorFileWriter.writeAsVectorFormatV3(mem, str(path), QgsCoordinateTransformContext(), options)
    assert err[0] == QgsVectorFileWriter.WriterError.NoError, err
    layer = QgsVectorLayer(f"{path}|layername={name}", name, "ogr")
    assert layer.isValid() and layer.featureCount() == len(rows)
    return layer


DLTB_FIELDS = [
    ("BSM", FieldType.String),
    ("DLBM", FieldType.String),
    ("ZZSXDM", FieldType.String),
    ("TBXHDM", FieldType.String),
    ("GDPDJB", FieldType.String),
    ("GDLX", FieldType.String),
    ("FRDBS", FieldType.String),
    ("ZLDWDM", FieldType.String),
    ("QSDWDM", FieldType.String),
    ("SJNF", FieldType.Int),
]


def zl(c: int) -> str:
    return (T1 if c <= 2 else T2) + "001" + "0000000"


def dltb_rows(year: int) -> list[tuple[QgsGeometry, dict]]:
    special = {
        (1, 0): {"ZZSXDM": "FLS"},
        (2, 0): {"ZZSXDM": "WG"},
        (3, 0): {"DLBM": "0201", "ZZSXDM": "JKHF"},
        (4, 0): {"DLBM": "0702", "ZZSXDM": ""},
        (0, 1): {"TBXHDM": "SHGD"},
        (1, 1): {"GDPDJB": "5", "GDLX": "PD"},
        (2, 1): {"FRDBS": "1"},
        (4, 2): {"DLBM": "0301", "ZZSXDM": ""},
        (5, 3): {"DLBM": "1006", "ZZSXDM": ""},
    }
    if year == 2024:
        special[(0, 0)] = {"DLBM": "0702", "ZZSXDM": ""}
        special[(1, 2)] = {"ZZSXDM": "FLS"}
    rows = []
    n = 0
    for r in range(4):
        for c in range(6):
            attrs = {
                "BSM": f"{year}{n:06d}",
                "DLBM": "0103",
                "ZZSXDM": "LS",
                "TBXHDM": "",
                "GDPDJB": "2",
                "GDLX": "TT",
                "FRDBS": "0",
                "ZLDWDM": zl(c),
                "QSDWDM": zl(c),
                "SJNF": year,
            }
            attrs.update(special.get((c, r), {}))
            n += 1
            if year == 2024 and (c, r) == (5, 3):  # split in two halves: one matched (geometry), one added
                rows.append((rect(500, 300, 560, 400), dict(attrs)))
                attrs = dict(attrs, BSM=f"{year}{n + 100:06d}")
                rows.append((rect(560, 300, 600, 400), attrs))
                continue
            rows.append((cell(c, r), attrs))
    return rows


def build_county(path: Path, pbf_noise: float = 0.0) -> dict[str, QgsVectorLayer]:
    """All roles of the hand-made county in one GeoPackage."""
    layers = {}
    layers["DLTB"] = write_layer(path, "DLTB", DLTB_FIELDS, dltb_rows(2023))
    layers["DLTB_N1"] = write_layer(path, "DLTB_N1", DLTB_FIELDS, dltb_rows(2024))
    pbf_rows = []
    k = 0
    for r in range(2):
        for c in range(4):
            geom = cell(c, r) if pbf_noise <= 0 else noisy(cell(c, r), pbf_noise, seed=k)
            pbf_rows.append((geom, {"BSM": f"P{k:04d}", "ZLDWDM": zl(c), "SJNF": 2023}))
            k += 1
    # a small isolated PBF patch (400 m² < 1 亩) in township 2 but registered to township 1: fragment + 插花
    pbf_rows.append((rect(520, 220, 540, 240), {"BSM": "P9999", "ZLDWDM": zl(0), "SJNF": 2023}))
    pbf_fields = [("BSM", FieldType.String), ("ZLDWDM", FieldType.String), ("SJNF", FieldType.Int)]
    layers["PBF"] = write_layer(path, "YJJBNTBHTB", pbf_fields, pbf_rows)
    hsf_fields = [("XMBH", FieldType.String), ("XMMC", FieldType.String), ("JSND", FieldType.Int)]
    layers["HSF"] = write_layer(
        path,
        "GBZNT",
        hsf_fields,
        [(rect(250, 100, 550, 300), {"XMBH": "6101020011140202001", "XMMC": "高标准农田一期", "JSND": 2020})],
    )
    layers["STBHHX"] = write_layer(
        path, "STBHHX", [("HXMC", FieldType.String)], [(rect(0, 0, 50, 200), {"HXMC": "红线"})]
    )
    layers["YZGHQ"] = write_layer(path, "YZGHQ", [("MC", FieldType.String)], [(cell(3, 1), {"MC": "干旱区"})])
    layers["TRHJZL"] = write_layer(
        path,
        "TRHJZL",
        [("LB", FieldType.String)],
        [(rect(200, 0, 400, 100), {"LB": "严格管控类"}), (rect(0, 100, 600, 400), {"LB": "优先保护类"})],
    )
    layers["JCTB"] = write_layer(
        path,
        "JCTB",
        [("JCBH", FieldType.String), ("TBLX", FieldType.String), ("MJ", FieldType.Double)],
        [
            (rect(225, 225, 275, 275), {"JCBH": "J001", "TBLX": "20", "MJ": 2500.0}),
            (rect(25, 325, 75, 375), {"JCBH": "J002", "TBLX": "01", "MJ": 2500.0}),
        ],
    )
    layers["XZQ"] = write_layer(
        path,
        "XZQ",
        [("XZQDM", FieldType.String), ("XZQMC", FieldType.String)],
        [
            (rect(0, 0, 300, 400), {"XZQDM": T1, "XZQMC": "一号镇"}),
            (rect(300, 0, 600, 400), {"XZQDM": T2, "XZQMC": "二号镇"}),
        ],
    )
    layers["CJDCQ"] = write_layer(
        path,
        "CJDCQ",
        [("ZLDWDM", FieldType.String), ("ZLDWMC", FieldType.String)],
        [
            (rect(0, 0, 300, 400), {"ZLDWDM": T1 + "001", "ZLDWMC": "一村"}),
            (rect(300, 0, 600, 400), {"ZLDWDM": T2 + "001", "ZLDWMC": "二村"}),
        ],
    )
    return layers


def random_county(
    path: Path,
    nx: int = 14,
    ny: int = 10,
    seed: int = 7,
    noise: float = 1.0,
    overlaps: bool = False,
    outside: bool = False,
) -> dict[str, QgsVectorLayer]:
    """A jittered-grid county (nx × ny DLTB quads of ~80 m) with random attributes, PBF on 90 % of the
    farmland
    (boundaries moved by up to ``noise`` m) plus a few PBF on non-farmland, HSF rectangles, red line, soil,
    JCTB. ``overlaps``: HSF plots overlapping each other and PBF parcels overlapping their neighbours;
    ``outside``: HSF and PBF reaching past the county's edge (outside every DLTB patch)."""
    rng = random.Random(seed)
    size = 80.0
    verts = {}
    for i in range(nx + 1):
        for j in range(ny + 1):
            jx = rng.uniform(-0.3, 0.3) * size if 0 < i < nx else 0.0
            jy = rng.uniform(-0.3, 0.3) * size if 0 < j < ny else 0.0
            verts[(i, j)] = QgsPointXY(X0 + i * size + jx, Y0 + j * size + jy)
    classes = ["0103"] * 10 + ["0102"] * 2 + ["0201", "0301", "0301", "0702", "0702", "1006", "1003", "0404"]
    dltb, dltb1, pbf = [], [], []
    n = 0
    for j in range(ny):
        for i in range(nx):
            ring = [verts[(i, j)], verts[(i + 1, j)], verts[(i + 1, j + 1)], verts[(i, j + 1)], verts[(i, j)]]
            geom = QgsGeometry.fromPolygonXY([ring])
            dlbm = rng.choice(classes)
            farm = dlbm in ("0101", "0102", "0103")
            attrs = {
                "BSM": f"2023{n:06d}",
                "DLBM": dlbm,
                "ZZSXDM": rng.choice(["LS"] * 8 + ["FLS", "WG", "LYFL"]) if farm else "",
                "TBXHDM": "SHGD" if rng.random() < 0.04 else "",
                "GDPDJB": "5" if rng.random() < 0.05 else "2",
                "GDLX": "PD",
                "FRDBS": "1" if rng.random() < 0.03 else "0",
                "ZLDWDM": zl(0 if i < nx // 2 else 5),
                "QSDWDM": zl(0 if i < nx // 2 else 5),
                "SJNF": 2023,
            }
            dltb.append((geom, attrs))
            new = dict(attrs, BSM=f"2024{n:06d}", SJNF=2024)
            if farm and rng.random() < 0.06:
                new["DLBM"] = "0702"
                new["ZZSXDM"] = ""
            dltb1.append((geom, new))
            if (farm and rng.random() < 0.9) or (not farm and rng.random() < 0.05):
                g = noisy(geom, noise, seed=n) if noise > 0 and farm else geom
                pbf.append((g, {"BSM": f"P{n:05d}", "ZLDWDM": attrs["ZLDWDM"], "SJNF": 2023}))
            n += 1
    w, h = nx * size, ny * size
    if overlaps:  # parcels digitised twice, shifted: overlapping PBF of one department
        for k in range(0, len(pbf), max(1, len(pbf) // 6)):
            g = QgsGeometry(pbf[k][0])
            g.translate(23.0, 11.0)
            pbf.append((g, {"BSM": f"PO{k:04d}", "ZLDWDM": pbf[k][1]["ZLDWDM"], "SJNF": 2023}))
    if outside:
        edge = rect(w - 60, h * 0.4, w + 90, h * 0.4 + 70)
        pbf.append((edge, {"BSM": "POUT", "ZLDWDM": zl(5), "SJNF": 2023}))
    layers = {
        "DLTB": write_layer(path, "DLTB", DLTB_FIELDS, dltb),
        "DLTB_N1": write_layer(path, "DLTB_N1", DLTB_FIELDS, dltb1),
        "PBF": write_layer(
            path,
            "YJJBNTBHTB",
            [("BSM", FieldType.String), ("ZLDWDM", FieldType.String), ("SJNF", FieldType.Int)],
            pbf,
        ),
    }
    hsf = []
    extra = []
    if overlaps:  # plots of two projects on the same land
        extra += [(w * 0.2, h * 0.2, w * 0.45, h * 0.5), (w * 0.3, h * 0.3, w * 0.6, h * 0.55)]
    if outside:  # a project past the county edge
        extra += [(w - 120, h * 0.1, w + 150, h * 0.35)]
    for k, (x1, y1, x2, y2) in enumerate(extra):
        hsf.append((rect(x1, y1, x2, y2), {"XMBH": f"X{k:02d}", "XMMC": f"附加{k}", "JSND": 2021}))
    for k in range(5):
        x, y = rng.uniform(0, w - 300), rng.uniform(0, h - 250)
        hsf.append(
            (
                rect(x, y, x + rng.uniform(120, 300), y + rng.uniform(100, 250)),
                {"XMBH": f"61010200111402020{k:02d}", "XMMC": f"项目{k}", "JSND": 2020},
            )
        )
    layers["HSF"] = write_layer(
        path, "GBZNT", [("XMBH", FieldType.String), ("XMMC", FieldType.String), ("JSND", FieldType.Int)], hsf
    )
    layers["STBHHX"] = write_layer(
        path,
        "STBHHX",
        [("HXMC", FieldType.String)],
        [
            (rect(w * 0.1, h * 0.2, w * 0.3, h * 0.6), {"HXMC": "红线1"}),
            (rect(w * 0.25, h * 0.5, w * 0.4, h * 0.9), {"HXMC": "红线2"}),
        ],
    )
    layers["YZGHQ"] = write_layer(
        path, "YZGHQ", [("MC", FieldType.String)], [(rect(w * 0.6, 0, w, h * 0.3), {"MC": "旱"})]
    )
    layers["TRHJZL"] = write_layer(
        path,
        "TRHJZL",
        [("LB", FieldType.String)],
        [
            (rect(0, 0, w * 0.5, h * 0.5), {"LB": "严格管控类"}),
            (rect(w * 0.5, 0, w, h), {"LB": "安全利用类"}),
            (rect(w * 0.4, h * 0.4, w * 0.7, h * 0.7), {"LB": "严格管控类"}),
        ],
    )
    layers["JCTB"] = write_layer(
        path,
        "JCTB",
        [("JCBH", FieldType.String), ("TBLX", FieldType.String)],
        [
            (rect(w * 0.3, h * 0.3, w * 0.35, h * 0.36), {"JCBH": "J1", "TBLX": "20"}),
            (rect(w * 0.7, h * 0.6, w * 0.78, h * 0.7), {"JCBH": "J2", "TBLX": "YH"}),
            (rect(w * 0.1, h * 0.7, w * 0.2, h * 0.8), {"JCBH": "J3", "TBLX": "01"}),
        ],
    )
    return layers


# --- independent areas (shapely + pyproj, never the product's area code) ----------------------------------


def shape(geom: QgsGeometry):  # noqa: ANN201 - a shapely geometry
    import shapely

    return shapely.make_valid(shapely.from_wkb(bytes(geom.asWkb())))


def layer_shapes(layer: QgsVectorLayer, keep=None) -> list:  # noqa: ANN001
    """The layer's features as shapely geometries (``keep(feature)`` filters)."""
    return [shape(f.geometry()) for f in layer.getFeatures() if keep is None or keep(f)]


def geod_area(geoms, crs: str = "EPSG:4545", step: float = 2.0) -> float:  # noqa: ANN001
    """Ellipsoidal area (m²) on CGCS2000 (the GRS80 ellipsoid), computed with pyproj and shapely only.

    Each ring, its straight edges in ``crs`` cut every ``step`` m, is projected to a Lambert azimuthal
    equal-area projection of GRS80 (areas on the ellipsoid are kept) centred on the geometries and
    measured there with the shoelace formula (holes subtracted). pyproj's geodesic polygon area would sum
    terms of ~1e8 m² per edge, and its rounding on these small polygons is ~1e-8 of their area: as large
    as the differences the tests look for."""
    import warnings

    import numpy as np
    import shapely

    shapes = [g for g in (geoms if isinstance(geoms, (list, tuple)) else [geoms]) if g is not None]
    shapes = [g for g in shapes if not g.is_empty]
    if not shapes:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyproj

        x0, y0, x1, y1 = shapely.bounds(shapely.GeometryCollection(shapes))
        lon, lat = pyproj.Transformer.from_crs(crs, "EPSG:4490", always_xy=True).transform(
            (x0 + x1) / 2, (y0 + y1) / 2
        )
        equal_area = f"+proj=laea +lat_0={lat} +lon_0={lon} +ellps=GRS80 +units=m +no_defs"
        to_laea = pyproj.Transformer.from_crs(crs, equal_area, always_xy=True)

    def ring_area(ring) -> float:  # noqa: ANN001
        xy = shapely.get_coordinates(shapely.segmentize(ring, step))  # a ring alone: no validity repair
        x, y = to_laea.transform(xy[:, 0], xy[:, 1])
        return abs(float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))) / 2.0

    total = 0.0
    for g in shapes:
        g = shapely.union_all(shapely.get_parts(shapely.make_valid(g)))
        for p in shapely.get_parts(g):
            if p.geom_type == "Polygon":
                total += ring_area(p.exterior) - sum(ring_area(r) for r in p.interiors)
    return total
