"""三调 椭球面积 (TBMJ): the TD/T 1055 quadrangle-series ellipsoidal area of polygons (domain.md §5).

Method (the one of 三调 software, e.g. TDDC3D ``SphereAreaClass.GetSphereArea_1``):

1. ring vertices in Gauss-Krüger plane coordinates; every edge longer than ``densify_m`` (70 m) gets
   ⌊len/70⌋ evenly spaced points inserted; all points are rounded (half-up) to 0.0001 m;
2. every point is inverse-projected to (B, L) on the CRS's ellipsoid (CGCS2000 by default);
3. each edge i→i+1 adds ``S = 2 b² ΔL [A sin(ΔB/2) cos Bm − B sin(3ΔB/2) cos 3Bm + C … − D … + E …]``
   with ΔL = (L_i + L_{i+1})/2 − L0, ΔB = B_{i+1} − B_i, Bm = (B_i + B_{i+1})/2;
4. area = Σ |outer ring sums| − Σ |hole sums| (orientation-independent), rounded half-up to 0.01 m².

Implementation notes:

* ``sin(kΔB/2)·cos(kBm) = (sin kB₂ − sin kB₁)/2``, so the edge term is exactly
  ``b²·ΔL·(G(B₂) − G(B₁))`` with ``G(B) = A sin B − B sin 3B + C sin 5B − D sin 7B + E sin 9B``.
  G is evaluated once per point, and the ring sum is a trapezoid sum in (L, G), done with numpy over all
  points of a batch of polygons. L is taken relative to the ring's first point: any fixed L0 gives the
  same sum, and a near one keeps floating-point cancellation negligible.
* The Gauss-Krüger inverse is Krüger's n-series to n⁶ (the algorithm of PROJ's ``tmerc``/``etmerc``),
  accurate to far below 1e-9° within and well beyond a 6° zone.
* Vertices are read from ``QgsGeometry.asWkb()``; only the ring structure is parsed in Python.
* Invalid geometries (self-intersections, holes outside the shell, wrong orientation) are not
  repaired: the ring sums are computed as they are, like 三调 software does.

Projection detection: from the CRS when it is a transverse Mercator CRS (the CGCS2000 / Xian-80 /
Beijing-54 Gauss-Krüger families of §5.4, UTM, any ``+proj=tmerc``), each with its own ellipsoid; a
geographic CGCS2000 CRS (EPSG:4490) uses lon/lat directly; any other valid CRS is transformed to
EPSG:4490 first. With no (valid) CRS the zone comes from the coordinates: an 8-digit easting carries
the zone number (zone ≥ 24: 3° zone, CM = 3·zone; zone 13–23: 6° zone, CM = 6·zone − 3) and CGCS2000
is assumed.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCoordinateTransformContext,
    QgsCsException,
    QgsGeometry,
    QgsUnitTypes,
    QgsWkbTypes,
)

from huijiao_plugin.compat import wkb_display_string
from huijiao_plugin.core.units import round_half_up_array

LOG = logging.getLogger(__name__)

DENSIFY_M = 70.0
VERTEX_GRID_M = 1e-4
BATCH_SIZE = 2048

# QgsWkbTypes flat type numbers (ISO WKB) handled here
_WKB_POLYGON = 3
_WKB_MULTIPOLYGON = 6
_WKB_CURVEPOLYGON = 10
_WKB_MULTISURFACE = 12
_WKB_TRIANGLE = 17
_WKB_25D_FLAG = 0x80000000
_POLYGON_TYPES = (_WKB_POLYGON, _WKB_TRIANGLE)
_CURVED_TYPES = (_WKB_CURVEPOLYGON, _WKB_MULTISURFACE)

_UINT = struct.Struct("<I")


class ZoneDetectionError(ValueError):
    """The Gauss-Krüger zone of the coordinates cannot be determined (no CRS and no zone prefix)."""


# ----------------------------------------------------------------------------------------------------
# ellipsoid and series constants


@dataclass(frozen=True)
class Ellipsoid:
    """A reference ellipsoid given by semi-major axis ``a`` and flattening ``f``."""

    a: float
    f: float
    name: str = ""

    @property
    def b(self) -> float:
        return self.a * (1.0 - self.f)

    @property
    def e2(self) -> float:
        return self.f * (2.0 - self.f)

    def area_constants(self) -> tuple[float, float, float, float, float]:
        """The series constants A…E of the quadrangle formula (domain.md §5.1), from e²."""
        return area_constants(self.e2)


def area_constants(e2: float) -> tuple[float, float, float, float, float]:
    """The constants A…E of ``S = 2b²ΔL[A sin(ΔB/2)cos Bm − B … + C … − D … + E …]`` from e²."""
    e4, e6, e8 = e2 * e2, e2**3, e2**4
    a_ = 1.0 + 3.0 / 6.0 * e2 + 30.0 / 80.0 * e4 + 35.0 / 112.0 * e6 + 630.0 / 2304.0 * e8
    b_ = 1.0 / 6.0 * e2 + 15.0 / 80.0 * e4 + 21.0 / 112.0 * e6 + 420.0 / 2304.0 * e8
    c_ = 3.0 / 80.0 * e4 + 7.0 / 112.0 * e6 + 180.0 / 2304.0 * e8
    d_ = 1.0 / 112.0 * e6 + 45.0 / 2304.0 * e8
    e_ = 5.0 / 2304.0 * e8
    return a_, b_, c_, d_, e_


CGCS2000 = Ellipsoid(6378137.0, 1.0 / 298.257222101, "CGCS2000")
GRS80 = Ellipsoid(6378137.0, 1.0 / 298.257222101, "GRS80")
WGS84 = Ellipsoid(6378137.0, 1.0 / 298.257223563, "WGS84")
XIAN80 = Ellipsoid(6378140.0, 1.0 / 298.257, "IAU76")  # 西安80 (IAG-75 / IAU76)
BEIJING54 = Ellipsoid(6378245.0, 1.0 / 298.3, "Krassowsky")  # 北京54

_PROJ_ELLIPSOIDS = {
    "GRS80": GRS80,
    "WGS84": WGS84,
    "IAU76": XIAN80,
    "krass": BEIJING54,
    "GRS67": Ellipsoid(6378160.0, 1.0 / 298.247167427, "GRS67"),
    "intl": Ellipsoid(6378388.0, 1.0 / 297.0, "International 1924"),
}
_PROJ_DATUM_ELLIPSOIDS = {
    "WGS84": WGS84,
    "NAD83": GRS80,
    "potsdam": Ellipsoid(6377397.155, 1.0 / 299.1528128),
}


# ----------------------------------------------------------------------------------------------------
# projection description


@dataclass(frozen=True)
class GaussKruger:
    """A transverse Mercator (Gauss-Krüger) projection with origin latitude 0."""

    lon0: float  # central meridian, degrees
    x0: float = 500000.0  # false easting
    y0: float = 0.0  # false northing
    k0: float = 1.0
    ellipsoid: Ellipsoid = CGCS2000


def _gk_3deg_prefixed(zone: int, ell: Ellipsoid) -> GaussKruger:
    return GaussKruger(3.0 * zone, zone * 1e6 + 500000.0, ellipsoid=ell)


def _gk_6deg_prefixed(zone: int, ell: Ellipsoid) -> GaussKruger:
    return GaussKruger(6.0 * zone - 3.0, zone * 1e6 + 500000.0, ellipsoid=ell)


def gauss_kruger_for_epsg(code: int) -> GaussKruger | None:
    """The projection of a known Chinese Gauss-Krüger EPSG code (domain.md §5.4), else None.

    CGCS2000: 4491–4501 6° zones 13–23 with prefix, 4502–4512 6° CM 75–135 without, 4513–4533 3° zones
    25–45 with prefix, 4534–4554 3° CM 75–135 without. Xian-80: 2327–2337 / 2338–2348 (6°),
    2349–2369 / 2370–2390 (3°). Beijing-54: 2401–2421 / 2422–2442 (3°), 21413–21423 / 21453–21463 (6°).
    """
    families = (
        (4491, 4501, "6p", 13, CGCS2000),
        (4502, 4512, "6n", 75, CGCS2000),
        (4513, 4533, "3p", 25, CGCS2000),
        (4534, 4554, "3n", 75, CGCS2000),
        (2327, 2337, "6p", 13, XIAN80),
        (2338, 2348, "6n", 75, XIAN80),
        (2349, 2369, "3p", 25, XIAN80),
        (2370, 2390, "3n", 75, XIAN80),
        (2401, 2421, "3p", 25, BEIJING54),
        (2422, 2442, "3n", 75, BEIJING54),
        (21413, 21423, "6p", 13, BEIJING54),
        (21453, 21463, "6n", 75, BEIJING54),
    )
    for first, last, kind, start, ell in families:
        if first <= code <= last:
            i = code - first
            if kind == "3p":
                return _gk_3deg_prefixed(start + i, ell)
            if kind == "6p":
                return _gk_6deg_prefixed(start + i, ell)
            step = 3.0 if kind == "3n" else 6.0
            return GaussKruger(start + step * i, 500000.0, ellipsoid=ell)
    return None


_PROJ_TOKEN = re.compile(r"\+(\w+)(?:=(\S+))?")


def _parse_proj(proj: str) -> dict[str, str]:
    return {m.group(1): (m.group(2) or "") for m in _PROJ_TOKEN.finditer(proj)}


def _ellipsoid_from_proj(params: dict[str, str]) -> Ellipsoid | None:
    if "a" in params or "R" in params:
        a = float(params.get("a") or params["R"])
        if "rf" in params:
            return Ellipsoid(a, 1.0 / float(params["rf"]))
        if "f" in params:
            return Ellipsoid(a, float(params["f"]))
        if "b" in params:
            return Ellipsoid(a, 1.0 - float(params["b"]) / a)
        if "R" in params:
            return Ellipsoid(a, 0.0)
    if params.get("ellps") in _PROJ_ELLIPSOIDS:
        return _PROJ_ELLIPSOIDS[params["ellps"]]
    if params.get("datum") in _PROJ_DATUM_ELLIPSOIDS:
        return _PROJ_DATUM_ELLIPSOIDS[params["datum"]]
    return None


def gauss_kruger_from_proj(proj: str) -> GaussKruger | None:
    """The projection of a PROJ string if it is a metre-based transverse Mercator with origin latitude 0."""
    params = _parse_proj(proj)
    name = params.get("proj")
    if name not in ("tmerc", "etmerc", "utm"):
        return None
    if params.get("units", "m") != "m" or float(params.get("to_meter", "1") or 1) != 1.0:
        return None
    if "axis" in params and params["axis"] not in ("enu", "neu"):
        return None
    ell = _ellipsoid_from_proj(params)
    if ell is None or ell.f <= 0.0:
        return None
    if name == "utm":
        zone = int(params.get("zone", "0") or 0)
        if not 1 <= zone <= 60:
            return None
        south = "south" in params
        return GaussKruger(6.0 * zone - 183.0, 500000.0, 10000000.0 if south else 0.0, 0.9996, ell)
    if float(params.get("lat_0", "0") or 0) != 0.0:
        return None
    return GaussKruger(
        float(params.get("lon_0", "0") or 0),
        float(params.get("x_0", "0") or 0),
        float(params.get("y_0", "0") or 0),
        float(params.get("k_0", params.get("k", "1")) or 1),
        ell,
    )


# ----------------------------------------------------------------------------------------------------
# Gauss-Krüger inverse (Krüger n-series, 6th order)


@lru_cache(maxsize=16)
def _kruger_constants(a: float, f: float) -> tuple[float, tuple[float, ...], tuple[float, ...]]:
    n = f / (2.0 - f)
    n2, n3 = n * n, n**3
    n4, n5, n6 = n**4, n**5, n**6
    rect = a / (1.0 + n) * (1.0 + n2 / 4.0 + n4 / 64.0 + n6 / 256.0)
    beta = (
        n / 2.0
        - 2.0 / 3.0 * n2
        + 37.0 / 96.0 * n3
        - 1.0 / 360.0 * n4
        - 81.0 / 512.0 * n5
        + 96199.0 / 604800.0 * n6,
        n2 / 48.0 + n3 / 15.0 - 437.0 / 1440.0 * n4 + 46.0 / 105.0 * n5 - 1118711.0 / 3870720.0 * n6,
        17.0 / 480.0 * n3 - 37.0 / 840.0 * n4 - 209.0 / 4480.0 * n5 + 5569.0 / 90720.0 * n6,
        4397.0 / 161280.0 * n4 - 11.0 / 504.0 * n5 - 830251.0 / 7257600.0 * n6,
        4583.0 / 161280.0 * n5 - 108847.0 / 3991680.0 * n6,
        20648693.0 / 638668800.0 * n6,
    )
    delta = (
        2.0 * n - 2.0 / 3.0 * n2 - 2.0 * n3 + 116.0 / 45.0 * n4 + 26.0 / 45.0 * n5 - 2854.0 / 675.0 * n6,
        7.0 / 3.0 * n2 - 8.0 / 5.0 * n3 - 227.0 / 45.0 * n4 + 2704.0 / 315.0 * n5 + 2323.0 / 945.0 * n6,
        56.0 / 15.0 * n3 - 136.0 / 35.0 * n4 - 1262.0 / 105.0 * n5 + 73814.0 / 2835.0 * n6,
        4279.0 / 630.0 * n4 - 332.0 / 35.0 * n5 - 399572.0 / 14175.0 * n6,
        4174.0 / 315.0 * n5 - 144838.0 / 6237.0 * n6,
        601676.0 / 22275.0 * n6,
    )
    return rect, beta, delta


def gk_inverse_sin_lat(
    easting: np.ndarray,
    northing: np.ndarray,
    proj: GaussKruger,
    x0: np.ndarray | float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse Gauss-Krüger: returns (sin B, L − L0 in radians) for arrays of plane coordinates.

    ``x0`` overrides the projection's false easting (per point when an array is given). Series terms
    below 1e-16 are dropped (they move a point by less than a nanometre).
    """
    rect, beta_all, delta_all = _kruger_constants(proj.ellipsoid.a, proj.ellipsoid.f)
    beta = [c for c in beta_all if abs(c) > 1e-16]
    delta = [c for c in delta_all if abs(c) > 1e-16]
    scale = 1.0 / (proj.k0 * rect)
    xi = (northing - proj.y0) * scale
    eta = (easting - (proj.x0 if x0 is None else x0)) * scale
    # ζ' = ζ − Σ β_j sin(2jζ), ζ = ξ + iη: Clenshaw summation, complex numbers as (real, imaginary) pairs
    s2 = np.sin(2.0 * xi)
    c2 = np.cos(2.0 * xi)
    ex = np.exp(2.0 * eta)
    inv = 1.0 / ex
    sh2 = 0.5 * (ex - inv)
    ch2 = 0.5 * (ex + inv)
    wr = 2.0 * c2 * ch2  # w = 2 cos 2ζ
    wi = -2.0 * s2 * sh2
    b1r = np.full(xi.shape, beta[-1])
    b1i = np.zeros(xi.shape)
    b2r = np.zeros(xi.shape)
    b2i = np.zeros(xi.shape)
    for coef in beta[-2::-1]:
        nr = wr * b1r - wi * b1i - b2r + coef
        ni = wr * b1i + wi * b1r - b2i
        b2r, b2i = b1r, b1i
        b1r, b1i = nr, ni
    sr = s2 * ch2  # sin 2ζ
    si = c2 * sh2
    xip = xi - (b1r * sr - b1i * si)
    etap = eta - (b1r * si + b1i * sr)
    ex = np.exp(etap)
    inv = 1.0 / ex
    sh = 0.5 * (ex - inv)
    ch = 0.5 * (ex + inv)
    lam = np.arctan2(sh, np.cos(xip))
    # conformal latitude χ, then B = χ + Δ with Δ = Σ δ_j sin(2jχ) (|Δ| < 0.004: short series for sin/cos Δ)
    sin_chi = np.sin(xip) / ch
    sin2 = sin_chi * sin_chi
    cos_chi = np.sqrt(np.maximum(1.0 - sin2, 0.0))
    w2 = 2.0 - 4.0 * sin2  # 2 cos 2χ
    r1 = np.full(xi.shape, delta[-1])
    r2: np.ndarray | float = 0.0
    for coef in delta[-2::-1]:
        r1, r2 = w2 * r1 - r2 + coef, r1
    d = r1 * (2.0 * sin_chi * cos_chi)
    dd = d * d
    cos_d = 1.0 - dd * (0.5 - dd / 24.0)
    sin_d = d * (1.0 - dd * (1.0 / 6.0 - dd / 120.0))
    return sin_chi * cos_d + cos_chi * sin_d, lam


