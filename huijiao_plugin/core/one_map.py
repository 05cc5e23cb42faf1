"""The 一张图: recognised catalog datasets loaded styled into the department groups of a project.

The one place that decides how the shared data appears in a project — used by the 共享图层 panel's
"加载一张图" (which opens the layers in a background task first) and by the demo project of ``make run``:

* which recognitions are loaded (:func:`one_map_items`): the newest year of every found dataset plus each
  older year; layers the catalog cannot place are not loaded (the panel lists them as unplaced);
* the layer name (catalog ``name_zh``, with the data year), the standard QML style (:func:`apply_style`)
  and the dataset/year layer properties (:func:`prepare_layer`);
* the layer tree (:func:`add_one_map_layers`): one group per catalog group, 基础 / 农业农村 / 自然资源 from
  the top, inside a group the catalog ``draw_order`` (higher on top, an older year below the newer one);
  full-coverage thematic fills and older years start switched off;
* the project CRS (:func:`set_project_crs`): the Gauss-Krüger zone of the data, never a geographic CRS.

Only ``qgis.core``: no widgets, no canvas.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsLayerTreeGroup,
    QgsLayerTreeLayer,
    QgsMapLayer,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
    QgsWkbTypes,
)

from huijiao_plugin.core.catalog import DEPARTMENT_GROUPS, Catalog, DatasetSpec, get_catalog
from huijiao_plugin.core.recognition import (
    Recognition,
    best_by_dataset,
    describe_layer,
    map_fields,
    other_years,
    recognize_layer,
)
from huijiao_plugin.core.styles import apply_style

log = logging.getLogger(__name__)

DATASET_PROPERTY = "huijiao/dataset_id"
YEAR_PROPERTY = "huijiao/year"
#: the recognised source (file|layername=…) a 一张图 layer was opened from: which layer a check was run on
SOURCE_PROPERTY = "huijiao/source"
# departments of the 一张图 groups from top to bottom of the layer tree (boundaries above thematic layers
# above the land-use map, so that the filled DLTB is drawn below every outline)
GROUP_ORDER = ("base", "nync", "zrzy")
# datasets loaded but switched off: opaque full-coverage thematic fills that would hide the land-use map
HIDDEN_ON_LOAD = ("gdzldj", "trhjzl", "trpc_soiltype")
# the datasets whose CRS becomes the project CRS, most wanted first (the land-use map)
CRS_PREFERENCE = ("dltb_biangeng", "dltb_sandiao", "yjjbnt", "gdbhmb")
# CGCS2000 3-degree Gauss-Krüger zones 25..45 are EPSG:4513..4533
_GK3_FIRST_ZONE, _GK3_LAST_ZONE, _GK3_FIRST_EPSG = 25, 45, 4513

OneMapItem = tuple[str, Recognition]  # (dataset id, recognition)


@dataclass
class OneMapResult:
    """What :func:`load_one_map` did: the layers added and the sources that could not be opened."""

    layers: list[QgsVectorLayer] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (dataset id, source)


def group_name(spec: DatasetSpec) -> str:
    """The layer-tree group of a dataset: the catalog's ``group`` (default: its department's name)."""
    return spec.group or DEPARTMENT_GROUPS.get(spec.department, spec.department)


def layer_title(spec: DatasetSpec, rec: Recognition | None = None) -> str:
    """The legend name: the catalog's Chinese name, with the data year when it is known."""
    return f"{spec.name_zh} {rec.year}" if rec is not None and rec.year else spec.name_zh


def one_map_items(
    catalog: Catalog,
    found: dict[str, Recognition],
    older: dict[str, list[Recognition]],
    dataset_ids: Iterable[str] | None = None,
    skip: Iterable[str] = (),
) -> list[OneMapItem]:
    """The recognitions to load: for each dataset (default: every found one, in catalog order, except
    ``skip``) the found recognition, then every older year of it."""
    skipped = set(skip)
    ids = list(dataset_ids or [d for d in catalog.dataset_ids() if d in found and d not in skipped])
    items = [(d, found[d]) for d in ids if d in found]
    items += [(d, rec) for d in ids for rec in older.get(d, [])]
    return items


def prepare_layer(
    layer: QgsVectorLayer, dataset_id: str, rec: Recognition | None, catalog: Catalog
) -> DatasetSpec:
    """Name, style and tag a layer of a catalog dataset (before it goes into a project)."""
    spec = catalog.dataset(dataset_id)
    layer.setName(layer_title(spec, rec))
    apply_style(layer, dataset_id, rec.field_mapping if rec is not None else None, catalog)
    layer.setCustomProperty(DATASET_PROPERTY, dataset_id)
    if rec is not None and rec.year:
        layer.setCustomProperty(YEAR_PROPERTY, rec.year)
    if rec is not None:
        layer.setCustomProperty(SOURCE_PROPERTY, rec.source)
    return spec


def department_group(project: QgsProject, spec: DatasetSpec) -> QgsLayerTreeGroup:
    """The dataset's group in ``project``, created at its place in :data:`GROUP_ORDER` when missing."""
    root = project.layerTreeRoot()
    name = group_name(spec)
    group = root.findGroup(name)
    if group is not None:
        return group
    ordered = [DEPARTMENT_GROUPS[d] for d in GROUP_ORDER]
    rank = ordered.index(name) if name in ordered else len(ordered)
    pos = 0
    for i, child in enumerate(root.children()):
        placed = isinstance(child, QgsLayerTreeGroup) and child.name() in ordered
        if placed and ordered.index(child.name()) < rank:
            pos = i + 1
    return root.insertGroup(pos, name)


