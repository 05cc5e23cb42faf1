"""Polygons from labelled cell grids: WKB, envelopes, planar and ellipsoidal areas."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tests.datagen.grid import Rings, components, fix_pinches, trace_rings

_POLY_HDR = struct.Struct("<BII")
_UINT = struct.Struct("<I")


@dataclass
class PolySet:
    """One polygon (or multipolygon) per label, in label order."""

    labels: np.ndarray  # label value of each polygon
    wkbs: list[bytes]
    env: np.ndarray  # (n, 4): minx, maxx, miny, maxy
    planar: np.ndarray  # planar area per polygon (m²)


def ring_polys(rings: Rings, x: np.ndarray, y: np.ndarray) -> PolySet:
    """One Polygon WKB per traced label (each label = one 4-connected component)."""
    vid = rings.vertex_ids
    n = rings.label_offsets.size - 1
    xy = np.empty((vid.size, 2), dtype="<f8")
    xy[:, 0] = x[vid]
    xy[:, 1] = y[vid]
    buf = xy.tobytes()
    offs = rings.offsets.tolist()
    lo = rings.label_offsets.tolist()
    wkbs: list[bytes] = []
    pack_h = _POLY_HDR.pack
    pack_u = _UINT.pack
    for c in range(n):
        r0, r1 = lo[c], lo[c + 1]
        parts = [pack_h(1, 3, r1 - r0)]
        for r in range(r0, r1):
            a, b = offs[r], offs[r + 1]
            parts.append(pack_u(b - a))
            parts.append(buf[16 * a : 16 * b])
        wkbs.append(b"".join(parts))
    starts = rings.offsets[:-1]
    if vid.size:
        rminx = np.minimum.reduceat(xy[:, 0], starts)
        rmaxx = np.maximum.reduceat(xy[:, 0], starts)
        rminy = np.minimum.reduceat(xy[:, 1], starts)
        rmaxy = np.maximum.reduceat(xy[:, 1], starts)
        outer = rings.label_offsets[:-1]
        env = np.stack([rminx[outer], rmaxx[outer], rminy[outer], rmaxy[outer]], axis=1)
        # planar signed area per ring (closed rings), shifted for precision
        ox, oy = float(xy[:, 0].mean()), float(xy[:, 1].mean())
        vx = xy[:, 0] - ox
        vy = xy[:, 1] - oy
        cross = np.zeros(vx.size)
        cross[:-1] = vx[:-1] * vy[1:] - vx[1:] * vy[:-1]
        cross[rings.offsets[1:] - 1] = 0.0
        ring_area = 0.5 * np.add.reduceat(cross, starts)
        planar = np.bincount(rings.label, weights=ring_area, minlength=n)
    else:
        env = np.zeros((0, 4))
        planar = np.zeros(0)
    return PolySet(np.arange(n), wkbs, env, planar)


def grid_polys(grid: np.ndarray, x: np.ndarray, y: np.ndarray, explode: bool = False) -> PolySet:
    """Polygons of a labelled grid (labels ≥ 0, -1 = nothing).

    A label in several pieces gives a MultiPolygon, or with `explode` one Polygon per piece (then `labels`
    repeats). The grid is made pinch-free first (cells along diagonal-only contacts are relabelled).
    """
    g = fix_pinches(grid)
    comp, nc = components(g)
    if nc == 0:
        return PolySet(np.zeros(0, np.int64), [], np.zeros((0, 4)), np.zeros(0))
    jj, ii = np.nonzero(comp >= 0)
    label_of = np.zeros(nc, np.int64)
    label_of[comp[jj, ii]] = g[jj, ii]
    rings = trace_rings(comp, nc)
    ps = ring_polys(rings, x, y)
    if explode:
        ps.labels = label_of
        return ps
    order = np.argsort(label_of, kind="stable")
    labels, first = np.unique(label_of[order], return_index=True)
    bounds = np.append(first, order.size)
    wkbs = []
    env = np.zeros((labels.size, 4))
    planar = np.zeros(labels.size)
    for k in range(labels.size):
        members = order[bounds[k] : bounds[k + 1]]
        if members.size == 1:
            m = int(members[0])
            wkbs.append(ps.wkbs[m])
        else:
            wkbs.append(struct.pack("<BII", 1, 6, members.size) + b"".join(ps.wkbs[int(m)] for m in members))
        e = ps.env[members]
        env[k] = (e[:, 0].min(), e[:, 1].max(), e[:, 2].min(), e[:, 3].max())
        planar[k] = ps.planar[members].sum()
    return PolySet(labels, wkbs, env, planar)


class AreaCalc:
    """TBMJ: huijiao_plugin.core.ellipsoidal_area.EllipsoidalAreaCalculator(EPSG:4545).areas(geometries)."""

    def __init__(self, epsg: int) -> None:
        from qgis.core import QgsCoordinateReferenceSystem

        from huijiao_plugin.core.ellipsoidal_area import EllipsoidalAreaCalculator

        self.calc = EllipsoidalAreaCalculator(QgsCoordinateReferenceSystem(f"EPSG:{epsg}"))

    def areas(self, wkbs: list[bytes]) -> np.ndarray:
        from qgis.core import QgsGeometry

        def geoms() -> Iterator[QgsGeometry]:
            for w in wkbs:
                g = QgsGeometry()
                g.fromWkb(w)
                yield g

        return np.asarray(self.calc.areas(geoms()), dtype=np.float64)

    def unrounded(self, wkbs: list[bytes]) -> np.ndarray:
        return self.calc.unrounded_areas_wkb(wkbs)
