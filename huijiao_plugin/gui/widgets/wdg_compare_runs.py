"""Under the 耕地比对 results: earlier runs saved in the project GeoPackage (listed, reloadable) and the
button that turns the shown result (all pieces or the selected ones) into change patches of the county's
patch store (rule, source versions and numbers kept; a re-run creates nothing twice)."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsFeatureRequest, QgsVectorLayer
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QGridLayout, QLabel, QPushButton, QWidget

from huijiao_plugin.core.compare import provenance
from huijiao_plugin.core.compare_results import ResultsError, load_run, run_layer_names
from huijiao_plugin.core.patches.from_comparison import patches_from_comparison
from huijiao_plugin.core.patches.geometry import project_regions
from huijiao_plugin.core.patches.store import PatchStore, PatchStoreError
from huijiao_plugin.core.session import Session
from huijiao_plugin.toolbelt.i18n import tr


class HuijiaoCompareRunsWidget(QWidget):
    """Saved runs and "make change patches" for the comparison panel."""

    #: a saved run was read back from the project GeoPackage (the layer, not yet in the project)
    runLoaded = pyqtSignal(object)  # noqa: N815 (Qt signal naming)
    #: text for the user after an action
    message = pyqtSignal(str, bool)

    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.session = session
        self.layer: QgsVectorLayer | None = None  # the result shown last
        self.last_import = None
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        self.runs_combo = QComboBox(self)
        self.runs_combo.setObjectName("HuijiaoCompareRuns")
        self.runs_combo.setToolTip(tr("Comparison runs saved in the project GeoPackage"))
        self.runs_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.runs_combo.setMinimumContentsLength(8)
        self.load_button = QPushButton(tr("Load"), self)
        self.load_button.setToolTip(tr("Add the chosen saved run to the map"))
        self.patches_button = QPushButton(tr("Make change patches"), self)
        self.patches_button.setObjectName("HuijiaoComparePatches")
        self.patches_button.setToolTip(
            tr("Turn the result into change patches of the patch store opened in the change-patch panel")
        )
        self.selected_only = QCheckBox(tr("Selected pieces only"), self)
        grid.addWidget(QLabel(tr("Saved runs"), self), 0, 0)
        grid.addWidget(self.runs_combo, 0, 1)
        grid.addWidget(self.load_button, 0, 2)
        grid.addWidget(self.patches_button, 1, 0, 1, 2)
        grid.addWidget(self.selected_only, 1, 2)
        grid.setColumnStretch(1, 1)
        self.load_button.clicked.connect(self.load_selected_run)
        self.patches_button.clicked.connect(self.make_patches)
        self.set_result(None)

    def refresh_runs(self) -> None:
        path = self.session.project_geopackage()
        current = self.runs_combo.currentText()
        self.runs_combo.clear()
        for name in run_layer_names(path):
            self.runs_combo.addItem(name, str(path))
        index = self.runs_combo.findText(current)
        if index >= 0:
            self.runs_combo.setCurrentIndex(index)
        self.load_button.setEnabled(self.runs_combo.count() > 0)

    def set_result(self, layer: QgsVectorLayer | None) -> None:
        self.layer = layer
        self.patches_button.setEnabled(layer is not None)
        self.refresh_runs()

    def load_selected_run(self) -> QgsVectorLayer | None:
        name = self.runs_combo.currentText()
        if not name:
            return None
        try:
            layer = load_run(self.runs_combo.currentData(), name)
        except ResultsError as exc:
            self.message.emit(str(exc), True)
            return None
        self.runLoaded.emit(layer)
        return layer

    def make_patches(self):
        """Patches from the shown result in the session's patch store; returns the ComparisonImport."""
        layer = self.layer
        path = self.session.patch_store_path
        if layer is None:
            return None
        if not path or not Path(path).exists():
            self.message.emit(
                tr("Open or create a change-patch GeoPackage in the change-patch panel first."), True
            )
            return None
        source = layer
        if self.selected_only.isChecked():
            if not layer.selectedFeatureCount():
                self.message.emit(tr("Select pieces of the result on the map first."), True)
                return None
            source = layer.materialize(QgsFeatureRequest().setFilterFids(layer.selectedFeatureIds()))
        try:
            store = PatchStore(path)
            county = store.meta("county_code") or self.session.settings.region_code[:6]
            outcome = patches_from_comparison(
                store,
                source,
                county_code=county,
                regions=project_regions(store.crs, county, exclude=[layer]),
                user=self.session.settings.unit_name,
                record=provenance.read_metadata(layer),
            )
        except (PatchStoreError, ValueError) as exc:
            self.message.emit(str(exc), True)
            return None
        self.last_import = outcome
        self.session.patchesChanged.emit()
        self.message.emit(outcome.summary(), False)
        return outcome
