"""The 提交 page of the 成果汇交 panel: dataset, period and region, the layers to submit, the pre-flight
findings (double-click to zoom), the main actions with their progress and the receipt. The panel drives it."""

from __future__ import annotations

import datetime as _dt
import logging

from qgis.core import QgsApplication, QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QBrush, QColor
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QTextEdit,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from huijiao_plugin.core.one_map import DATASET_PROPERTY
from huijiao_plugin.core.preflight import ERROR, PreflightReport
from huijiao_plugin.core.session import Session
from huijiao_plugin.gui.widgets.wdg_line_label import HuijiaoLineLabel
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

FID_ROLE = Qt.ItemDataRole.UserRole + 1
LAYER_ROLE = Qt.ItemDataRole.UserRole + 2


class HuijiaoSubmitForm(QWidget):
    """The widgets of the 提交 page and what concerns only them (dataset list, layer list, findings)."""

    def __init__(self, session: Session, canvas, parent=None):
        super().__init__(parent)
        self.setObjectName("HuijiaoSubmitForm")
        self.session = session
        self.canvas = canvas
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.dataset_combo = QComboBox(self)
        self.dataset_combo.setObjectName("HuijiaoSubmitDatasetCombo")
        self.dataset_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.dataset_combo.setMinimumContentsLength(12)
        form.addRow(tr("Dataset"), self.dataset_combo)
        self.period_edit = QLineEdit(str(_dt.date.today().year), self)
        self.period_edit.setObjectName("HuijiaoSubmitPeriodEdit")
        self.period_edit.setToolTip(tr("A year (2025), a half-year (2025H1) or a quarter (2025Q3)."))
        self.region_edit = QLineEdit(self)
        self.region_edit.setObjectName("HuijiaoSubmitRegionEdit")
        self.region_edit.setToolTip(tr("The region of the data; inside your own region (settings)."))
        row = QHBoxLayout()
        row.addWidget(self.period_edit, 1)
        row.addWidget(QLabel(tr("Region"), self))
        row.addWidget(self.region_edit, 1)
        form.addRow(tr("Period"), row)
        layout.addLayout(form)
        self.layer_list = QListWidget(self)
        self.layer_list.setObjectName("HuijiaoSubmitLayerList")
        self.layer_list.setToolTip(tr("Layers to submit (a dataset layer, or patches with their results)"))
        self.layer_list.setMinimumHeight(40)
        layout.addWidget(self.layer_list, 2)
        row = QHBoxLayout()
        self.refresh_layers_button = QToolButton(self)
        self.refresh_layers_button.setIcon(QgsApplication.getThemeIcon("mActionRefresh.svg"))
        self.refresh_layers_button.setToolTip(tr("Refresh layers"))
        self.validate_button = QPushButton(tr("Validate"), self)
        self.validate_button.setObjectName("HuijiaoSubmitValidateButton")
        self.validate_button.setToolTip(tr("Check the ticked layers before submitting"))
        row.addWidget(self.refresh_layers_button)
        row.addWidget(self.validate_button, 1)
        layout.addLayout(row)
        self.findings_tree = QTreeWidget(self)
        self.findings_tree.setObjectName("HuijiaoSubmitFindings")
        self.findings_tree.setHeaderLabels([tr("Severity"), tr("Finding"), tr("Features")])
        self.findings_tree.setRootIsDecorated(False)
        self.findings_tree.itemDoubleClicked.connect(self._zoom_to_finding)
        self.findings_tree.setColumnWidth(0, 48)
        self.findings_tree.setColumnWidth(1, 260)
        self.findings_tree.setWordWrap(True)
        self.findings_tree.setMinimumHeight(40)
        layout.addWidget(self.findings_tree, 3)
        self.accept_warnings_check = QCheckBox(tr("I have checked the warnings and accept them"), self)
        layout.addWidget(self.accept_warnings_check)
        # the main action and its progress stay together at the bottom, always visible
        row = QHBoxLayout()
        self.submit_button = QPushButton(
            QgsApplication.getThemeIcon("mActionSharingExport.svg"), tr("Submit"), self
        )
        self.submit_button.setObjectName("HuijiaoSubmitButton")
        self.submit_button.setDefault(True)
        self.pause_button = QPushButton(tr("Pause"), self)
        self.cancel_button = QPushButton(tr("Cancel"), self)
        self.export_button = QToolButton(self)
        self.export_button.setObjectName("HuijiaoSubmitExportButton")
        self.export_button.setIcon(QgsApplication.getThemeIcon("mActionFileSave.svg"))
        self.export_button.setToolTip(tr("Export offline package…"))
        row.addWidget(self.submit_button, 2)
        row.addWidget(self.pause_button, 1)
        row.addWidget(self.cancel_button, 1)
        row.addWidget(self.export_button)
        layout.addLayout(row)
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setObjectName("HuijiaoSubmitProgress")
        self.progress_bar.setRange(0, 1000)
        self.progress_label = HuijiaoLineLabel(self)
        self.progress_label.setObjectName("HuijiaoSubmitProgressLabel")
        self.progress_label.setWordWrap(True)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.progress_label)
        self.pending_label = HuijiaoLineLabel(self)
        self.pending_label.setObjectName("HuijiaoSubmitPendingLabel")
        self.pending_label.setWordWrap(True)
        layout.addWidget(self.pending_label)
        self.receipt_view = QTextEdit(self)
        self.receipt_view.setObjectName("HuijiaoSubmitReceipt")
        self.receipt_view.setReadOnly(True)
        self.receipt_view.setMinimumHeight(30)
        self.receipt_view.setPlaceholderText(tr("The server's receipt appears here after a submission."))
        layout.addWidget(self.receipt_view, 2)

    def fill_datasets(self) -> None:
        current = self.dataset_combo.currentData()
        self.dataset_combo.clear()
        try:
            from huijiao_plugin.core.catalog import get_catalog

            catalog = get_catalog(self.session.settings.catalog_override_path or None)
            specs = catalog.ordered()
        except Exception as error:  # a broken catalog leaves the list empty, the panel still works
            log.warning("catalog unavailable: %s", error)
            specs = []
        for spec in specs:
            self.dataset_combo.addItem(spec.name_zh, spec.id)
            self.dataset_combo.setItemData(self.dataset_combo.count() - 1, spec.layer_names, LAYER_ROLE)
            self.dataset_combo.setItemData(
                self.dataset_combo.count() - 1, spec.name_zh, Qt.ItemDataRole.ToolTipRole
            )
        if current:
            index = self.dataset_combo.findData(current)
            if index >= 0:
                self.dataset_combo.setCurrentIndex(index)

    def refresh_layers(self) -> None:
        """List the project's spatial vector layers; keep the user's ticks, and when nothing is ticked
        tick the layers that the 一张图 loading recognised as the chosen dataset."""
        items = [self.layer_list.item(i) for i in range(self.layer_list.count())]
        checked = {
            item.data(Qt.ItemDataRole.UserRole)
            for item in items
            if item.checkState() == Qt.CheckState.Checked
        }
        if not checked:
            dataset_id = self.dataset_combo.currentData()
            checked = {
                layer.id()
                for layer in QgsProject.instance().mapLayers().values()
                if dataset_id and layer.customProperty(DATASET_PROPERTY) == dataset_id
            }
        self.layer_list.clear()
        for layer in QgsProject.instance().mapLayers().values():
            if not isinstance(layer, QgsVectorLayer) or not layer.isSpatial():
                continue
            item = QListWidgetItem(layer.name(), self.layer_list)
            item.setData(Qt.ItemDataRole.UserRole, layer.id())
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if layer.id() in checked else Qt.CheckState.Unchecked)

    def select_layers(self, layers: list[QgsVectorLayer], dataset_id: str | None = None) -> None:
        """Check ``layers`` in the list (and pick ``dataset_id``): what the user does by hand."""
        self.refresh_layers()
        ids = {layer.id() for layer in layers}
        for i in range(self.layer_list.count()):
            item = self.layer_list.item(i)
            item.setCheckState(
                Qt.CheckState.Checked
                if item.data(Qt.ItemDataRole.UserRole) in ids
                else Qt.CheckState.Unchecked
            )
        if dataset_id:
            index = self.dataset_combo.findData(dataset_id)
            if index >= 0:
                self.dataset_combo.setCurrentIndex(index)

    def selected_layers(self) -> list[QgsVectorLayer]:
        out = []
        for i in range(self.layer_list.count()):
            item = self.layer_list.item(i)
            if item.checkState() == Qt.CheckState.Checked:
                layer = QgsProject.instance().mapLayer(item.data(Qt.ItemDataRole.UserRole))
                if isinstance(layer, QgsVectorLayer):
                    out.append(layer)
        return out

    def show_report(self, report: PreflightReport) -> None:
        self.findings_tree.clear()
        for finding in report.findings:
            item = QTreeWidgetItem(
                [
                    tr("Error") if finding.severity == ERROR else tr("Warning"),
                    finding.message,
                    str(finding.count),
                ]
            )
            item.setData(0, FID_ROLE, finding.fids)
            item.setData(0, LAYER_ROLE, finding.layer_id)
            item.setToolTip(1, finding.message)
            if finding.severity == ERROR:
                item.setForeground(0, QBrush(QColor("#c0392b")))
            self.findings_tree.addTopLevelItem(item)
        if not report.findings:
            self.findings_tree.addTopLevelItem(QTreeWidgetItem([tr("OK"), tr("No problem found."), ""]))

    def _zoom_to_finding(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        fids = item.data(0, FID_ROLE) or []
        layer = QgsProject.instance().mapLayer(item.data(0, LAYER_ROLE) or "")
        if not fids or not isinstance(layer, QgsVectorLayer):
            return
        layer.selectByIds([int(f) for f in fids])
        canvas = self.canvas
        canvas.zoomToFeatureIds(layer, [int(f) for f in fids])
        canvas.flashFeatureIds(layer, [int(f) for f in fids])
