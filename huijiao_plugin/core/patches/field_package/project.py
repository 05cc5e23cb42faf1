"""外业核查包 project: the QGIS/QField project with edit forms, value lists and the photo relation."""

from __future__ import annotations

import logging
from pathlib import Path

from qgis.core import (
    QgsDefaultValue,
    QgsEditorWidgetSetup,
    QgsMarkerSymbol,
    QgsPalLayerSettings,
    QgsProject,
    QgsRasterLayer,
    QgsRelation,
    QgsRelationContext,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)

from huijiao_plugin.core.patches import schema, workflow
from huijiao_plugin.core.patches.atlas import rule_labels
from huijiao_plugin.core.patches.field_package.common import (
    DESK_EDITABLE,
    PHOTO_DIR,
    PHOTO_FIELDS,
    PHOTOS_LAYER,
    RELATION_ID,
    FieldPackageError,
)
from huijiao_plugin.core.styles import patch_status_renderer, style_context_layer
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ project


def _value_map(labels: dict[str, str]) -> QgsEditorWidgetSetup:
    return QgsEditorWidgetSetup("ValueMap", {"map": [{label: code} for code, label in labels.items()]})


def configure_patch_layer(patches: QgsVectorLayer, desk: bool = True) -> None:
    """Style, labels and edit form of a BGHTB layer: Chinese aliases, value lists for type/status/result, a
    date widget, technical fields hidden and derived/identity fields read-only. ``desk=False`` (field package)
    also makes type, notes and review fields read-only: the crew edits only the field-editable fields. On the
    desk, ``updated_at``/``updated_by``/``edit_source`` are filled on every edit, so the history triggers know
    who changed what."""
    patches.setRenderer(patch_status_renderer())
    label = QgsPalLayerSettings()
    label.fieldName = "number"
    label.enabled = True
    patches.setLabeling(QgsVectorLayerSimpleLabeling(label))
    patches.setLabelsEnabled(True)

    form = patches.editFormConfig()
    for spec in schema.PATCH_FIELDS:
        field_index = patches.fields().indexOf(spec.name)
        patches.setFieldAlias(field_index, spec.alias)
        if spec.name == "status":
            patches.setEditorWidgetSetup(field_index, _value_map(workflow.STATUSES))
        elif spec.name == "result":
            patches.setEditorWidgetSetup(field_index, _value_map(workflow.RESULTS))
        elif spec.name == "patch_type":
            patches.setEditorWidgetSetup(field_index, _value_map(schema.PATCH_TYPES))
        elif spec.name == "rule_id":  # the form and attribute table name the rule, the store keeps its id
            patches.setEditorWidgetSetup(field_index, _value_map(rule_labels()))
        elif spec.name == "source":
            patches.setEditorWidgetSetup(field_index, _value_map(schema.SOURCES))
        elif spec.name == "verify_date":
            patches.setEditorWidgetSetup(
                field_index,
                QgsEditorWidgetSetup(
                    "DateTime",
                    {
                        "field_format": "yyyy-MM-dd",
                        "display_format": "yyyy-MM-dd",
                        "calendar_popup": True,
                        "allow_null": True,
                    },
                ),
            )
        elif spec.name in (
            "rule_params",
            "inputs",
            "created_by",
            "updated_by",
            "edit_source",
            "seq",
            "source_ref",
        ):
            patches.setEditorWidgetSetup(field_index, QgsEditorWidgetSetup("Hidden", {}))
        if not spec.field_editable and (not desk or spec.name not in DESK_EDITABLE):
            form.setReadOnly(field_index, True)
    form.setReadOnly(patches.fields().indexOf("fid"), True)
    patches.setEditorWidgetSetup(patches.fields().indexOf("fid"), QgsEditorWidgetSetup("Hidden", {}))
    patches.setEditFormConfig(form)
    if desk:
        fields = patches.fields()
        patches.setDefaultValueDefinition(
            fields.indexOf("updated_by"), QgsDefaultValue("@user_full_name", True)
        )
        patches.setDefaultValueDefinition(fields.indexOf("updated_at"), QgsDefaultValue("now()", True))
        patches.setDefaultValueDefinition(fields.indexOf("edit_source"), QgsDefaultValue("'desk'", True))