def gk_inverse(easting: np.ndarray, northing: np.ndarray, proj: GaussKruger) -> tuple[np.ndarray, np.ndarray]:
    """Inverse Gauss-Krüger to geodetic (longitude, latitude) in degrees."""
    easting = np.asarray(easting, dtype=float)
    northing = np.asarray(northing, dtype=float)
    sin_lat, lam = gk_inverse_sin_lat(easting, northing, proj)
    return np.degrees(lam) + proj.lon0, np.degrees(np.arcsin(np.clip(sin_lat, -1.0, 1.0)))


# ----------------------------------------------------------------------------------------------------
# vertex extraction from WKB


class _Rings:
    """Vertices of a batch of polygons: ``xy`` (n, 2), per ring its first vertex, size, geometry, role."""

    __slots__ = ("xy", "start", "size", "geom", "outer")

    def __init__(
        self, xy: np.ndarray, start: np.ndarray, size: np.ndarray, geom: np.ndarray, outer: np.ndarray
    ) -> None:
        self.xy = xy
        self.start = start
        self.size = size
        self.geom = geom
        self.outer = outer


def _wkb_bytes(geometry: QgsGeometry) -> bytes:
    return bytes(geometry.asWkb())


def _segmentized_wkb(wkb: bytes) -> bytes:
    geometry = QgsGeometry()
    geometry.fromWkb(wkb)
    return bytes(QgsGeometry(geometry.constGet().segmentize()).asWkb())


