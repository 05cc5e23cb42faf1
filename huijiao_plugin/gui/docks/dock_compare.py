"""The 耕地比对 (farmland comparison) panel: choose a preset, inputs pre-filled from the recognised roles,
rule parameters with defaults, run as a QgsTask (progress, cancel), styled result layers, a sortable
statistics table with xlsx export and a one-line summary ("划入候选 1,234 块，5,678.9 亩")."""

from __future__ import annotations

import logging
import re

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsFeedback,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsTask,
    QgsVectorLayer,
)
from qgis.gui import QgsDockWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from huijiao_plugin.core.catalog import DATASET_ROLES
from huijiao_plugin.core.compare.engine import CompareCanceledError, CompareError, CountyOverlay
from huijiao_plugin.core.compare.presets import LEVELS, PRESETS, run_preset
from huijiao_plugin.core.compare.rules import RuleProfile, RuleProfileError
from huijiao_plugin.core.compare.statistics import region_statistics, result_layer
from huijiao_plugin.core.compare_results import ResultsError, save_run
from huijiao_plugin.core.session import Session
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.core.stat_table import write_stat_table_xlsx
from huijiao_plugin.core.styles import style_comparison_result
from huijiao_plugin.core.units import UNIT_NAMES, area_text
from huijiao_plugin.core.xlsx import XlsxError
from huijiao_plugin.gui.wdg_preset_params import PresetParamsWidget
from huijiao_plugin.gui.wdg_user_context import HuijiaoUserContextWidget
from huijiao_plugin.gui.widgets.wdg_compare_runs import HuijiaoCompareRunsWidget
from huijiao_plugin.gui.widgets.wdg_compare_stats import HuijiaoCompareStatsTable
from huijiao_plugin.gui.widgets.wdg_province_run import WdgProvinceRun
from huijiao_plugin.processing.algorithms.compare_common import ROLE_LABELS
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

PRESET_ORDER = list(PRESETS)  # the declaration order
ALL_ROLES = ["DLTB", "DLTB_N1", "PBF", "HSF", "STBHHX", "YZGHQ", "TRHJZL", "JCTB", "A", "B", "XZQ", "CJDCQ"]
# catalog dataset id -> role (core/recognition.py)
# fallback: layer-name hints per role (upper case, without separators)
NAME_HINTS = {
    "DLTB": ("DLTB",),
    "PBF": ("YJJBNTBHTB", "YJJBNTTB", "JBNTBHTB", "YJJBNT"),
    "HSF": ("GBZNT", "GBZ", "高标准"),
    "STBHHX": ("STBHHX", "生态保护红线"),
    "YZGHQ": ("YZGHQ", "干旱"),
    "TRHJZL": ("TRHJZL", "土壤环境"),
    "JCTB": ("JCTB", "监测图斑"),
    "XZQ": ("XZQ",),
    "CJDCQ": ("CJDCQ",),
}


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-\.]", "", name).upper()


def _year(layer: QgsVectorLayer) -> int:
    """The data year of a layer: SJNF of its first feature, else a year in its name, else 0."""
    index = layer.fields().lookupField("SJNF")
    if index >= 0:
        for feature in layer.getFeatures():
            try:
                return int(feature.attributes()[index])
            except (TypeError, ValueError):
                break
    match = re.search(r"(19|20)\d\d", layer.name())
    return int(match.group(0)) if match else 0


def guess_roles(layers: list[QgsVectorLayer]) -> dict[str, QgsVectorLayer]:
    """Role -> layer from the catalog recognition (if available), else from layer-name hints; two DLTB layers
    become DLTB (older) and DLTB_N1 (newer)."""
    found: dict[str, list[QgsVectorLayer]] = {}
    unplaced = []
    try:
        from huijiao_plugin.core.recognition import recognize_layer
    except ImportError:  # the catalog is optional for this panel
        recognize_layer = None
    for layer in layers:
        role = None
        if recognize_layer is not None:
            try:
                role = DATASET_ROLES.get(recognize_layer(layer).dataset_id or "")
            except Exception:  # recognition must never break the panel
                log.exception("role recognition failed for %s", layer.name())
        if role is None:
            unplaced.append(layer)
        else:
            found.setdefault(role, []).append(layer)
    for layer in unplaced:
        name = _norm(layer.name())
        for role, hints in NAME_HINTS.items():
            if any(name.startswith(_norm(h)) for h in hints):
                found.setdefault(role, []).append(layer)
                break
    roles: dict[str, QgsVectorLayer] = {}
    for role, candidates in found.items():
        if role == "DLTB" and len(candidates) > 1:
            ordered = sorted(candidates, key=lambda lyr: (_year(lyr), "N1" in _norm(lyr.name())))
            roles["DLTB"], roles["DLTB_N1"] = ordered[0], ordered[-1]
        else:
            roles[role] = candidates[0]
    return roles


