"""A synthetic province for the province-run tests and benchmark: one generated county split into counties by
its townships (west to east), each written to ``<code>.gpkg`` with every layer clipped to the county's area
and the county code rewritten (610431 → the new code) in every code attribute.

    from tests.datagen.province import generate_province
    prov = generate_province(out_dir, size=600, counties=3, seed=7)  # -> Province
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qgis.core import (
    QgsCoordinateTransformContext,
    QgsFeature,
    QgsGeometry,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsWkbTypes,
)

from tests.datagen import generate_county

SOURCE_CODE = "610431"
CODES = ("610402", "610403", "610502", "610503", "610602", "610603", "610702", "610703")
ROLE_LAYERS = ("DLTB", "YJJBNTBHTB", "GBZNT", "XZQ", "CJDCQ")


@dataclass
class Province:
    folder: Path
    codes: list[str]
    areas: dict[str, QgsGeometry] = field(default_factory=dict)
    crs_authid: str = "EPSG:4545"

    def gpkg(self, code: str) -> Path:
        return self.folder / f"{code}.gpkg"


def _recode(value: object, code: str) -> object:
    if isinstance(value, str) and value.startswith(SOURCE_CODE):
        return code + value[len(SOURCE_CODE) :]
    return value


def write_layer(path: Path, name: str, source: QgsVectorLayer, features: list[QgsFeature]) -> None:
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = name
    if path.exists():
        options.actionOnExistingFile = QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteLayer
    writer = QgsVectorFileWriter.create(
        str(path),
        source.fields(),
        QgsWkbTypes.Type.MultiPolygon,
        source.crs(),
        QgsCoordinateTransformContext(),
        options,
    )
    assert writer.hasError() == QgsVectorFileWriter.WriterError.NoError, writer.errorMessage()
    for feature in features:
        writer.addFeature(feature)
    del writer


def generate_province(out_dir: str | Path, size: int = 600, counties: int = 3, seed: int = 7) -> Province:
    out = Path(out_dir)
    source_gpkg = out / "source" / "county.gpkg"
    if not (out / "source" / "complete").exists():  # a finished source is reused (the benchmark's cache)
        source_gpkg = Path(generate_county(out / "source", size=size, seed=seed, formats=("gpkg",)).gpkg)
        (out / "source" / "complete").touch()
    return split_province(source_gpkg, out, counties)


def split_province(source_gpkg: Path, out: Path, counties: int) -> Province:
    """The county GeoPackages of ``counties`` counties cut from the generated county at ``source_gpkg``."""
    xzq = QgsVectorLayer(f"{source_gpkg}|layername=XZQ", "XZQ", "ogr")
    towns = sorted(xzq.getFeatures(), key=lambda f: f.geometry().centroid().asPoint().x())
    groups = [towns[i * len(towns) // counties : (i + 1) * len(towns) // counties] for i in range(counties)]
    codes = list(CODES[:counties])
    prov = Province(out / "counties", codes)
    prov.folder.mkdir(parents=True, exist_ok=True)
    engines = {}
    for code, group in zip(codes, groups):
        prov.areas[code] = QgsGeometry.unaryUnion([f.geometry() for f in group])
        engines[code] = QgsGeometry.createGeometryEngine(prov.areas[code].constGet())
        engines[code].prepareGeometry()
    for name in ROLE_LAYERS:
        layer = QgsVectorLayer(f"{source_gpkg}|layername={name}", name, "ogr")
        per_county: dict[str, list[QgsFeature]] = {code: [] for code in codes}
        for feature in layer.getFeatures():
            geom = feature.geometry()
            for code in codes:
                area = prov.areas[code]
                if not geom.boundingBox().intersects(area.boundingBox()):
                    continue
                if engines[code].contains(geom.constGet()):  # inside one county: kept whole, no cutting
                    copy = QgsFeature(feature)
                    copy.setAttributes([_recode(v, code) for v in feature.attributes()])
                    per_county[code].append(copy)
                    break
                part = geom.intersection(area)
                part = (
                    QgsGeometry.collectGeometry(part.asGeometryCollection()) if part.isMultipart() else part
                )
                polys = [
                    g
                    for g in part.asGeometryCollection()
                    if g.type() == QgsWkbTypes.GeometryType.PolygonGeometry
                ]
                if not polys or sum(g.area() for g in polys) < 0.01:
                    continue
                clipped = QgsGeometry.collectGeometry(polys)
                copy = QgsFeature(layer.fields())
                copy.setGeometry(clipped)
                copy.setAttributes([_recode(v, code) for v in feature.attributes()])
                per_county[code].append(copy)
        for code in codes:
            write_layer(prov.gpkg(code), name, layer, per_county[code])
    return prov
