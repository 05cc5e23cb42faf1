"""Errors and geometry helpers shared by the engine modules."""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence

from qgis.core import (
    QgsGeometry,
    QgsWkbTypes,
)

LOG = logging.getLogger(__name__)

CHUNK = 256  # features per worker task
# Segments per quarter circle of the erosions that decide which pairs can only give noise. An inner buffer
# approximates its arcs (around concave corners) by chords inside the circle, so fewer segments give a
# slightly larger core: fewer pairs skipped, never a piece lost. 2 costs about half of 8.
ERODE_SEGMENTS = 2


class CompareError(Exception):
    """Bad input for a comparison; ``str(error)`` is a Chinese message for the user."""


class CompareCanceledError(Exception):
    """The user canceled the run."""


# --- geometry helpers ---------------------------------------------------------------------------------------


def polygonal(geom: QgsGeometry | None) -> QgsGeometry | None:
    """The polygon part of an overlay result (lines/points from touching boundaries dropped), or None."""
    if geom is None or geom.isNull() or geom.isEmpty():
        return None
    if geom.type() == QgsWkbTypes.GeometryType.PolygonGeometry:
        return geom
    if QgsWkbTypes.flatType(geom.wkbType()) == QgsWkbTypes.Type.GeometryCollection:
        out = QgsGeometry(geom)
        if (
            out.convertGeometryCollectionToSubclass(QgsWkbTypes.GeometryType.PolygonGeometry)
            and not out.isEmpty()
        ):
            return out
    return None


def single_parts(geom: QgsGeometry | None) -> list[QgsGeometry]:
    if geom is None or geom.isNull() or geom.isEmpty():
        return []
    if geom.isMultipart():
        return [part for part in geom.asGeometryCollection() if not part.isEmpty()]
    return [geom]


def union_parts(parts: Sequence[QgsGeometry]) -> QgsGeometry | None:
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return polygonal(QgsGeometry.unaryUnion(list(parts)))


def release_freed_memory() -> None:
    """Give the memory a comparison freed back to the system. glibc keeps freed blocks in per-thread arenas,
    so after a county-sized run (worker threads, vectorised arrays) QGIS would hold several hundred MB it
    no longer uses. No-op where glibc's ``malloc_trim`` is missing."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
