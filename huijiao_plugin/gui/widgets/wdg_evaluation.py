"""成效评估: the indicators the exchange server computes per county (数据采集汇聚、共享开放、安全保障、
应用成效) as a table and a matplotlib bar chart, and the high-standard farmland progress computed from the
loaded 一张图 layers (chart toward the 2035 goal); both exported to xlsx and PDF."""

from __future__ import annotations

import logging

from qgis.core import QgsApplication, QgsProject, QgsTask, QgsVectorLayer
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from huijiao_plugin.core.exchange.transport import ExchangeError
from huijiao_plugin.core.exchange_calendar import (
    INDICATOR_SOURCES,
    EvaluationRow,
    evaluation_figure,
    evaluation_headers,
    evaluation_rows,
    write_evaluation_pdf,
    write_evaluation_xlsx,
)
from huijiao_plugin.core.hsf_progress import (
    HsfProgress,
    HsfProgressError,
    ProgressLayer,
    find_progress_layers,
    hsf_progress,
    progress_figure,
)
from huijiao_plugin.core.session import Session
from huijiao_plugin.gui.layer_tasks import LayerSource, LayerTask
from huijiao_plugin.gui.server_task import ServerTask
from huijiao_plugin.gui.user_context import region_display
from huijiao_plugin.gui.widgets.wdg_year_bar import HuijiaoYearBar
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

CHART_INDICATORS, CHART_PROGRESS = "indicators", "progress"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100.0 * value:.1f}%"


