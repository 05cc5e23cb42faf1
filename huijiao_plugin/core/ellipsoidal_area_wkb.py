"""三调 椭球面积: ring vertices of polygon WKB as flat arrays (a fast path for simple polygons, a slower
parser for the rest; split from ``ellipsoidal_area``, which re-exports every name)."""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence

import numpy as np
from qgis.core import (
    QgsGeometry,
)

from huijiao_plugin.compat import wkb_display_string

LOG = logging.getLogger(__name__)

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