# little-endian Polygon (type 3) with exactly one ring: the header of most 三调 图斑
_SIMPLE_HEADER = np.frombuffer(bytes((1, 3, 0, 0, 0, 1, 0, 0, 0)), dtype=np.uint8)
_SIMPLE_HEADER_SIZE = 13  # byte order, type, ring count, point count


def _type_name(wtype: int) -> str:
    return wkb_display_string(wtype) or f"WKB type {wtype}"


def _extract_rings(wkbs: Sequence[bytes]) -> tuple[_Rings, list[int]]:
    """Ring vertices of polygon/multipolygon WKBs (little-endian, ISO, 2.5D or Z/M types).

    Single-ring 2D polygons, the common case, are parsed with numpy over the joined buffer; the others ring
    by ring in Python (headers only). Returns the rings and the indices of curved geometries, which the
    caller segmentizes. Raises ValueError for other geometry types.
    """
    count = len(wkbs)
    lengths = np.fromiter(map(len, wkbs), dtype=np.int64, count=count)
    joined = b"".join(wkbs)
    buf = np.frombuffer(joined, dtype=np.uint8)
    offsets = np.cumsum(lengths) - lengths
    candidates = np.nonzero(lengths >= _SIMPLE_HEADER_SIZE)[0]
    head = offsets[candidates]
    header = buf[head[:, None] + np.arange(9)]
    npts = (
        buf[head + 9].astype(np.int64)
        | (buf[head + 10].astype(np.int64) << 8)
        | (buf[head + 11].astype(np.int64) << 16)
        | (buf[head + 12].astype(np.int64) << 24)
    )
    simple = (
        (header == _SIMPLE_HEADER).all(axis=1)
        & (lengths[candidates] == _SIMPLE_HEADER_SIZE + 16 * npts)
        & (npts > 0)
    )
    fast = candidates[simple]
    fast_size = npts[simple]
    # coordinates of the simple polygons: every byte of their point arrays, in order
    keep = np.zeros(buf.size + 1, dtype=np.int8)
    keep[offsets[fast] + _SIMPLE_HEADER_SIZE] = 1
    keep[offsets[fast] + lengths[fast]] = -1
    mask = np.cumsum(keep[:-1], dtype=np.int8).astype(bool)
    fast_xy = buf[mask].view("<f8").reshape(-1, 2)

    others = np.ones(count, dtype=bool)
    others[fast] = False
    others &= lengths > 0
    slow = _parse_rings_slowly(wkbs, np.nonzero(others)[0].tolist())
    slow_xy, slow_size, slow_geom, slow_outer, curved = slow

    xy = np.concatenate((fast_xy, slow_xy)) if slow_size.size else fast_xy
    size = np.concatenate((fast_size, slow_size))
    geom = np.concatenate((fast, slow_geom))
    outer = np.concatenate((np.ones(fast.size, dtype=bool), slow_outer))
    start = (np.cumsum(size) - size).astype(np.int64)
    return _Rings(xy, start, size, geom, outer), curved


