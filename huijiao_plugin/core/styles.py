"""Standard styles of the catalog datasets (``resources/styles/*.qml``) and applying them to layers.

The QML files are written for the standard field names (DLBM, JSND, HJZLLB …). When a layer carries
the field under another name (地类编码, lower case …), :func:`apply_style` points the renderer and the
labels at the actual field through the recognition's field mapping. Categories whose values depend on
configurable codes (土壤环境质量类别) are matched by code *or* class name, following the catalog's code
table (override file included).
"""

from __future__ import annotations

import logging
from pathlib import Path

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsFillSymbol,
    QgsGraduatedSymbolRenderer,
    QgsRendererCategory,
    QgsSymbolLayerUtils,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)

from huijiao_plugin.core.catalog import Catalog, get_catalog, normalize_name

log = logging.getLogger(__name__)

STYLES_DIR = Path(__file__).resolve().parent.parent / "resources" / "styles"


def style_path(dataset_id: str, catalog: Catalog | None = None) -> Path | None:
    """The QML of a dataset, or None when the dataset has no (existing) style file."""
    catalog = catalog or get_catalog()
    spec = catalog.datasets.get(dataset_id)
    if spec is None or not spec.style:
        return None
    path = STYLES_DIR / spec.style
    return path if path.exists() else None


def _actual_field(layer: QgsVectorLayer, name: str, mapping: dict[str, str]) -> str | None:
    if layer.fields().indexOf(name) >= 0:
        return name
    if name in mapping and layer.fields().indexOf(mapping[name]) >= 0:
        return mapping[name]
    key = normalize_name(name)
    for f in layer.fields():
        if normalize_name(f.name()) == key:
            return f.name()
    return None


def _quote(value: str) -> str:
    return "'{}'".format(value.replace("'", "''"))


def _code_expression(field: str, renderer: QgsCategorizedSymbolRenderer, codes: dict[str, str]) -> str:
    """CASE expression mapping every code or name of the table onto the category with that name."""
    by_label = {c.label().strip(): str(c.value()) for c in renderer.categories()}
    whens = []
    for code, name in codes.items():
        target = by_label.get(name)
        if target is None:
            continue
        whens.append(
            "WHEN {} IN ({}, {}) THEN {}".format(f'"{field}"', _quote(code), _quote(name), _quote(target))
        )
    if not whens:
        return f'"{field}"'
    return "CASE {} ELSE {} END".format(" ".join(whens), f'"{field}"')


def apply_style(
    layer: QgsVectorLayer,
    dataset_id: str,
    mapping: dict[str, str] | None = None,
    catalog: Catalog | None = None,
) -> bool:
    """Load the dataset's QML into ``layer`` and adapt field names; False when there is no style."""
    catalog = catalog or get_catalog()
    mapping = mapping or {}
    path = style_path(dataset_id, catalog)
    if path is None:
        return False
    message, ok = layer.loadNamedStyle(str(path))
    if not ok:
        log.warning("style %s not applied to %s: %s", path.name, layer.name(), message)
        return False
    renderer = layer.renderer()
    if isinstance(renderer, (QgsCategorizedSymbolRenderer, QgsGraduatedSymbolRenderer)):
        attr = renderer.classAttribute()
        actual = _actual_field(layer, attr, mapping)
        spec = catalog.datasets.get(dataset_id)
        field_spec = spec.field_spec(attr) if spec else None
        table = catalog.code_table(field_spec.domain) if field_spec and field_spec.domain else None
        if (
            isinstance(renderer, QgsCategorizedSymbolRenderer)
            and table is not None
            and table.values_may_be_names
        ):
            renderer.setClassAttribute(_code_expression(actual or attr, renderer, table.codes))
        elif actual and actual != attr:
            renderer.setClassAttribute(actual)
    labeling = layer.labeling()
    if isinstance(labeling, QgsVectorLayerSimpleLabeling):
        settings = labeling.settings()
        if not settings.isExpression:
            actual = _actual_field(layer, settings.fieldName, mapping)
            if actual is None:
                layer.setLabelsEnabled(False)
            elif actual != settings.fieldName:
                settings.fieldName = actual
                layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
    if dataset_id == HSF_DATASET:
        _refine_hsf(layer, mapping)
    layer.setCustomProperty("huijiao/dataset_id", dataset_id)
    layer.triggerRepaint()
    return True


