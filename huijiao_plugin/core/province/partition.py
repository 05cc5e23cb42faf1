"""The partition rule of a province run.

Every output piece belongs to exactly one county: the one whose area (union of its XZQ townships) holds the
piece's representative point (``QgsGeometry.pointOnSurface``); a point outside every county area goes to the
nearest county (ties: the smaller code). A county's run therefore reads its own features plus every
neighbour's feature that crosses into its area (so overlays near the boundary are complete) and keeps only
its own pieces: a patch that straddles two counties is compared in both runs, and each of its pieces is
counted once. A neighbour's feature that reaches less than ``INSIDE`` (1 mm) into a county is left out of
its run (county data clipped at the common boundary only touches it). The presets' tolerances (the sliver
rule over connected parts of a category) are judged within each county's run, so a part that continues
across a county boundary is judged per county: the province total is the sum of its counties by
construction, and a run of the merged province can differ by what the tolerance moves at county boundaries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from qgis.core import (
    QgsFeature,
    QgsFeatureRequest,
    QgsFields,
    QgsGeometry,
    QgsVectorLayer,
    QgsWkbTypes,
)

from huijiao_plugin.core.province.sources import County, open_layer

INSIDE = 0.001  # m: how far a neighbour's feature must reach into a county to join its run


class Partition:
    """The areas of one county and of its neighbours (the counties whose area touches its bounding box)."""

    def __init__(self, code: str, areas: dict[str, bytes]) -> None:
        self.code = code
        self.areas: dict[str, QgsGeometry] = {}
        for other, wkb in sorted(areas.items()):
            geom = QgsGeometry()
            geom.fromWkb(wkb)
            self.areas[other] = geom
        self.area = self.areas[code]
        self._engines = {c: QgsGeometry.createGeometryEngine(g.constGet()) for c, g in self.areas.items()}
        for engine in self._engines.values():
            engine.prepareGeometry()

    def owner(self, geom: QgsGeometry) -> str:
        point = geom.pointOnSurface()
        if point.isEmpty():
            return ""
        inside = [c for c, e in self._engines.items() if e.intersects(point.constGet())]
        if inside:
            return min(inside)
        return min(self.areas, key=lambda c: (self.areas[c].distance(point), c))

    def keeps(self, geom: QgsGeometry) -> bool:
        return self.owner(geom) == self.code


def neighbours(county: County, counties: Sequence[County]) -> dict[str, bytes]:
    """Areas (WKB) of ``county`` and of every county whose area meets its bounding box."""
    area = QgsGeometry()
    area.fromWkb(county.area_wkb)
    box = area.boundingBox()
    out = {county.code: county.area_wkb}
    for other in counties:
        if other.code == county.code:
            continue
        geom = QgsGeometry()
        geom.fromWkb(other.area_wkb)
        if geom.boundingBox().intersects(box):
            out[other.code] = other.area_wkb
    return out


def county_layers(
    county: dict[str, tuple[str, str]], others: dict[str, dict[str, tuple[str, str]]], area: QgsGeometry
) -> dict[str, QgsVectorLayer]:
    """The layers of a county's run: its own layer per role, plus the features of neighbouring counties'
    layers of that role that cross into ``area`` (then everything is copied into one memory layer)."""
    out: dict[str, QgsVectorLayer] = {}
    # the county eroded by INSIDE m, prepared: a neighbour's feature that reaches less into the county (one
    # clipped at the common boundary, up to floating-point noise) cannot give a piece there
    inner = area.buffer(-INSIDE, 2)
    engine = QgsGeometry.createGeometryEngine((inner if not inner.isEmpty() else area).constGet())
    engine.prepareGeometry()
    for role, source in county.items():
        own = open_layer(*source, name=role)
        if not own.isValid():
            raise ValueError(f"图层无法打开: {role}")
        crossing: list[tuple[list[QgsFeature], QgsFields]] = []  # per neighbour: features, their fields
        for layers in others.values():
            if role not in layers:
                continue
            other = open_layer(*layers[role], name=role)
            request = QgsFeatureRequest().setFilterRect(area.boundingBox()).setNoAttributes()
            fids = [
                f.id()
                for f in other.getFeatures(request)
                if f.hasGeometry() and engine.intersects(f.geometry().constGet())
            ]
            if fids:  # then their attributes, for these features only
                crossing.append(
                    (list(other.getFeatures(QgsFeatureRequest().setFilterFids(fids))), other.fields())
                )
        out[role] = _with(own, crossing) if crossing else own
    return out


def _with(own: QgsVectorLayer, extra: list[tuple[list[QgsFeature], QgsFields]]) -> QgsVectorLayer:
    """A memory copy of ``own`` with ``extra`` features appended (attributes matched by field name)."""
    kind = QgsWkbTypes.displayString(QgsWkbTypes.multiType(own.wkbType()))
    mem = QgsVectorLayer(f"{kind}?crs={own.crs().authid()}", own.name(), "memory")
    if not own.crs().authid():
        mem.setCrs(own.crs())
    provider = mem.dataProvider()
    provider.addAttributes(own.fields().toList())
    mem.updateFields()
    fields = mem.fields()
    names = fields.names()
    batch: list[QgsFeature] = []

    def add_all(features: Iterable[QgsFeature], source: QgsFields) -> None:
        # attribute positions matched by name once per source, not per feature
        index = [source.indexOf(n) for n in names]
        same = index == list(range(source.count()))
        for feature in features:
            copy = QgsFeature(fields)
            geom = feature.geometry()
            if not QgsWkbTypes.isMultiType(geom.wkbType()):
                geom = QgsGeometry(geom)
                geom.convertToMultiType()
            copy.setGeometry(geom)
            values = feature.attributes()
            copy.setAttributes(values if same else [values[i] if i >= 0 else None for i in index])
            batch.append(copy)
            if len(batch) >= 5000:
                provider.addFeatures(batch)
                batch.clear()

    add_all(own.getFeatures(), own.fields())
    for features, source in extra:
        add_all(features, source)
    provider.addFeatures(batch)
    return mem
