"""Geometry helpers of change patches: valid polygons, derived attributes (area, centroid), region codes."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCoordinateTransformContext,
    QgsFeatureRequest,
    QgsGeometry,
    QgsProject,
    QgsRectangle,
    QgsSpatialIndex,
    QgsVectorLayer,
    QgsWkbTypes,
)

from huijiao_plugin.core.ellipsoidal_area import EllipsoidalAreaCalculator
from huijiao_plugin.core.units import m2_to_mu, round_half_up

log = logging.getLogger(__name__)

CGCS2000_GEOGRAPHIC = "EPSG:4490"

# candidate field names (read tolerantly, domain.md "How to use" 4–6)
TOWNSHIP_CODE_FIELDS = ("XZQDM", "XZDM", "XZQ_DM", "TOWNSHIP_CODE")
VILLAGE_CODE_FIELDS = ("ZLDWDM", "QSDWDM", "CJDM", "CUNDM", "VILLAGE_CODE", "XZQDM")


def polygon_parts(geometry: QgsGeometry | None) -> QgsGeometry | None:
    """A valid multipolygon of the polygonal parts of ``geometry``, or None if nothing is left."""
    if geometry is None or geometry.isNull() or geometry.isEmpty():
        return None
    geom = QgsGeometry(geometry)
    if not geom.isGeosValid():
        geom = geom.makeValid()
    if geom.type() != QgsWkbTypes.GeometryType.PolygonGeometry:
        parts = [
            g for g in geom.asGeometryCollection() if g.type() == QgsWkbTypes.GeometryType.PolygonGeometry
        ]
        if not parts:
            return None
        geom = QgsGeometry.unaryUnion(parts)
    if geom is None or geom.isEmpty():
        return None
    geom.convertToMultiType()
    return geom


def single_parts(geometry: QgsGeometry) -> list[QgsGeometry]:
    """The polygons of a (multi)polygon, each as a single polygon geometry."""
    if geometry.isMultipart():
        return [QgsGeometry(g) for g in geometry.asGeometryCollection() if not g.isEmpty()]
    return [QgsGeometry(geometry)]


class DerivedAttributes:
    """Computes the attributes a person never types: area (m², 亩), centroid lon/lat and GK X/Y."""

    def __init__(
        self,
        crs: QgsCoordinateReferenceSystem,
        transform_context: QgsCoordinateTransformContext | None = None,
    ) -> None:
        self.crs = crs
        self.calculator = EllipsoidalAreaCalculator(crs)
        context = transform_context or QgsProject.instance().transformContext()
        self.to_geographic = QgsCoordinateTransform(
            crs, QgsCoordinateReferenceSystem(CGCS2000_GEOGRAPHIC), context
        )

    def compute(self, geometry: QgsGeometry) -> dict[str, float]:
        area_m2 = float(self.calculator.area(geometry))
        center = geometry.centroid()
        if center.isNull() or not geometry.contains(center):
            center = geometry.pointOnSurface()
        point = center.asPoint()
        geo = self.to_geographic.transform(point)
        return {
            "area_m2": round_half_up(area_m2, 2),
            "area_mu": round_half_up(m2_to_mu(area_m2), 2),
            "lon": round(geo.x(), 8),
            "lat": round(geo.y(), 8),
            "gk_x": round_half_up(point.y(), 3),  # X = northing (北)
            "gk_y": round_half_up(point.x(), 3),  # Y = easting (东)
        }


def _field_of(layer: QgsVectorLayer, candidates: Iterable[str]) -> str | None:
    names = {f.name().upper(): f.name() for f in layer.fields()}
    for candidate in candidates:
        if candidate.upper() in names:
            return names[candidate.upper()]
    return None


class _Units:
    def __init__(self, layer: QgsVectorLayer, field: str, crs: QgsCoordinateReferenceSystem) -> None:
        self.geoms: dict[int, QgsGeometry] = {}
        self.codes: dict[int, str] = {}
        self.index = QgsSpatialIndex()
        transform = None
        if layer.crs().isValid() and crs.isValid() and layer.crs() != crs:
            transform = QgsCoordinateTransform(layer.crs(), crs, QgsProject.instance().transformContext())
        request = QgsFeatureRequest().setSubsetOfAttributes([field], layer.fields())
        for feature in layer.getFeatures(request):
            geom = feature.geometry()
            if geom is None or geom.isEmpty():
                continue
            geom = QgsGeometry(geom)
            if transform is not None:
                geom.transform(transform)
            if not geom.isGeosValid():
                geom = geom.makeValid()
            code = feature[field]
            if code is None:
                continue
            self.geoms[feature.id()] = geom
            self.codes[feature.id()] = str(code).strip()
            self.index.addFeature(feature.id(), geom.boundingBox())

    def best(self, geometry: QgsGeometry) -> str:
        point = geometry.pointOnSurface()
        best_code, best_area = "", 0.0
        for fid in self.index.intersects(QgsRectangle(geometry.boundingBox())):
            unit = self.geoms[fid]
            if not unit.intersects(geometry):
                continue
            inter = unit.intersection(geometry)
            area = inter.area() if inter is not None else 0.0
            if area > best_area or (area == best_area and unit.contains(point)):
                best_code, best_area = self.codes[fid], area
        return best_code


def _units_of(
    layer: QgsVectorLayer | None, code_fields: tuple[str, ...], crs: QgsCoordinateReferenceSystem, kind: str
) -> _Units | None:
    """The units of a valid ``layer`` keyed by its first field of ``code_fields``; None (logged) if none."""
    if layer is None or not layer.isValid():
        return None
    field = _field_of(layer, code_fields)
    if not field:
        log.warning("%s layer %s has no code field %s", kind, layer.name(), code_fields)
        return None
    return _Units(layer, field, crs)


class RegionLookup:
    """County/township/village codes of a patch from XZQ (乡级, XZQDM 9 digits) and CJDCQ
    (村级, ZLDWDM 12/19), chosen by the largest overlap (domain.md §8). Missing layers or fields leave
    codes empty."""

    def __init__(
        self,
        crs: QgsCoordinateReferenceSystem,
        township_layer: QgsVectorLayer | None = None,
        village_layer: QgsVectorLayer | None = None,
        county_code: str = "",
    ) -> None:
        self.county_code = county_code or ""
        self.townships = _units_of(township_layer, TOWNSHIP_CODE_FIELDS, crs, "township")
        self.villages = _units_of(village_layer, VILLAGE_CODE_FIELDS, crs, "village")

    def lookup(self, geometry: QgsGeometry) -> dict[str, str]:
        township = self.townships.best(geometry) if self.townships else ""
        village = self.villages.best(geometry) if self.villages else ""
        township = township[:9] if len(township) >= 9 else ""
        village = village[:12] if len(village) >= 12 else ""
        if not township and village:
            township = village[:9]
        county = (township or village)[:6] or self.county_code
        return {"county_code": county, "township_code": township, "village_code": village}


# catalog datasets whose polygons give the township and the village codes of a patch
TOWNSHIP_DATASET = "xzq"
VILLAGE_DATASET = "cjdcq"


def project_regions(
    crs: QgsCoordinateReferenceSystem, county_code: str = "", exclude: Iterable[QgsVectorLayer] = ()
) -> RegionLookup:
    """Region lookup from the project's 行政区/村级调查区 layers, found by their recognised dataset (the
    catalog's recognition), never by layer-name text."""
    from huijiao_plugin.core.recognition import recognize_layer

    skip = {layer.id() for layer in exclude if layer is not None}
    found: dict[str, QgsVectorLayer] = {}
    for layer in QgsProject.instance().mapLayers().values():
        if not isinstance(layer, QgsVectorLayer) or layer.id() in skip or not layer.isValid():
            continue
        if layer.geometryType() != QgsWkbTypes.GeometryType.PolygonGeometry:
            continue
        try:
            dataset_id = recognize_layer(layer).dataset_id
        except Exception:  # an unreadable layer must not stop the others
            log.exception("recognition failed for %s", layer.name())
            continue
        if dataset_id in (TOWNSHIP_DATASET, VILLAGE_DATASET) and dataset_id not in found:
            found[dataset_id] = layer
    return RegionLookup(crs, found.get(TOWNSHIP_DATASET), found.get(VILLAGE_DATASET), county_code=county_code)
