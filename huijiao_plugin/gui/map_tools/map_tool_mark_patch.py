"""标记变化图斑: a map tool that draws change patches (with snapping), turns picked features of any layer into
patches, and splits or merges patches.

Every change goes through the patch layer's edit buffer (one edit command per action), so Undo/Redo of QGIS
works and nothing is written before the user saves the layer edits. The form asks only for what a person
decides (type, reason, notes); identity, number, areas, centroid and region codes are filled in.
"""

from __future__ import annotations

import logging

from qgis.core import (
    Qgis,
    QgsCoordinateTransform,
    QgsFeature,
    QgsFeatureRequest,
    QgsGeometry,
    QgsLineString,
    QgsPoint,
    QgsPointLocator,
    QgsPointXY,
    QgsProject,
    QgsRectangle,
    QgsSnappingConfig,
    QgsTolerance,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.gui import QgsMapCanvasSnappingUtils, QgsMapTool, QgsRubberBand, QgsSnapIndicator
from qgis.PyQt.QtCore import QDate, QDateTime, Qt, QVariant, pyqtSignal
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QLineEdit,
    QPlainTextEdit,
)

from huijiao_plugin.core.patches import schema
from huijiao_plugin.core.patches.atlas_text import region_label, region_names
from huijiao_plugin.core.patches.geometry import RegionLookup, polygon_parts, project_regions
from huijiao_plugin.core.patches.store import PatchStore, PatchStoreError
from huijiao_plugin.core.patches.workflow import WorkflowError
from huijiao_plugin.core.settings import AREA_UNIT_MU
from huijiao_plugin.core.units import UNIT_NAMES, area_text
from huijiao_plugin.gui.widgets.wdg_ok_cancel import ok_cancel_buttons
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

MODE_DRAW = "draw"
MODE_PICK = "pick"
MODE_SPLIT = "split"


def _plain(value):
    """A layer value as the store takes it: None for NULL, ISO text for dates."""
    if value is None or (isinstance(value, QVariant) and value.isNull()):
        return None
    if isinstance(value, QDateTime):
        return value.toString(Qt.DateFormat.ISODateWithMs) if value.isValid() else None
    if isinstance(value, QDate):
        return value.toString("yyyy-MM-dd") if value.isValid() else None
    return value


def _succeeded(result) -> bool:
    """Success of a geometry operation (QgsGeometry.OperationResult or Qgis.GeometryOperationResult)."""
    success = getattr(getattr(Qgis, "GeometryOperationResult", None), "Success", 0)
    return result == success or result == 0


def _area_m2(values: dict) -> float:
    if values.get("area_m2") is not None:
        return float(values["area_m2"])
    return float(values.get("area_mu") or 0.0) * 2000.0 / 3.0