def starts_hidden(dataset_id: str, rec: Recognition, found: dict[str, Recognition]) -> bool:
    """Full-coverage fills, an older year of a dataset and the 三调 DLTB next to a 变更 DLTB start off."""
    if dataset_id in HIDDEN_ON_LOAD:
        return True
    if rec is not found.get(dataset_id):  # an older year of the same dataset
        return True
    return dataset_id == "dltb_sandiao" and "dltb_biangeng" in found


def add_one_map_layers(
    project: QgsProject,
    layers: Iterable[tuple[str, Recognition, QgsVectorLayer]],
    found: dict[str, Recognition],
    catalog: Catalog,
) -> list[QgsVectorLayer]:
    """Add opened layers, styled, into their groups in catalog draw order; returns them top-down per group.

    ``found`` is the newest recognition per dataset (:func:`best_by_dataset`): any other recognition of a
    dataset is an older year, put below the newest one and switched off.
    """

    def key(item: tuple[str, Recognition, QgsVectorLayer]) -> tuple[int, bool, int]:
        dataset_id, rec, _layer = item
        return catalog.dataset(dataset_id).draw_order, rec is found.get(dataset_id), rec.year or 0

    added: list[QgsVectorLayer] = []
    # inserted bottom-up: low draw order first, an older year before (below) the newest one
    for dataset_id, rec, layer in sorted(layers, key=key):
        spec = prepare_layer(layer, dataset_id, rec, catalog)
        project.addMapLayer(layer, False)
        node: QgsLayerTreeLayer = department_group(project, spec).insertLayer(0, layer)
        node.setItemVisibilityChecked(not starts_hidden(dataset_id, rec, found))
        node.setExpanded(False)
        added.append(layer)
    return added


def set_project_crs(project: QgsProject, layers: Iterable[QgsVectorLayer]) -> bool:
    """Project CRS = the projected CRS of the data (the DLTB first); for geographic data the CGCS2000
    3-degree Gauss-Krüger zone of its centre. False when no layer tells a usable CRS."""

    def rank(layer: QgsVectorLayer) -> int:
        dataset_id = layer.customProperty(DATASET_PROPERTY)
        return CRS_PREFERENCE.index(dataset_id) if dataset_id in CRS_PREFERENCE else len(CRS_PREFERENCE)

    ranked = sorted(layers, key=rank)
    for layer in ranked:
        crs = layer.crs()
        if crs.isValid() and not crs.isGeographic():
            project.setCrs(crs)
            return True
    for layer in ranked:
        crs = layer.crs()
        extent = layer.extent()
        if crs.isValid() and crs.isGeographic() and not extent.isEmpty():
            zone = int(round(extent.center().x() / 3.0))
            if _GK3_FIRST_ZONE <= zone <= _GK3_LAST_ZONE:
                epsg = _GK3_FIRST_EPSG + zone - _GK3_FIRST_ZONE
                project.setCrs(QgsCoordinateReferenceSystem(f"EPSG:{epsg}"))
                return True
    return False


def combined_extent(project: QgsProject, layers: Iterable[QgsVectorLayer]) -> QgsRectangle:
    """The union of the layers' extents in the project CRS (empty when there is none)."""
    extent = QgsRectangle()
    extent.setMinimal()
    for layer in layers:
        transform = QgsCoordinateTransform(layer.crs(), project.crs(), project)
        box = transform.transformBoundingBox(layer.extent())
        if not box.isEmpty():
            extent.combineExtentWith(box)
    return extent


def load_one_map(
    project: QgsProject,
    recognitions: list[Recognition],
    catalog: Catalog,
    dataset_ids: Iterable[str] | None = None,
) -> OneMapResult:
    """Open and add the 一张图 of ``recognitions`` to ``project`` in the calling thread and set the
    project CRS (the panel does the same with the opening in a background task)."""
    found = best_by_dataset(recognitions)
    older = other_years(recognitions)
    result = OneMapResult()
    opened = []
    for dataset_id, rec in one_map_items(catalog, found, older, dataset_ids):
        layer = rec.make_layer()
        if not layer.isValid():
            log.warning("cannot open %s", rec.source)
            result.errors.append((dataset_id, rec.source))
            continue
        opened.append((dataset_id, rec, layer))
    result.layers = add_one_map_layers(project, opened, found, catalog)
    if result.layers:
        set_project_crs(project, result.layers)
    return result


def dataset_layers(
    dataset_ids: Iterable[str], layers: Iterable[QgsMapLayer] = (), project: QgsProject | None = None
) -> list[tuple[str, QgsVectorLayer, dict[str, str]]]:
    """(dataset id, layer, {standard field: the layer's field}) for the polygon layers among ``layers`` and
    the project that are one of ``dataset_ids``: by the tag the 一张图 sets, else by the catalog recognition,
    never by layer-name text. ``layers`` come first; a layer is listed once."""
    wanted = set(dataset_ids)
    catalog = get_catalog()
    found, seen = [], set()
    for layer in [*layers, *(project or QgsProject.instance()).mapLayers().values()]:
        if not isinstance(layer, QgsVectorLayer) or not layer.isValid() or layer.id() in seen:
            continue
        seen.add(layer.id())
        if layer.geometryType() != QgsWkbTypes.GeometryType.PolygonGeometry:
            continue
        try:
            dataset_id = str(layer.customProperty(DATASET_PROPERTY) or "")
            dataset_id = dataset_id or recognize_layer(layer).dataset_id or ""
            if dataset_id not in wanted:
                continue
            fields = map_fields(catalog.dataset(dataset_id), describe_layer(layer))
        except Exception:  # noqa: BLE001 - an unreadable layer must not stop the others
            log.exception("recognition failed for %s", layer.name())
            continue
        found.append((dataset_id, layer, fields))
    return found