def _parse_rings_slowly(
    wkbs: Sequence[bytes], indices: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Rings of the given WKBs, parsed header by header: (xy, ring sizes, geometry, is-outer, curved)."""
    chunks: list[bytes] = []
    ring_size: list[int] = []
    ring_geom: list[int] = []
    ring_outer: list[bool] = []
    ring_dim: list[int] = []
    curved: list[int] = []
    unpack_uint = _UINT.unpack_from

    for gi in indices:
        wkb = wkbs[gi]
        if len(wkb) < 5:
            continue
        if wkb[0] != 1:
            raise ValueError(f"geometry {gi}: big-endian WKB is not supported")
        (wtype,) = unpack_uint(wkb, 1)
        flat = wtype & 0x7FFFFFFF
        base, dimflag = flat % 1000, flat // 1000
        if base in _CURVED_TYPES:
            curved.append(gi)
            continue
        if base in _POLYGON_TYPES:
            multi = False
            pos, parts = 5, 1
        elif base == _WKB_MULTIPOLYGON:
            multi = True
            (parts,) = unpack_uint(wkb, 5)
            pos = 9
        else:
            raise ValueError(
                f"geometry {gi} is not a polygon ({_type_name(wtype)}); "
                "the ellipsoidal area is defined for polygons only"
            )
        for _ in range(parts):
            ptype, pdim = wtype, dimflag
            if multi:
                if wkb[pos] != 1:
                    raise ValueError(f"geometry {gi}: big-endian WKB is not supported")
                (ptype,) = unpack_uint(wkb, pos + 1)
                pflat = ptype & 0x7FFFFFFF
                pdim = pflat // 1000
                if pflat % 1000 not in _POLYGON_TYPES:
                    raise ValueError(
                        f"geometry {gi}: a multipolygon part is not a polygon ({_type_name(ptype)})"
                    )
                pos += 5
            ndim = 2 + (pdim in (1, 3) or bool(ptype & _WKB_25D_FLAG)) + (pdim in (2, 3))
            (nrings,) = unpack_uint(wkb, pos)
            pos += 4
            for r in range(nrings):
                (npts,) = unpack_uint(wkb, pos)
                pos += 4
                nbytes = 8 * ndim * npts
                if npts:
                    chunks.append(wkb[pos : pos + nbytes])
                    ring_size.append(npts)
                    ring_geom.append(gi)
                    ring_outer.append(r == 0)
                    ring_dim.append(ndim)
                pos += nbytes

    size = np.asarray(ring_size, dtype=np.int64)
    geom = np.asarray(ring_geom, dtype=np.int64)
    outer = np.asarray(ring_outer, dtype=bool)
    if not ring_size:
        return np.zeros((0, 2)), size, geom, outer, curved
    data = np.frombuffer(b"".join(chunks), dtype="<f8")
    dims = np.asarray(ring_dim, dtype=np.int64)
    if (dims == 2).all():
        return data.reshape(-1, 2), size, geom, outer, curved
    # Z and/or M: index x of every vertex in the joined buffer
    ring_word = np.cumsum(size * dims) - size * dims
    vstart = np.cumsum(size) - size
    local = np.arange(int(size.sum()), dtype=np.int64) - np.repeat(vstart, size)
    word = np.repeat(ring_word, size) + local * np.repeat(dims, size)
    return np.stack((data[word], data[word + 1]), axis=1), size, geom, outer, curved


# ----------------------------------------------------------------------------------------------------
# densification and the edge sum


def _edges(rings: _Rings) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Drop the closing vertex of closed rings and rings with < 3 distinct vertices.

    Returns (point index per edge, kept ring indices, first edge of each kept ring, edges per kept ring).

    Edge i of a ring runs from its point i to point (i+1) mod size (the implicit closing edge).
    """
    size = rings.size.copy()
    start = rings.start
    last = start + size - 1
    xy = rings.xy
    closed = (size > 1) & (xy[last, 0] == xy[start, 0]) & (xy[last, 1] == xy[start, 1])
    size[closed] -= 1
    keep = size >= 3
    ring_ids = np.nonzero(keep)[0]
    size = size[keep]
    start = start[keep]
    total = int(size.sum())
    new_start = np.concatenate(([0], np.cumsum(size)[:-1])).astype(np.int64)
    local = np.arange(total, dtype=np.int64) - np.repeat(new_start, size)
    point = np.repeat(start, size) + local
    return point, ring_ids, new_start, size


def _densify(
    px: np.ndarray,
    py: np.ndarray,
    qx: np.ndarray,
    qy: np.ndarray,
    count: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points of edges p→q with ``count`` evenly spaced points inserted: start point, then the inserted.

    Returns (x, y, edge index) of all resulting points in edge order.
    """
    reps = count + 1
    edge = np.repeat(np.arange(px.size, dtype=np.int64), reps)
    first = np.concatenate(([0], np.cumsum(reps)[:-1]))
    j = np.arange(edge.size, dtype=np.int64) - np.repeat(first, reps)
    t = j / np.repeat(reps, reps).astype(float)
    ex, ey = px[edge], py[edge]
    return ex + (qx[edge] - ex) * t, ey + (qy[edge] - ey) * t, edge


def _g_of_sin(sin_lat: np.ndarray, consts: tuple[float, float, float, float, float]) -> np.ndarray:
    """G(B) = A sin B − B sin 3B + C sin 5B − D sin 7B + E sin 9B, from sin B (recurrence in sin kB)."""
    ca, cb, cc, cd, ce = consts
    s1 = sin_lat
    w = 2.0 - 4.0 * s1 * s1  # 2 cos 2B
    s3 = w * s1 + s1  # sin 3B = 2cos2B sin B − sin(−B)
    s5 = w * s3 - s1
    s7 = w * s5 - s3
    s9 = w * s7 - s5
    return ca * s1 - cb * s3 + cc * s5 - cd * s7 + ce * s9


def _ring_sums(lam: np.ndarray, g: np.ndarray, ring_start: np.ndarray, ring_size: np.ndarray) -> np.ndarray:
    """Σ over each ring's edges of (λ_i + λ_next)/2 · (G_next − G_i).

    Points are in ring order, rings contiguous; the last point of a ring connects to its first.
    """
    n = lam.size
    nxt = np.arange(1, n + 1, dtype=np.int64)
    nxt[ring_start + ring_size - 1] = ring_start
    ref = np.repeat(lam[ring_start], ring_size)
    lam_rel = lam - ref
    terms = (lam_rel + lam_rel[nxt]) * (g[nxt] - g)
    return 0.5 * np.add.reduceat(terms, ring_start)


def _round2(values: np.ndarray) -> np.ndarray:
    return round_half_up_array(values, 2)


# ----------------------------------------------------------------------------------------------------
# public API

_MODE_GK = "gk"
_MODE_AUTO = "auto"
_MODE_GEOGRAPHIC = "geographic"
_MODE_TRANSFORM = "transform"

EPSG_CGCS2000_GEOGRAPHIC = "EPSG:4490"


class EllipsoidalAreaCalculator:
    """Ellipsoidal (三调 TBMJ) area of polygons in one CRS.

    ``densify_m`` ≤ 0 disables densification (the plain edge sum). ``transform_context`` is used only for CRSs
    that are neither Gauss-Krüger nor CGCS2000 geographic (they are transformed to EPSG:4490 first).
    ``vertex_grid_m`` is the grid plane coordinates are rounded to (0.0001 m as in 三调 software; ≤ 0: none).
    """

    def __init__(
        self,
        crs: QgsCoordinateReferenceSystem | None,
        densify_m: float = DENSIFY_M,
        transform_context: QgsCoordinateTransformContext | None = None,
        vertex_grid_m: float = VERTEX_GRID_M,
    ) -> None:
        self.densify_m = float(densify_m) if densify_m and densify_m > 0 else 0.0
        self._grid_inv = 1.0 / vertex_grid_m if vertex_grid_m and vertex_grid_m > 0 else 0.0
        self.crs = crs if crs is not None else QgsCoordinateReferenceSystem()
        self.projection: GaussKruger | None = None
        self.ellipsoid: Ellipsoid = CGCS2000
        self._transform: QgsCoordinateTransform | None = None
        self._fallback: EllipsoidalAreaCalculator | None = None
        self.mode = self._detect(transform_context)
        if self.projection is not None:
            self.ellipsoid = self.projection.ellipsoid
        self._consts = self.ellipsoid.area_constants()
        self._b2 = self.ellipsoid.b**2

    # -- detection -------------------------------------------------------------------------------------------

    def _detect(self, transform_context: QgsCoordinateTransformContext | None) -> str:
        crs = self.crs
        if not crs.isValid():
            return _MODE_AUTO
        authid = crs.authid().upper()
        if authid.startswith("EPSG:") and authid[5:].isdigit():
            gk = gauss_kruger_for_epsg(int(authid[5:]))
            if gk is not None:
                self.projection = gk
                return _MODE_GK
        if authid == EPSG_CGCS2000_GEOGRAPHIC:
            return _MODE_GEOGRAPHIC
        proj = crs.toProj()
        if not crs.isGeographic() and crs.mapUnits() == QgsUnitTypes.DistanceUnit.DistanceMeters:
            gk = gauss_kruger_from_proj(proj)
            if gk is not None:
                self.projection = gk
                return _MODE_GK
        params = _parse_proj(proj)
        if (
            crs.isGeographic()
            and params.get("proj") in ("longlat", "latlong")
            and params.get("ellps") == "GRS80"
            and "towgs84" not in params
            and "pm" not in params
        ):
            return _MODE_GEOGRAPHIC  # CGCS2000 geographic under another code
        target = QgsCoordinateReferenceSystem(EPSG_CGCS2000_GEOGRAPHIC)
        self._transform = QgsCoordinateTransform(
            crs, target, transform_context or QgsCoordinateTransformContext()
        )
        return _MODE_TRANSFORM

    def describe(self) -> str:
        """A one-line description of how areas are computed (for logs and reports)."""
        if self.mode == _MODE_GK and self.projection is not None:
            p = self.projection
            ellipsoid = p.ellipsoid.name or f"a={p.ellipsoid.a}"
            return f"Gauss-Krüger CM {p.lon0:g}°E, false easting {p.x0:.0f}, ellipsoid {ellipsoid}"
        if self.mode == _MODE_GEOGRAPHIC:
            return "CGCS2000 geographic coordinates"
        if self.mode == _MODE_TRANSFORM:
            return f"transformed from {self.crs.authid() or 'custom CRS'} to {EPSG_CGCS2000_GEOGRAPHIC}"
        return "Gauss-Krüger zone from 8-digit eastings (no CRS), CGCS2000"

    # -- public ----------------------------------------------------------------------------------------------

    def area(self, geometry: QgsGeometry) -> float:
        """Ellipsoidal area in m², rounded half-up to 0.01; holes subtracted, multipolygon parts summed."""
        return self.areas((geometry,))[0]

    def areas(self, geometries: Iterable[QgsGeometry]) -> list[float]:
        """Areas of many geometries, computed in vectorised batches; same values as ``area()`` one by one."""
        out: list[float] = []
        batch: list[QgsGeometry] = []
        for geometry in geometries:
            batch.append(geometry)
            if len(batch) >= BATCH_SIZE:
                out.extend(self.raw_areas(batch).tolist())
                batch = []
        if batch:
            out.extend(self.raw_areas(batch).tolist())
        return out

    def raw_areas(self, geometries: Sequence[QgsGeometry]) -> np.ndarray:
        """Rounded areas (m², 0.01) of one batch as a numpy array."""
        if self.mode == _MODE_TRANSFORM and self.crs.isGeographic() and _outside_lon_lat(geometries):
            return self._projected_fallback().raw_areas(geometries)
        if self._transform is not None:
            wkbs = [self._transformed_wkb(g, i) for i, g in enumerate(geometries)]
        else:
            wkbs = [b"" if g is None else bytes(g.asWkb()) for g in geometries]
        return _round2(self.unrounded_areas_wkb(wkbs))

    def unrounded_areas_wkb(self, wkbs: Sequence[bytes]) -> np.ndarray:
        """Unrounded areas (m²) of polygon WKBs in this calculator's CRS (after the transform, if any)."""
        rings, curved = _extract_rings(wkbs)
        if curved:
            wkbs = list(wkbs)
            for i in curved:
                wkbs[i] = _segmentized_wkb(wkbs[i])
            rings, curved = _extract_rings(wkbs)
        result = np.zeros(len(wkbs))
        if rings.size.size == 0:
            return result
        if (
            self.mode == _MODE_GEOGRAPHIC
            and (np.abs(rings.xy[:, 0]) > 360.0).any() | (np.abs(rings.xy[:, 1]) > 90.0).any()
        ):
            return self._projected_fallback().unrounded_areas_wkb(wkbs)
        point, ring_ids, dstart, dsize = _edges(rings)
        if point.size == 0:
            return result
        xy = rings.xy
        nxt = np.arange(1, point.size + 1, dtype=np.int64)
        nxt[dstart + dsize - 1] = dstart
        px, py = xy[point, 0], xy[point, 1]
        qx, qy = px[nxt], py[nxt]
        geographic = self.mode in (_MODE_GEOGRAPHIC, _MODE_TRANSFORM)
        if geographic:
            count = self._densify_count_geographic(px, py, qx, qy)
        else:
            count = self._densify_count_plane(px, py, qx, qy)
        if count is not None:
            x, y, _edge = _densify(px, py, qx, qy, count)
            ring_points = np.add.reduceat(count + 1, dstart)
        else:
            x, y = px, py
            ring_points = dsize
        rstart = np.concatenate(([0], np.cumsum(ring_points)[:-1])).astype(np.int64)
        if geographic:
            lam = np.radians(x)
            sin_lat = np.sin(np.radians(y))
        else:
            # 三调 software rounds the plane coordinates to 0.0001 m (half-up) before the inverse projection
            if self._grid_inv:
                x = np.floor(x * self._grid_inv + 0.5) / self._grid_inv
                y = np.floor(y * self._grid_inv + 0.5) / self._grid_inv
            sin_lat, lam = self._inverse(x, y)
        g = _g_of_sin(sin_lat, self._consts)
        sums = np.abs(_ring_sums(lam, g, rstart, ring_points)) * self._b2
        signed = np.where(rings.outer[ring_ids], sums, -sums)
        result += np.bincount(rings.geom[ring_ids], weights=signed, minlength=len(wkbs))
        return result

    # -- internals -------------------------------------------------------------------------------------------

    def _projected_fallback(self) -> EllipsoidalAreaCalculator:
        """Projected coordinates under a geographic CRS (e.g. a file without CRS that QGIS opened as
        EPSG:4326): treated as Gauss-Krüger coordinates of unknown zone, like 三调 software does."""
        LOG.warning("coordinates outside the longitude/latitude range of %s", self.crs.authid())
        if self._fallback is None:
            self._fallback = EllipsoidalAreaCalculator(None, self.densify_m or -1.0)
        return self._fallback

    def _transformed_wkb(self, geometry: QgsGeometry, index: int) -> bytes:
        if geometry is None or geometry.isNull():
            return b""
        base = QgsWkbTypes.flatType(geometry.wkbType())
        if base in (QgsWkbTypes.Type.CurvePolygon, QgsWkbTypes.Type.MultiSurface):
            g = QgsGeometry(geometry.constGet().segmentize())
        elif base in (QgsWkbTypes.Type.Polygon, QgsWkbTypes.Type.MultiPolygon, QgsWkbTypes.Type.Triangle):
            g = QgsGeometry(geometry)
        else:
            raise ValueError(
                f"geometry {index} is not a polygon ({wkb_display_string(geometry.wkbType())}); "
                "the ellipsoidal area is defined for polygons only"
            )
        try:
            g.transform(self._transform)
        except QgsCsException as error:
            raise ValueError(f"geometry {index} cannot be transformed to EPSG:4490: {error}") from error
        return _wkb_bytes(g)

    def _densify_count_plane(
        self, px: np.ndarray, py: np.ndarray, qx: np.ndarray, qy: np.ndarray
    ) -> np.ndarray | None:
        if self.densify_m <= 0.0:
            return None
        dx = qx - px
        dy = qy - py
        length2 = dx * dx + dy * dy
        long_edges = np.nonzero(length2 > self.densify_m * self.densify_m)[0]
        if long_edges.size == 0:
            return None
        count = np.zeros(px.size, dtype=np.int64)
        count[long_edges] = np.floor(np.sqrt(length2[long_edges]) / self.densify_m).astype(np.int64)
        return count

    def _densify_count_geographic(
        self, px: np.ndarray, py: np.ndarray, qx: np.ndarray, qy: np.ndarray
    ) -> np.ndarray | None:
        """Edge lengths in metres from the local radii of curvature at the mid-latitude (≈ within 1e-3)."""
        if self.densify_m <= 0.0:
            return None
        ell = self.ellipsoid
        phi = np.radians(0.5 * (py + qy))
        s2 = np.sin(phi) ** 2
        w = np.sqrt(1.0 - ell.e2 * s2)
        n_radius = ell.a / w
        m_radius = ell.a * (1.0 - ell.e2) / (w * w * w)
        dx = np.radians(qx - px) * n_radius * np.cos(phi)
        dy = np.radians(qy - py) * m_radius
        length = np.hypot(dx, dy)
        count = np.where(length > self.densify_m, np.floor(length / self.densify_m), 0.0).astype(np.int64)
        return count if count.any() else None

    def _inverse(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.mode == _MODE_GK and self.projection is not None:
            proj = self.projection
            offset = x - proj.x0
            if np.abs(offset).max() <= 1e6:
                return gk_inverse_sin_lat(x, y, proj)
            # eastings that cannot belong to the CRS's zone (zone-prefixed data labelled unprefixed, or the
            # reverse): like 三调 software, strip the zone prefix of 8-digit eastings, else use 500 000
            if ((x >= 1e6) & (x < 1e7)).any() or (x >= 1e8).any() or (x < 0).any():
                raise ZoneDetectionError(
                    f"eastings do not fit {self.describe()} and carry no zone number "
                    "(are X and Y swapped, or is the CRS wrong?)"
                )
            LOG.warning("eastings outside the zone of %s; using their own zone prefix", self.describe())
            x0 = np.where(x >= 1e7, np.floor(x / 1e6) * 1e6 + 500000.0, 500000.0)
            return gk_inverse_sin_lat(x, y, proj, x0=x0)
        return self._inverse_auto(x, y, CGCS2000)

    @staticmethod
    def _inverse_auto(x: np.ndarray, y: np.ndarray, ell: Ellipsoid) -> tuple[np.ndarray, np.ndarray]:
        if x.size and (x.min() < 1e7 or x.max() >= 1e8):
            raise ZoneDetectionError(
                "cannot determine the Gauss-Krüger zone: the layer has no usable CRS and the eastings "
                "are not 8-digit zone-prefixed values (are X and Y swapped, or is the CRS missing?)"
            )
        zone = np.floor(x / 1e6)
        six = zone <= 23.0
        lon0 = np.where(six, 6.0 * zone - 3.0, 3.0 * zone)
        x0 = zone * 1e6 + 500000.0
        proj = GaussKruger(0.0, 0.0, ellipsoid=ell)
        sin_lat, lam = gk_inverse_sin_lat(x, y, proj, x0=x0)
        # λ relative to a common meridian (only differences within a ring matter)
        return sin_lat, lam + np.radians(lon0 - lon0.min())


def _outside_lon_lat(geometries: Sequence[QgsGeometry]) -> bool:
    for geometry in geometries:
        if geometry is not None and not geometry.isNull() and not geometry.isEmpty():
            box = geometry.boundingBox()
            if box.xMinimum() < -360.0 or box.xMaximum() > 360.0 or abs(box.yMinimum()) > 90.0:
                return True
            if abs(box.yMaximum()) > 90.0:
                return True
    return False


@lru_cache(maxsize=32)
def _calculator_for(key: str) -> EllipsoidalAreaCalculator:
    crs = QgsCoordinateReferenceSystem()
    if key:
        crs = QgsCoordinateReferenceSystem.fromWkt(key)
    return EllipsoidalAreaCalculator(crs)


def ellipsoidal_area(geometry: QgsGeometry, crs: QgsCoordinateReferenceSystem | None) -> float:
    """Ellipsoidal (三调 TBMJ) area of one polygon in m², rounded half-up to 0.01 (see module docs)."""
    key = crs.toWkt() if crs is not None and crs.isValid() else ""
    return _calculator_for(key).area(geometry)


def ellipsoidal_areas(
    geometries: Iterable[QgsGeometry], crs: QgsCoordinateReferenceSystem | None
) -> list[float]:
    """Ellipsoidal areas of many polygons in one CRS (vectorised)."""
    key = crs.toWkt() if crs is not None and crs.isValid() else ""
    return _calculator_for(key).areas(geometries)
