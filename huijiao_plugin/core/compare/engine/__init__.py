"""The shared overlay engine of the 耕地比对 presets.

The county's layers are loaded once (geometries repaired with ``makeValid``, reprojected to the base CRS,
indexed
with ``QgsSpatialIndex``) into a :class:`CountyOverlay`. Overlays between two roles are computed once and
cached, so a
suite of presets answers every question from the same pairwise pieces (e.g. PBF × DLTB serves 非粮化,
生态脆弱 and
插花地). Every overlay uses prepared geometries (``QgsGeometryEngine.prepareGeometry``) and predicate
shortcuts:
a candidate fully inside is taken whole, a disjoint candidate is skipped, only the rest is intersected. The
geometry
work runs on worker threads (GEOS calls release the GIL).

One job per module: ``reading`` (layers into feature sets), ``featureset`` (columns, checked geometries,
indexes), ``runner`` (threads, progress, cancel,
selections), ``pairwise`` (overlays of two roles), ``unions`` (a piece against the union of a role: category
assembly), ``noise`` (sliver rule, digitising noise, covers), ``county`` (the overlay of a run, areas for the
statistics), ``geometry`` (errors and small helpers).
"""

from __future__ import annotations

from huijiao_plugin.core.compare.engine.county import CountyOverlay
from huijiao_plugin.core.compare.engine.geometry import (
    CompareCanceledError,
    CompareError,
    polygonal,
    single_parts,
    union_parts,
)
from huijiao_plugin.core.compare.engine.noise import kept_parts, passes_sliver_rule
from huijiao_plugin.core.compare.engine.runner import Selection

__all__ = [
    "CompareCanceledError",
    "CompareError",
    "CountyOverlay",
    "Selection",
    "kept_parts",
    "passes_sliver_rule",
    "polygonal",
    "single_parts",
    "union_parts",
]