def make_chart_canvas(parent: QWidget):
    """A matplotlib canvas for Qt (the qtagg backend follows the Qt binding QGIS runs on, Qt 5 or 6);
    None when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure
    except ImportError:
        log.warning("matplotlib is not installed: the evaluation chart is not shown")
        return None
    canvas = FigureCanvasQTAgg(Figure(figsize=(4.0, 2.6), dpi=90))
    canvas.setParent(parent)
    canvas.setMinimumHeight(80)  # a short screen shrinks the chart, not the panel's buttons
    return canvas


class HuijiaoEvaluationWidget(QWidget):
    """Year, load and export buttons, the indicator table and its chart."""

    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.setObjectName("HuijiaoEvaluationWidget")
        self.session = session
        self.rows: list[EvaluationRow] = []
        self.year = 0  # the year of the loaded rows
        self.progress: HsfProgress | None = None  # computed from the 一张图
        layout = QVBoxLayout(self)
        self.bar = HuijiaoYearBar("Evaluation", tr("Ask the server"), self)
        self.year_spin, self.load_button = self.bar.year_spin, self.bar.load_button
        self.load_button.setObjectName("HuijiaoEvaluationLoadButton")
        self.load_button.clicked.connect(self.refresh)
        self.xlsx_button = self.bar.add_button("mActionSaveAs.svg", "xlsx", tr("Export the table to xlsx"))
        self.xlsx_button.setObjectName("HuijiaoEvaluationXlsxButton")
        self.xlsx_button.clicked.connect(self._ask_xlsx)
        self.pdf_button = self.bar.add_button(
            "mActionSaveAsPDF.svg", "PDF", tr("Export chart and table to PDF")
        )
        self.pdf_button.setObjectName("HuijiaoEvaluationPdfButton")
        self.pdf_button.clicked.connect(self._ask_pdf)
        layout.addWidget(self.bar)
        self.table = QTreeWidget(self)
        self.table.setObjectName("HuijiaoEvaluationTable")
        self.table.setRootIsDecorated(False)
        self.table.setHeaderLabels(evaluation_headers())
        self.table.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        layout.addWidget(self.table, 1)
        chart_row = QHBoxLayout()
        self.chart_combo = QComboBox(self)
        self.chart_combo.setObjectName("HuijiaoEvaluationChartCombo")
        self.chart_combo.addItem(tr("Indicators per county"), CHART_INDICATORS)
        self.chart_combo.addItem(tr("High-standard farmland progress"), CHART_PROGRESS)
        self.chart_combo.setToolTip(tr("The chart shown below"))
        # the panel's width decides, not the longest chart name (elided in a narrow dock)
        self.chart_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.chart_combo.setMinimumContentsLength(6)
        self.chart_combo.currentIndexChanged.connect(lambda _i: self._draw())
        chart_row.addWidget(self.chart_combo, 1)
        self.progress_button = QToolButton(self)
        self.progress_button.setObjectName("HuijiaoEvaluationProgressButton")
        self.progress_button.setIcon(QgsApplication.getThemeIcon("mActionCalculateField.svg"))
        self.progress_button.setText(tr("Compute"))
        self.progress_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.progress_button.setToolTip(
            tr(
                "From the loaded one-map layers: permanent basic farmland built as high-standard farmland "
                "per year and township, toward the 2035 goal"
            )
        )
        self.progress_button.clicked.connect(self.compute_progress)
        chart_row.addWidget(self.progress_button)
        layout.addLayout(chart_row)
        self.canvas = make_chart_canvas(self)
        if self.canvas is not None:
            layout.addWidget(self.canvas, 2)
        self.status_label = QLabel(self)
        self.status_label.setObjectName("HuijiaoEvaluationStatus")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self._set_exportable(False)

    def _set_exportable(self, on: bool) -> None:
        on = on or bool(self.rows) or self.progress is not None
        self.xlsx_button.setEnabled(on)
        self.pdf_button.setEnabled(on)

    def _unit(self) -> str:
        return self.session.settings.area_unit

    def _draw(self) -> None:
        """The chart chosen in the combo, from what has been loaded or computed."""
        if self.canvas is None:
            return
        if self.chart_combo.currentData() == CHART_PROGRESS:
            if self.progress is not None:
                progress_figure(self.progress, self._unit(), self.canvas.figure)
            else:
                self.canvas.figure.clear()
        elif self.rows:
            evaluation_figure(self.rows, self.year, self.canvas.figure)
        else:
            self.canvas.figure.clear()
        self.canvas.draw_idle()

    # ---- 高标准农田建设进度 from the loaded 一张图 layers ---------------------------------------------
    def compute_progress(self) -> QgsTask | None:
        """PBF built as HSF per year and township, computed in a task over snapshots of the project's
        永久基本农田, 高标准农田 and 乡镇 layers."""
        if self.bar.busy():
            return None
        try:
            found = find_progress_layers()
        except HsfProgressError as error:
            self.status_label.setText(str(error))
            return None
        sources = [LayerSource(dataset_id, item.layer) for dataset_id, item in found.items()]
        mappings = {dataset_id: item.fields for dataset_id, item in found.items()}
        context = QgsProject.instance().transformContext()

        def work(task: QgsTask, layers: list[tuple[str, QgsVectorLayer]], progress) -> HsfProgress | None:
            opened = {name: ProgressLayer(layer, mappings[name]) for name, layer in layers}
            return hsf_progress(opened, task.isCanceled, progress, context)

        self.status_label.setText(tr("Computing the high-standard farmland progress…"))
        return self.bar.start(LayerTask(tr("High-standard farmland progress"), sources, work), self._computed)

    def _computed(self, task: LayerTask, ok: bool) -> None:
        if not ok or task.result is None:
            self.status_label.setText(task.error or tr("Canceled."))
            return
        self.progress = task.result
        total = self.progress.total()
        last = self.progress.years[-1] if self.progress.years else None
        if last is None:
            text = tr("No high-standard farmland with a build year lies on permanent basic farmland.")
        else:
            text = tr(
                "By {year}, {share}% of the permanent basic farmland is high-standard farmland."
            ).format(year=last, share=f"{100.0 * self.progress.share(total, last):.2f}")
        self.status_label.setText(text)
        self.chart_combo.setCurrentIndex(self.chart_combo.findData(CHART_PROGRESS))
        self._draw()
        self._set_exportable(True)

    def refresh(self) -> ServerTask | None:
        """Ask the server for the indicators of the chosen year in a task; table and chart fill when it
        has answered."""
        if self.bar.busy():
            return None
        self.table.clear()
        self.rows = []
        self._set_exportable(False)
        try:
            client = self.session.client()
        except ExchangeError as error:
            self.status_label.setText(str(error))
            return None
        client.max_retries = 1  # interactive: fail fast, the user presses the button again
        year, region = self.year_spin.value(), self.session.settings.region_code
        self.status_label.setText(tr("Asking the server…"))
        return self.bar.run(
            tr("Loading the evaluation indicators"),
            lambda _task: (year, client.get_json("/evaluation", year=year, region=region)),
            self._loaded,
        )

    def _loaded(self, task: ServerTask, ok: bool) -> None:
        if not ok:
            self.status_label.setText(task.error if task.error else tr("Canceled."))
            return
        year, body = task.result
        self.year = year
        self.rows = evaluation_rows(body, region_display)
        for row in self.rows:
            values = [row.region_name, *(_percent(row.rates.get(k)) for k in INDICATOR_SOURCES)]
            item = QTreeWidgetItem([*values, f"{row.obligations:,}", f"{row.overdue:,}"])
            for column in range(1, len(values) + 2):
                item.setTextAlignment(column, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.addTopLevelItem(item)
        self.chart_combo.setCurrentIndex(self.chart_combo.findData(CHART_INDICATORS))
        self._draw()
        self.status_label.setText(
            tr("Indicators of {year}: rates of the obligations due so far.").format(year=year)
        )
        self._set_exportable(bool(self.rows))

    def export_xlsx(self, path: str) -> str:
        return str(write_evaluation_xlsx(path, self.rows, self.year, self.progress, self._unit()))

    def export_pdf(self, path: str) -> str:
        return str(write_evaluation_pdf(path, self.rows, self.year, self.progress, self._unit()))

    def _ask_xlsx(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, tr("Export evaluation"), "", tr("Excel workbook (*.xlsx)")
        )
        if path:
            self.status_label.setText(tr("Exported to {path}").format(path=self.export_xlsx(path)))

    def _ask_pdf(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, tr("Export evaluation"), "", tr("PDF (*.pdf)"))
        if path:
            self.status_label.setText(tr("Exported to {path}").format(path=self.export_pdf(path)))