def write_field_project(
    project_path: Path, gpkg: Path, context_layers: list[str], basemap: Path | None, title: str = ""
) -> None:
    """The QGIS/QField project of a package (forms: value lists, date, photo widget, relation)."""
    project = QgsProject()
    project.setTitle(title)
    project.setFileName(str(project_path))
    project.writeEntryBool("Paths", "/Absolute", False)
    crs_layer = QgsVectorLayer(f"{gpkg}|layername={schema.PATCH_LAYER}", "crs", "ogr")
    project.setCrs(crs_layer.crs())
    if basemap is not None:
        project.addMapLayer(QgsRasterLayer(str(basemap), tr("Basemap"), "gdal"))
    # the first context layer ends on top; all but the bottom one are half transparent
    for n, layer_name in enumerate(reversed(context_layers)):
        layer = QgsVectorLayer(f"{gpkg}|layername={layer_name}", layer_name, "ogr")
        if layer.isValid():
            style_context_layer(layer)  # the dataset's style, Chinese name and field aliases
            layer.setReadOnly(True)
            if n > 0:
                layer.setOpacity(0.5)
            project.addMapLayer(layer)

    patches = QgsVectorLayer(f"{gpkg}|layername={schema.PATCH_LAYER}", "变化图斑", "ogr")
    photos = QgsVectorLayer(f"{gpkg}|layername={PHOTOS_LAYER}", "核查照片", "ogr")
    if not patches.isValid() or not photos.isValid():
        raise FieldPackageError(
            tr("The field package GeoPackage cannot be opened: {path}").format(path=str(gpkg))
        )
    configure_patch_layer(patches, desk=False)
    photos.setRenderer(
        QgsSingleSymbolRenderer(QgsMarkerSymbol.createSimple({"name": "triangle", "color": "0,90,255"}))
    )

    pform = photos.editFormConfig()
    for spec in PHOTO_FIELDS:
        field_index = photos.fields().indexOf(spec.name)
        photos.setFieldAlias(field_index, spec.alias)
    photos.setEditorWidgetSetup(
        photos.fields().indexOf("photo"),
        QgsEditorWidgetSetup(
            "ExternalResource",
            {
                "DocumentViewer": 1,
                "DocumentViewerHeight": 0,
                "DocumentViewerWidth": 0,
                "FileWidget": True,
                "FileWidgetButton": True,
                "FileWidgetFilter": "",
                "RelativeStorage": 1,
                "StorageMode": 0,
                "DefaultRoot": PHOTO_DIR,
            },
        ),
    )
    photos.setEditorWidgetSetup(
        photos.fields().indexOf("taken_at"),
        QgsEditorWidgetSetup(
            "DateTime",
            {
                "field_format": "yyyy-MM-ddTHH:mm:ss",
                "display_format": "yyyy-MM-dd HH:mm:ss",
                "calendar_popup": True,
                "allow_null": True,
            },
        ),
    )
    photos.setDefaultValueDefinition(
        photos.fields().indexOf("photo_uuid"), QgsDefaultValue("uuid('WithoutBraces')")
    )
    photos.setDefaultValueDefinition(photos.fields().indexOf("taken_at"), QgsDefaultValue("now()"))
    photos.setDefaultValueDefinition(
        photos.fields().indexOf("photo"),
        QgsDefaultValue("'" + PHOTO_DIR + "/' || format_date(now(), 'yyyyMMdd_HHmmss') || '.jpg'"),
    )
    pform.setReadOnly(photos.fields().indexOf("patch_uuid"), True)
    photos.setEditFormConfig(pform)

    project.addMapLayer(photos)
    project.addMapLayer(patches)

    relation = QgsRelation(QgsRelationContext(project))
    relation.setId(RELATION_ID)
    relation.setName("照片")
    relation.setReferencingLayer(photos.id())
    relation.setReferencedLayer(patches.id())
    relation.addFieldPair("patch_uuid", "uuid")
    relation.setStrength(QgsRelation.RelationStrength.Association)
    if relation.isValid():
        project.relationManager().addRelation(relation)
        form = patches.editFormConfig()
        form.setWidgetConfig(RELATION_ID, {"nm-rel": None, "show-unlinked": False})
        patches.setEditFormConfig(form)
    else:
        log.warning("photo relation of %s is invalid", project_path)
    photos.setEditorWidgetSetup(
        photos.fields().indexOf("patch_uuid"),
        QgsEditorWidgetSetup(
            "RelationReference",
            {"Relation": RELATION_ID, "AllowNULL": False, "ReadOnlyPermits": True, "ShowForm": False},
        ),
    )
    if not project.write():
        raise FieldPackageError(tr("Cannot write the project {path}").format(path=str(project_path)))