class HuijiaoPatchAttributesDialog(QDialog):
    """Only what a person decides: patch type, reason, notes."""

    def __init__(self, defaults: dict, parent=None, unit: str = AREA_UNIT_MU):
        super().__init__(parent)
        self.setObjectName("HuijiaoPatchAttributesDialog")
        self.setWindowTitle(tr("New change patch"))
        layout = QFormLayout(self)
        self.type_combo = QComboBox(self)
        for code, label in schema.PATCH_TYPES.items():
            self.type_combo.addItem(label, code)
        self.type_combo.setCurrentIndex(max(self.type_combo.findData(defaults.get("patch_type")), 0))
        self.reason_edit = QLineEdit(defaults.get("reason") or "", self)
        self.notes_edit = QPlainTextEdit(defaults.get("notes") or "", self)
        # the area in the user's unit, the regions by name with their codes (names from the project's layers)
        names = region_names()
        info = tr("Area {area}; township {township}; village {village}").format(
            area=f"{area_text(_area_m2(defaults), unit)} {UNIT_NAMES[unit]}",
            township=region_label(defaults.get("township_code") or "", names) or "-",
            village=region_label(defaults.get("village_code") or "", names) or "-",
        )
        layout.addRow(tr("Number"), QLineEdit(defaults.get("number", ""), self, readOnly=True))
        layout.addRow(tr("Computed"), QLineEdit(info, self, readOnly=True))
        layout.addRow(tr("Type"), self.type_combo)
        layout.addRow(tr("Reason"), self.reason_edit)
        layout.addRow(tr("Notes"), self.notes_edit)
        buttons = ok_cancel_buttons(self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addRow(buttons)

    def values(self) -> dict:
        return {
            "patch_type": self.type_combo.currentData(),
            "reason": self.reason_edit.text().strip() or None,
            "notes": self.notes_edit.toPlainText().strip() or None,
        }


class HuijiaoMarkPatchMapTool(QgsMapTool):
    """Left click adds a vertex (snapped), right click finishes; Backspace drops the last vertex, Esc cancels.
    In pick mode a left click makes a patch of the feature under the cursor on any visible polygon layer."""

    patches_changed = pyqtSignal()

    def __init__(self, canvas, iface=None):
        super().__init__(canvas)
        self.setObjectName("HuijiaoMarkPatchMapTool")
        self.iface = iface
        self.store: PatchStore | None = None
        self.layer: QgsVectorLayer | None = None
        self.mode = MODE_DRAW
        self.user = ""  # who edits (the session's unit name, set by the panel)
        self.region_code = ""  # the session's region: county code when no region layer says otherwise
        self.area_unit = AREA_UNIT_MU  # the session's area unit, for the new-patch form
        self.ask_attributes = True  # show the form; False uses the defaults (type 手工标记)
        self.default_type = schema.TYPE_MANUAL
        self.points: list[QgsPointXY] = []
        self._regions: RegionLookup | None = None
        self.snap_to_visible_layers = True
        self._own_snapping = None
        self.rubber = QgsRubberBand(canvas, QgsWkbTypes.GeometryType.PolygonGeometry)
        self.rubber.setColor(QColor(255, 0, 0, 90))
        self.rubber.setStrokeColor(QColor(255, 0, 0))
        self.rubber.setWidth(2)
        self.snap_indicator = QgsSnapIndicator(canvas)
        self.setCursor(Qt.CursorShape.CrossCursor)

    # -- configuration --------------------------------------------------------------------------------------

    def set_store(self, store: PatchStore, layer: QgsVectorLayer | None) -> None:
        self.store = store
        self.layer = layer if layer is not None else store.qgs_layer()
        self._regions = None

    def set_mode(self, mode: str) -> None:
        self.reset()
        self.mode = mode
        geometry_type = (
            QgsWkbTypes.GeometryType.LineGeometry
            if mode == MODE_SPLIT
            else QgsWkbTypes.GeometryType.PolygonGeometry
        )
        self.rubber.reset(geometry_type)

    def regions(self) -> RegionLookup | None:
        """Region lookup from the project's region layers (by recognised dataset), built once per store."""
        if self._regions is None and self.store is not None:
            county = self.store.meta("county_code")
            if not county:
                county = self.region_code if len(self.region_code) == 6 else ""
            self._regions = project_regions(self.store.crs, county, exclude=[self.layer])
        return self._regions

    # -- events ---------------------------------------------------------------------------------------------

    def snapping_utils(self):
        """The project's snapping when the user enabled it, else snapping to the vertices and segments of all
        visible layers (``snap_to_visible_layers``)."""
        utils = self.canvas().snappingUtils()
        if utils.config().enabled() or not self.snap_to_visible_layers:
            return utils
        if self._own_snapping is None:
            self._own_snapping = QgsMapCanvasSnappingUtils(self.canvas(), self)
            config = QgsSnappingConfig(QgsProject.instance())
            config.setEnabled(True)
            config.setMode(QgsSnappingConfig.SnappingMode.AllLayers)
            config.setTypeFlag(
                QgsSnappingConfig.SnappingTypes.VertexFlag | QgsSnappingConfig.SnappingTypes.SegmentFlag
            )
            config.setTolerance(10)
            config.setUnits(QgsTolerance.UnitType.Pixels)
            self._own_snapping.setConfig(config)
        return self._own_snapping

    def _snapped(self, event) -> QgsPointXY:
        match = self.snapping_utils().snapToMap(event.pos())
        self.snap_indicator.setMatch(match)
        if match.isValid():
            return QgsPointXY(match.point())
        return self.toMapCoordinates(event.pos())

    def canvasMoveEvent(self, event):
        point = self._snapped(event)
        if self.points and self.mode in (MODE_DRAW, MODE_SPLIT):
            self._update_rubber(point)

    def canvasReleaseEvent(self, event):
        try:
            self._release(event)
        except Exception as exc:  # an exception escaping a Qt virtual aborts QGIS
            log.exception("mark patch tool failed")
            self._message(str(exc), Qgis.MessageLevel.Critical)

    def _release(self, event):
        if event.button() == Qt.MouseButton.RightButton:
            self.finish()
            return
        if event.button() != Qt.MouseButton.LeftButton:
            return
        point = self._snapped(event)
        if self.mode == MODE_PICK:
            self.pick_at(point)
            return
        self.points.append(point)
        self._update_rubber()

    def keyPressEvent(self, event):
        if event.key() == Qt.Key.Key_Escape:
            self.reset()
            event.accept()
        elif event.key() in (Qt.Key.Key_Backspace, Qt.Key.Key_Delete) and self.points:
            self.points.pop()
            self._update_rubber()
            event.accept()
        elif event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.finish()
            event.accept()
        else:
            event.ignore()

    def deactivate(self):
        self.reset()
        self.snap_indicator.setMatch(QgsPointLocator.Match())
        super().deactivate()

    def reset(self) -> None:
        self.points = []
        self.rubber.reset(
            QgsWkbTypes.GeometryType.LineGeometry
            if self.mode == MODE_SPLIT
            else QgsWkbTypes.GeometryType.PolygonGeometry
        )

    def _update_rubber(self, floating: QgsPointXY | None = None) -> None:
        geometry_type = (
            QgsWkbTypes.GeometryType.LineGeometry
            if self.mode == MODE_SPLIT
            else QgsWkbTypes.GeometryType.PolygonGeometry
        )
        self.rubber.reset(geometry_type)
        for point in [*self.points, *([floating] if floating else [])]:
            self.rubber.addPoint(point, False)
        self.rubber.updatePosition()
        self.rubber.update()

    def finish(self) -> list[int]:
        """Finish the current drawing: a polygon (draw mode) or a split line (split mode)."""
        points = list(self.points)
        self.reset()
        if self.mode == MODE_SPLIT:
            return self.split_with(points) if len(points) >= 2 else []
        if len(points) < 3:
            return []
        return self.create_patches([QgsGeometry.fromPolygonXY([[*points, points[0]]])], self._canvas_crs())

    # -- editing --------------------------------------------------------------------------------------------

    def _canvas_crs(self):
        return self.canvas().mapSettings().destinationCrs()

    def _to_layer(self, geometry: QgsGeometry, crs) -> QgsGeometry:
        geom = QgsGeometry(geometry)
        if crs.isValid() and crs != self.layer.crs():
            geom.transform(QgsCoordinateTransform(crs, self.layer.crs(), QgsProject.instance()))
        return geom

    def _ensure_editing(self) -> bool:
        if self.store is None or self.layer is None:
            self._message(tr("Open or create a change-patch GeoPackage first."), Qgis.MessageLevel.Warning)
            return False
        if not self.layer.isEditable() and not self.layer.startEditing():
            self._message(tr("The patch layer cannot be edited."), Qgis.MessageLevel.Warning)
            return False
        return True

    def _feature(self, geometry: QgsGeometry, values: dict) -> QgsFeature:
        fields = self.layer.fields()
        feature = QgsFeature(fields)
        for name, value in values.items():
            index = fields.indexOf(name)
            if index < 0 or value is None:
                continue
            if name in ("created_at", "updated_at"):
                value = QDateTime.fromString(str(value), Qt.DateFormat.ISODateWithMs)
            feature.setAttribute(index, value)
        feature.setGeometry(geometry)
        return feature

    def create_patches(
        self, geometries: list[QgsGeometry], crs, source: str = schema.SOURCE_MANUAL, source_ref: str = ""
    ) -> list[int]:
        """Add one patch per geometry (``crs`` = their CRS) to the layer edit buffer; returns feature ids."""
        if not self._ensure_editing():
            return []
        user = self.user
        added: list[int] = []
        for geometry in geometries:
            try:
                geom, values = self.store.new_patch_values(
                    self._to_layer(geometry, crs), self.regions(), user=user
                )
            except PatchStoreError as exc:
                self._message(str(exc), Qgis.MessageLevel.Warning)
                continue
            values.update(
                {"patch_type": self.default_type, "source": source, "source_ref": source_ref or None}
            )
            if self.ask_attributes:
                dialog = HuijiaoPatchAttributesDialog(values, self.canvas(), self.area_unit)
                if dialog.exec() != QDialog.DialogCode.Accepted:
                    continue
                values.update(dialog.values())
            feature = self._feature(geom, values)
            self.layer.beginEditCommand(tr("Mark change patch {number}").format(number=values["number"]))
            ok = self.layer.addFeature(feature)
            self.layer.endEditCommand()
            if ok:
                added.append(feature.id())
        self.layer.triggerRepaint()
        if added:
            self.patches_changed.emit()
        return added

    def pick_at(self, point: QgsPointXY) -> list[int]:
        """Make a patch of the polygon feature under ``point`` (canvas CRS) on the topmost visible layer."""
        radius = self.searchRadiusMU(self.canvas())
        rect = QgsRectangle(point.x() - radius, point.y() - radius, point.x() + radius, point.y() + radius)
        canvas_crs = self._canvas_crs()
        for layer in self.canvas().layers():
            if not isinstance(layer, QgsVectorLayer) or layer is self.layer:
                continue
            if layer.geometryType() != QgsWkbTypes.GeometryType.PolygonGeometry:
                continue
            to_layer = QgsCoordinateTransform(canvas_crs, layer.crs(), QgsProject.instance())
            layer_rect = to_layer.transformBoundingBox(rect)
            probe = QgsGeometry.fromPointXY(to_layer.transform(point))
            for feature in layer.getFeatures(QgsFeatureRequest().setFilterRect(layer_rect)):
                if feature.geometry().intersects(probe):
                    return self.create_patches(
                        [feature.geometry()],
                        layer.crs(),
                        schema.SOURCE_FEATURE,
                        f"{layer.name()}:{feature.id()}",
                    )
        self._message(tr("No polygon feature under the cursor."), Qgis.MessageLevel.Info)
        return []

    def create_from_selection(self, layer: QgsVectorLayer) -> list[int]:
        """One patch per selected polygon feature of ``layer`` (any layer, any CRS)."""
        if (
            layer is None
            or layer is self.layer
            or layer.geometryType() != QgsWkbTypes.GeometryType.PolygonGeometry
        ):
            self._message(tr("Select polygon features on another layer first."), Qgis.MessageLevel.Info)
            return []
        features = layer.selectedFeatures()
        if not features:
            self._message(tr("Select polygon features on another layer first."), Qgis.MessageLevel.Info)
            return []
        added: list[int] = []
        for feature in features:
            added += self.create_patches(
                [feature.geometry()], layer.crs(), schema.SOURCE_FEATURE, f"{layer.name()}:{feature.id()}"
            )
        return added

    def _refresh_derived(self, fid: int) -> None:
        feature = self.layer.getFeature(fid)
        geom = polygon_parts(feature.geometry())
        if geom is None:
            return
        values = self.store.derived.compute(geom)
        values.update({k: v for k, v in (self.regions().lookup(geom) if self.regions() else {}).items() if v})
        fields = self.layer.fields()
        self.layer.changeAttributeValues(
            fid, {fields.indexOf(k): v for k, v in values.items() if fields.indexOf(k) >= 0}
        )

    def split_with(self, points: list[QgsPointXY]) -> list[int]:
        """Split the patches crossed by the line ``points`` (canvas CRS). The largest part keeps the patch's
        identity; every other part becomes a new patch with its own UUID and number. Returns new ids."""
        if not self._ensure_editing():
            return []
        line = self._to_layer(QgsGeometry.fromPolylineXY(points), self._canvas_crs())
        curve = QgsLineString([QgsPoint(p) for p in line.asPolyline()])
        before = {f.id(): f["uuid"] for f in self.layer.getFeatures()}
        self.layer.beginEditCommand(tr("Split change patches"))
        result, _test_points = self.layer.splitFeatures(curve, False, False)
        if not _succeeded(result):
            self.layer.destroyEditCommand()
            self._message(tr("The line does not split any patch."), Qgis.MessageLevel.Info)
            return []
        new_ids: list[int] = []
        user = self.user
        for feature in self.layer.getFeatures():
            if feature.id() in before:
                continue
            parent_uuid = feature["uuid"]
            _geom, values = self.store.new_patch_values(feature.geometry(), self.regions(), user=user)
            for key in ("patch_type", "reason", "rule_id", "rule_params", "inputs", "notes"):
                values[key] = feature[key]
            values["source_ref"] = f"split:{parent_uuid}"
            fields = self.layer.fields()
            for name, value in values.items():
                index = fields.indexOf(name)
                if index >= 0:
                    if name in ("created_at", "updated_at"):
                        value = QDateTime.fromString(str(value), Qt.DateFormat.ISODateWithMs)
                    self.layer.changeAttributeValue(feature.id(), index, value)
            new_ids.append(feature.id())
        for fid in list(before):
            self._refresh_derived(fid)
        self.layer.endEditCommand()
        self.layer.triggerRepaint()
        self.patches_changed.emit()
        return new_ids

    def merge_selected(self) -> int | None:
        """Merge the selected patches into the one with the smallest number (its identity is kept; the others
        are deleted, which the history records on save). Returns the kept feature id."""
        if not self._ensure_editing():
            return None
        features = sorted(self.layer.selectedFeatures(), key=lambda f: f["number"] or "")
        if len(features) < 2:
            self._message(tr("Select at least two patches to merge."), Qgis.MessageLevel.Info)
            return None
        keep = features[0]
        merged = QgsGeometry.unaryUnion([f.geometry() for f in features])
        merged = polygon_parts(merged)
        if merged is None:
            return None
        self.layer.beginEditCommand(tr("Merge change patches"))
        self.layer.changeGeometry(keep.id(), merged)
        self._refresh_derived(keep.id())
        self.layer.deleteFeatures([f.id() for f in features[1:]])
        self.layer.endEditCommand()
        self.layer.triggerRepaint()
        self.patches_changed.emit()
        return keep.id()

    def save(self) -> bool:
        """Write the layer's edit buffer through the store (new patches, then changes, then deletions, in one
        transaction) and drop the buffer. A reshape and its new area go in one UPDATE, so the history shows
        the area before and after (QGIS's own commit writes geometry and attributes in two UPDATEs)."""
        if self.layer is None or not self.layer.isEditable():
            return True
        if self.store is None:
            return False
        buffer = self.layer.editBuffer()
        fields = self.layer.fields()
        provider = self.layer.dataProvider()

        def uuid_of(fid: int) -> str:
            return next(provider.getFeatures(QgsFeatureRequest(fid)))["uuid"]

        added = [
            (QgsGeometry(f.geometry()), {field.name(): _plain(v) for field, v in zip(fields, f.attributes())})
            for f in buffer.addedFeatures().values()
        ]
        changed: dict[str, dict] = {}
        for fid, attributes in buffer.changedAttributeValues().items():
            if fid >= 0:
                values = {fields.at(i).name(): _plain(v) for i, v in attributes.items()}
                changed.setdefault(uuid_of(fid), {}).update(values)
        for fid, geometry in buffer.changedGeometries().items():
            if fid >= 0:
                entry = changed.setdefault(uuid_of(fid), {})
                entry["geometry"] = QgsGeometry(geometry)
                regions = self.regions()
                entry.update({k: v for k, v in (regions.lookup(geometry) if regions else {}).items() if v})
        deleted = [uuid_of(fid) for fid in buffer.deletedFeatureIds() if fid >= 0]
        for values in changed.values():
            for key in ("fid", "updated_at", "updated_by", "edit_source"):
                values.pop(key, None)
        try:
            self.store.apply_edits(added, changed, deleted, user=self.user)
        except (PatchStoreError, WorkflowError) as exc:
            self._message(str(exc), Qgis.MessageLevel.Warning)
            return False
        self.layer.rollBack()  # everything is in the store now
        self.layer.reload()
        self.layer.triggerRepaint()
        self.patches_changed.emit()
        return True

    def _message(self, text: str, level=Qgis.MessageLevel.Info) -> None:
        if self.iface is not None:
            try:
                self.iface.messageBar().pushMessage(tr("Change patches"), text, level, 5)
                return
            except (AttributeError, TypeError):
                pass
        log.info(text)