class HuijiaoCompareTask(QgsTask):
    """One preset in the background; the overlay snapshots the layers in the constructor (main thread)."""

    def __init__(self, preset_id, layers, profile, options, level):
        super().__init__(tr("Farmland comparison"), QgsTask.Flag.CanCancel)
        self.preset_id = preset_id
        self.options = options
        self.level = level
        self.feedback = QgsFeedback()
        self.feedback.progressChanged.connect(self.setProgress, Qt.ConnectionType.DirectConnection)
        self.overlay = CountyOverlay(layers, profile, feedback=self.feedback)
        self.result = None
        self.rows = []
        self.error = ""

    def run(self):
        try:
            self.result = run_preset(self.preset_id, self.overlay, self.options)
            self.rows = region_statistics([self.result], self.level)
        except CompareCanceledError:
            self.error = tr("Canceled.")
            return False
        except CompareError as exc:
            self.error = str(exc)
            return False
        except Exception as exc:  # a bug must end the task, not QGIS
            log.exception("comparison failed")
            self.error = tr("Comparison failed: {error}").format(error=exc)
            return False
        self.setProgress(100)
        return True

    def cancel(self):
        self.feedback.cancel()
        super().cancel()


class HuijiaoCompareDock(QgsDockWidget):
    """Farmland comparison by policy rule presets."""

    def __init__(self, iface, session: Session | None = None, parent=None):
        super().__init__(parent)
        self.iface = iface
        self.session = session if session is not None else Session.load()
        self.setObjectName("HuijiaoCompareDock")
        self.setWindowTitle(tr("Farmland comparison"))
        self.task = None
        self.result = None
        self.rows = []
        self.result_layers = []
        body = QWidget(self)
        layout = QVBoxLayout(body)
        self.context_widget = HuijiaoUserContextWidget(
            tr(
                "Compare the farmland boundaries of the natural-resources and the agriculture departments "
                "by policy rules and list every difference with its ellipsoidal area."
            ),
            ("department", "region", "area_unit"),
            body,
        )
        layout.addWidget(self.context_widget)

        top = QFormLayout()
        self.preset_combo = QComboBox(body)
        self.preset_combo.setObjectName("HuijiaoComparePreset")
        for preset_id in PRESET_ORDER:
            self.preset_combo.addItem(tr(PRESETS[preset_id].title), preset_id)
        top.addRow(tr("Rule"), self.preset_combo)
        layout.addLayout(top)
        # two pages so each gets the dock's height: what goes in (scrolls) and what came out
        self.pages = QTabWidget(body)
        self.pages.setObjectName("HuijiaoComparePages")
        inputs_scroll = QScrollArea(self.pages)
        inputs_scroll.setWidgetResizable(True)
        inputs_scroll.setFrameShape(QFrame.Shape.NoFrame)
        inputs_page = QWidget(inputs_scroll)
        inputs_layout = QVBoxLayout(inputs_page)
        inputs_scroll.setWidget(inputs_page)
        results_page = QWidget(self.pages)
        results_layout = QVBoxLayout(results_page)
        self.pages.addTab(inputs_scroll, tr("Inputs"))
        self.pages.addTab(results_page, tr("Results"))
        # the whole province, county by county, with the preset and parameters chosen on the Inputs page
        province_scroll = QScrollArea(self.pages)  # scrolls below its minimum, never grows the dock
        province_scroll.setWidgetResizable(True)
        province_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.province_widget = WdgProvinceRun(
            lambda: (self.preset_id(), self.params_widget.values()), province_scroll
        )
        province_scroll.setWidget(self.province_widget)
        self.pages.addTab(province_scroll, tr("Province"))
        layout.addWidget(self.pages, 1)
        self.help_label = QLabel(body)
        self.help_label.setWordWrap(True)
        inputs_layout.addWidget(self.help_label)

        self.inputs_form = QFormLayout()
        # long Chinese labels would squeeze the layer choosers: each chooser goes below its label, full width
        self.inputs_form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)
        self.role_combos = {}
        self.role_labels = {}
        for role in ALL_ROLES:
            combo = QgsMapLayerComboBox(body)
            combo.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
            combo.setAllowEmptyLayer(True)
            combo.setLayer(None)
            combo.setObjectName(f"HuijiaoCompareInput{role}")
            label = QLabel(tr(ROLE_LABELS[role]), body)
            self.inputs_form.addRow(label, combo)
            self.role_combos[role] = combo
            self.role_labels[role] = label
        inputs_layout.addLayout(self.inputs_form)
        self.recognize_button = QPushButton(tr("Fill inputs from recognised layers"), body)
        inputs_layout.addWidget(self.recognize_button)

        self.params_widget = PresetParamsWidget(body)  # the preset's parameters (PresetSpec)
        inputs_layout.addWidget(self.params_widget)
        params = QFormLayout()
        self.level_combo = QComboBox(body)
        for level, label in zip(LEVELS, (tr("County"), tr("Township"), tr("Village"))):
            self.level_combo.addItem(label, level)
        self.level_combo.setCurrentIndex(1)
        params.addRow(tr("Statistics by"), self.level_combo)
        inputs_layout.addLayout(params)
        inputs_layout.addStretch(1)

        buttons = QHBoxLayout()
        self.run_button = QPushButton(tr("Run"), body)
        self.run_button.setObjectName("HuijiaoCompareRun")
        self.cancel_button = QPushButton(tr("Cancel"), body)
        self.cancel_button.setEnabled(False)
        self.export_button = QPushButton(tr("Export xlsx…"), body)
        self.export_button.setEnabled(False)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.export_button)
        layout.addLayout(buttons)
        self.progress = QProgressBar(body)
        self.progress.setRange(0, 100)
        layout.addWidget(self.progress)
        self.summary_label = QLabel(body)
        self.summary_label.setObjectName("HuijiaoCompareSummary")
        self.summary_label.setWordWrap(True)
        results_layout.addWidget(self.summary_label)
        self.runs_widget = HuijiaoCompareRunsWidget(self.session, body)
        self.runs_widget.runLoaded.connect(self.add_result_layer)
        self.runs_widget.message.connect(lambda text, error: self._message(text, error=error))
        results_layout.addWidget(self.runs_widget)
        self.table = HuijiaoCompareStatsTable(body)
        results_layout.addWidget(self.table, 1)
        self.setWidget(body)

        self.preset_combo.currentIndexChanged.connect(self._preset_changed)
        self.recognize_button.clicked.connect(self.prefill)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(self._export_clicked)
        self._preset_changed()
        self.prefill()
        # layers added later (a project opened after the plugin started) fill the inputs still empty
        project = QgsProject.instance()
        self._project_connection = (project.layersAdded, project.layersAdded.connect(self._layers_added))
        self.apply_settings(self.session.settings)
        self.session.settingsChanged.connect(self.apply_settings)

    def _layers_added(self, _layers) -> None:
        self.prefill()

    def unload(self) -> None:
        """Called by the plugin's unload: stop a province run and following the project."""
        self.province_widget.unload()
        signal, connection = self._project_connection
        try:
            signal.disconnect(connection)
        except TypeError:  # already disconnected
            pass

    def apply_settings(self, settings: HuijiaoSettings) -> None:
        """Show the department, region and server the panel works with."""
        self.context_widget.apply_settings(settings)
        if self.rows:  # the statistics follow the area unit
            self.fill_table(self.rows)
            self.summary_label.setText(self.summary_text(self.result))

    # --- inputs ---------------------------------------------------------------------------------------------
    def preset_id(self):
        return self.preset_combo.currentData()

    def roles_for(self, preset_id):
        return [r.role for r in PRESETS[preset_id].roles]

    def _preset_changed(self):
        """Inputs and parameter widgets of the chosen preset, from its declaration."""
        spec = PRESETS[self.preset_id()]
        self.help_label.setText(tr(spec.help))
        visible = set(self.roles_for(spec.id))
        for role in ALL_ROLES:
            self.role_combos[role].setVisible(role in visible)
            self.role_labels[role].setVisible(role in visible)
        self.params_widget.set_preset(spec, self._profile_or_default())

    def prefill(self):
        """Pre-fill empty inputs from the layers of the project (recognised roles)."""
        layers = [
            lyr for lyr in QgsProject.instance().mapLayers().values() if isinstance(lyr, QgsVectorLayer)
        ]
        for role, layer in guess_roles(layers).items():
            combo = self.role_combos.get(role)
            if combo is not None and combo.currentLayer() is None:
                combo.setLayer(layer)
        if (
            self.role_combos["A"].currentLayer() is None
            and self.role_combos["PBF"].currentLayer() is not None
        ):
            self.role_combos["A"].setLayer(self.role_combos["PBF"].currentLayer())
        if (
            self.role_combos["B"].currentLayer() is None
            and self.role_combos["DLTB"].currentLayer() is not None
        ):
            self.role_combos["B"].setLayer(self.role_combos["DLTB"].currentLayer())

    def _profile_or_default(self):
        try:
            return RuleProfile.from_settings()
        except RuleProfileError:
            return RuleProfile.default()

    # --- running --------------------------------------------------------------------------------------------
    def start(self):
        """Start the selected preset as a QgsTask; returns the task (None if the inputs are not usable)."""
        if self.task is not None:
            return None
        preset_id = self.preset_id()
        layers = {}
        for role in self.roles_for(preset_id):
            layer = self.role_combos[role].currentLayer()
            if layer is not None:
                layers[role] = layer
        try:
            options, overrides = PRESETS[preset_id].options_and_overrides(self.params_widget.values())
            missing = [r for r in PRESETS[preset_id].required if r not in layers]
            if missing:
                raise CompareError(tr("Missing input layers: {roles}").format(roles=", ".join(missing)))
            profile = RuleProfile.load(self.session.settings.rules_profile_path).with_overrides(overrides)
            task = HuijiaoCompareTask(preset_id, layers, profile, options, self.level_combo.currentData())
        except (CompareError, RuleProfileError) as exc:
            self._message(str(exc), error=True)
            return None
        self.task = task
        task.progressChanged.connect(lambda value: self.progress.setValue(int(value)))
        task.taskCompleted.connect(self._completed)
        task.taskTerminated.connect(self._terminated)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.summary_label.setText(tr("Running…"))
        QgsApplication.taskManager().addTask(task)
        return task

    def cancel(self):
        if self.task is not None:
            self.task.cancel()

    def _finish(self):
        self.task = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _terminated(self):
        error = self.task.error if self.task is not None else ""
        self._finish()
        self.progress.setValue(0)
        text = error or tr("Canceled.")
        self.summary_label.setText(text)
        self._message(text, error=bool(error) and error != tr("Canceled."))

    def _completed(self):
        task = self.task
        self._finish()
        self.progress.setValue(100)
        self.result, self.rows = task.result, task.rows
        crs = task.overlay.crs
        task.overlay = None  # release the layer snapshots
        self.show_result(task.result, crs)
        self.fill_table(self.rows)
        self.export_button.setEnabled(True)
        self.pages.setCurrentIndex(1)  # the results
        self.summary_label.setText(self.summary_text(self.result))

    def show_result(self, result, crs):
        """Save the pieces as a new run of the project GeoPackage, add it styled by category to the group
        耕地比对 (a temporary layer when the file cannot be written)."""
        layer = result_layer(result, crs, result.title)
        try:
            layer = save_run(self.session.project_geopackage(), layer, result.title, record=result.provenance)
        except ResultsError as exc:
            self._message(str(exc), error=True)
        self.add_result_layer(layer)
        self.runs_widget.set_result(layer)
        return layer

    def add_result_layer(self, layer):
        style_comparison_result(layer)
        project = QgsProject.instance()
        project.addMapLayer(layer, False)
        root = project.layerTreeRoot()
        group_name = tr("Farmland comparison")
        group = root.findGroup(group_name) or root.insertGroup(0, group_name)
        group.insertLayer(0, layer)
        self.result_layers.append(layer.id())
        return layer

    def area_unit(self) -> str:
        return self.session.settings.area_unit

    def fill_table(self, rows):
        self.table.set_rows(rows, self.area_unit())

    def summary_text(self, result) -> str:
        """ "<preset>: 1,234 pieces, 5,678.90 亩" in the user's area unit."""
        unit = self.area_unit()
        return tr("{title}: {count} pieces, {area} {unit}").format(
            title=result.title,
            count=f"{len(result.pieces):,}",
            area=area_text(sum(p.area_m2 for p in result.pieces), unit),
            unit=UNIT_NAMES[unit],
        )

    def export_xlsx(self, path):
        """Write the last statistics to ``path`` (xlsx, the panel's headers); returns the written path."""
        if self.result is None:
            return None
        try:
            written = write_stat_table_xlsx(path, self.rows, self.area_unit(), [self.result])
        except XlsxError as exc:
            self._message(str(exc), error=True)
            return None
        self._message(tr("Statistics written to {path}").format(path=written))
        return written

    def _export_clicked(self):
        path, _ = QFileDialog.getSaveFileName(self, tr("Export statistics"), "", "Excel (*.xlsx)")
        if path:
            self.export_xlsx(path)

    def _message(self, text, error=False):
        bar = self.iface.messageBar() if self.iface is not None else None
        if bar is None:
            return
        level = Qgis.MessageLevel.Critical if error else Qgis.MessageLevel.Info
        bar.pushMessage(tr("Farmland comparison"), text, level=level, duration=8 if error else 5)
