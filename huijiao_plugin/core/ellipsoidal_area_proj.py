"""三调 椭球面积: the ellipsoids, the Gauss-Krüger projection of a CRS (EPSG code or PROJ string) and its
inverse by the Krüger series (split from ``ellipsoidal_area``, which re-exports every name)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

LOG = logging.getLogger(__name__)

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