# 高标准农田: construction years light (old) → dark (new) green, one project name label per project
HSF_DATASET = "gbznt"
HSF_RAMP = ("#d9f0d3", "#00441b")
HSF_LABEL_MAX_SCALE = 50000  # names from 1:50,000 in


def _mix(start: str, end: str, t: float) -> str:
    a = [int(start[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(end[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b))


def _refine_hsf(layer: QgsVectorLayer, mapping: dict[str, str]) -> None:
    """Years in a sequential ramp (not one random colour each); the project name (XMMC) once per project:
    on its largest plot only, and only at sensible scales."""
    renderer = layer.renderer()
    if isinstance(renderer, QgsCategorizedSymbolRenderer):
        years = [(i, c) for i, c in enumerate(renderer.categories()) if str(c.value()).strip()]
        years.sort(key=lambda pair: str(pair[1].value()))
        for rank, (index, category) in enumerate(years):
            symbol = category.symbol().clone()
            color = _mix(*HSF_RAMP, rank / max(len(years) - 1, 1))
            symbol.symbolLayer(0).setFillColor(QgsSymbolLayerUtils.decodeColor(color))
            renderer.updateCategorySymbol(index, symbol)
    name = _actual_field(layer, "XMMC", mapping)
    labeling = layer.labeling()
    if name is None or not isinstance(labeling, QgsVectorLayerSimpleLabeling):
        return
    settings = labeling.settings()
    settings.isExpression = True
    settings.fieldName = f'if($area = maximum($area, group_by:="{name}"), "{name}", NULL)'
    settings.scaleVisibility = True
    settings.maximumScale = 1
    settings.minimumScale = HSF_LABEL_MAX_SCALE
    layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
    layer.setLabelsEnabled(True)


# Comparison results: one colour per category, declared once. The fill is the colour at RESULT_FILL_ALPHA
# (a separate alpha, never "#rrggbb" + "99": Qt reads 8 hex digits as #AARRGGBB), the outline opaque.
RESULT_PALETTE = {
    "candidate": "#2e7d32",
    "redline": "#c62828",
    "fragile": "#8d6e63",
    "drought": "#f9a825",
    "soil_strict": "#ad1457",
    "enclave": "#6a1b9a",
    "fragment": "#ff7043",
    "nongrain": "#fbc02d",
    "occupied": "#558b2f",
    "to_construction": "#d84315",
    "monitoring": "#e64a19",
    "covered": "#43a047",
    "not_covered": "#e53935",
    "hsf_nonfarmland": "#8e24aa",
    "block": "#1e88e5",
    "added": "#43a047",
    "removed": "#e53935",
    "modified": "#fb8c00",
    "only_a": "#1e88e5",
    "only_b": "#e53935",
    "both": "#9e9e9e",
    "within_tolerance": "#bdbdbd",  # 容差内一致: judged noise, shown but quiet
}
RESULT_FALLBACK_COLORS = ("#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#e53935", "#00897b")
RESULT_FILL_ALPHA = 153  # 60 % opaque


def result_color(value: object, index: int = 0) -> str:
    """The declared ``#rrggbb`` colour of a result category (a fallback colour for unknown categories)."""
    return RESULT_PALETTE.get(str(value), RESULT_FALLBACK_COLORS[index % len(RESULT_FALLBACK_COLORS)])


def _rgba(hex_color: str, alpha: int) -> str:
    """``#rrggbb`` → the ``r,g,b,a`` text QgsSymbolLayerUtils decodes (no QtGui in core)."""
    red, green, blue = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"{red},{green},{blue},{alpha}"


def style_result_layer(layer: QgsVectorLayer, field: str, labels: dict[object, str]) -> None:
    """Categorised renderer of a comparison result on ``field``: value → legend label, colours declared
    in RESULT_PALETTE, fill at RESULT_FILL_ALPHA, outline opaque."""
    categories = []
    for index, value in enumerate(sorted(labels, key=str)):
        color = result_color(value, index)
        symbol = QgsFillSymbol.createSimple(
            {
                "color": _rgba(color, RESULT_FILL_ALPHA),
                "outline_color": _rgba(color, 255),
                "outline_width": "0.4",
            }
        )
        categories.append(QgsRendererCategory(value, symbol, labels[value]))
    layer.setRenderer(QgsCategorizedSymbolRenderer(field, categories))
    layer.triggerRepaint()


def style_comparison_result(layer: QgsVectorLayer) -> None:
    """Style a result layer (fresh or read back from the project GeoPackage) from its own features: by
    ``size_class`` for contiguity, else by ``category`` with ``category_name`` as the legend label."""
    names = layer.fields().names()
    contiguity = False
    for feature in layer.getFeatures():
        contiguity = "contiguity" in str(feature["rule_id"] or "") if "rule_id" in names else False
        break
    field = "size_class" if contiguity and "size_class" in names else "category"
    labels: dict[object, str] = {}
    for feature in layer.getFeatures():
        value = feature[field]
        if value not in labels:
            label = feature["category_name"] if field == "category" and "category_name" in names else value
            labels[value] = str(label)
    style_result_layer(layer, field, labels)


# Change patches by verification status: outline colour per status (fill light), declared once.
PATCH_STATUS_COLORS = {
    "pending": "#e53935",  # 待核查 red
    "in_progress": "#fb8c00",  # 核查中 orange
    "verified": "#1e88e5",  # 已核查 blue
    "approved": "#2e7d32",  # 审核通过 green
    "returned": "#8e24aa",  # 退回 purple
    "disputed": "#d81b60",  # 异议 magenta
}
PATCH_FILL_ALPHA = 40
# Selections must show on yellow farmland (QGIS's default selection colour is yellow): cyan instead.
SELECTION_RGBA = (0, 229, 255, 200)


def patch_status_renderer() -> QgsCategorizedSymbolRenderer:
    """Categorised by ``status`` with the Chinese status names as legend (order of the workflow)."""
    from huijiao_plugin.core.patches.workflow import STATUSES

    categories = []
    for code, label in STATUSES.items():
        color = PATCH_STATUS_COLORS[code]
        symbol = QgsFillSymbol.createSimple(
            {
                "color": _rgba(color, PATCH_FILL_ALPHA),
                "outline_color": _rgba(color, 255),
                "outline_width": "0.8",
            }
        )
        categories.append(QgsRendererCategory(code, symbol, label))
    return QgsCategorizedSymbolRenderer("status", categories)


def _chinese_alias(spec_field: object) -> str:
    """The first alias of a catalog field written in Chinese ("" when there is none)."""
    for alias in getattr(spec_field, "aliases", []):
        if any("\u4e00" <= char <= "\u9fff" for char in alias):
            return alias
    return ""


def style_context_layer(layer: QgsVectorLayer, catalog: Catalog | None = None) -> str | None:
    """A layer shown for context (e.g. in a field package): recognised by its content, given the dataset's
    style, its Chinese name and Chinese field aliases. Returns the dataset id (None when not recognised)."""
    from huijiao_plugin.core.recognition import recognize_layer

    catalog = catalog or get_catalog()
    recognition = recognize_layer(layer, catalog)
    spec = catalog.datasets.get(recognition.dataset_id or "")
    if spec is None:
        return None
    mapping = recognition.field_mapping
    apply_style(layer, spec.id, mapping, catalog)
    for spec_field in spec.fields:
        actual = _actual_field(layer, spec_field.name, mapping)
        alias = _chinese_alias(spec_field)
        if actual and alias:
            layer.setFieldAlias(layer.fields().indexOf(actual), alias)
    layer.setName(spec.name_zh)
    return spec.id
