"""The findings of the 共享图层 检查: the sortable table, select-and-zoom in the layer that was checked (by
layer id) and the xlsx export. A mixin of the panel: its methods run on the panel (catalog, messages)."""

from __future__ import annotations

import logging

from qgis.core import (
    Qgis,
    QgsProject,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QBrush, QColor, QStandardItem
from qgis.PyQt.QtWidgets import (
    QFileDialog,
)

from huijiao_plugin.core.checks import RULE_NAMES_ZH, CheckReport, Finding, field_label
from huijiao_plugin.core.one_map import (
    department_group,
    prepare_layer,
)
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

ROLE_DATASET = Qt.ItemDataRole.UserRole + 1
ROLE_SORT = Qt.ItemDataRole.UserRole + 2


def severity_text(severity: str) -> str:
    return tr("error") if severity == "error" else tr("warning")


def _field_text(spec, name: str) -> str:
    """The field by its Chinese alias, the name in brackets."""
    field_spec = spec.field_spec(name) if spec is not None and name else None
    return field_label(field_spec) if field_spec is not None else name


class CheckFindings:
    """The findings table's behaviour; mixed into HuijiaoSharedLayersDock."""

    def set_reports(self, reports: list[CheckReport]):
        self.reports = list(reports)
        for report in self.reports:  # a finding points at the checked layer, by id (loaded or not yet)
            layer = self.layer_of(report.dataset_id)
            report.layer_id = report.layer_id or (layer.id() if layer is not None else "")
        self._findings = [(r.dataset_id, f) for r in self.reports for f in r.findings]
        self._finding_reports = [r for r in self.reports for _f in r.findings]
        model = self.findings_model
        model.removeRows(0, model.rowCount())
        for index, (dataset_id, f) in enumerate(self._findings):
            spec = self.catalog.datasets.get(dataset_id)
            values = [
                (spec.name_zh if spec else dataset_id, dataset_id),
                (severity_text(f.severity), 0 if f.severity == "error" else 1),
                (RULE_NAMES_ZH.get(f.rule_id, f.rule_id), f.rule_id),
                (_field_text(spec, f.field), f.field),
                (f.value, f.value),
                (str(f.count), f.count),
                (f.message_zh, f.message_zh),
            ]
            row = []
            for text, key in values:
                item = QStandardItem(text)
                item.setData(key, ROLE_SORT)
                item.setData(index, ROLE_DATASET)
                item.setToolTip(f.message_zh)
                row.append(item)
            if f.severity == "error":
                row[1].setForeground(QBrush(QColor("#cf222e")))
            else:
                row[1].setForeground(QBrush(QColor("#9a6700")))
            model.appendRow(row)
        self.findings_view.resizeColumnsToContents()
        errors = sum(r.error_count for r in self.reports)
        warnings = sum(r.warning_count for r in self.reports)
        self.summary_label.setText(
            tr("{datasets} datasets checked: {errors} errors, {warnings} warnings").format(
                datasets=len(self.reports), errors=errors, warnings=warnings
            )
        )
        self.export_button.setEnabled(bool(self.reports))
        self.status_label.clear()

    def _row_index(self, proxy_row: int) -> int:
        source = self.findings_proxy.mapToSource(self.findings_proxy.index(proxy_row, 0))
        return self.findings_model.item(source.row(), 0).data(ROLE_DATASET)

    def finding_at(self, proxy_row: int) -> tuple[str, Finding]:
        return self._findings[self._row_index(proxy_row)]

    def _finding_clicked(self, proxy_index):
        self.show_finding(proxy_index.row())

    def show_finding(self, proxy_row: int) -> QgsVectorLayer | None:
        """Select the features of the finding in its layer (loaded if needed) and zoom to them."""
        dataset_id, finding = self.finding_at(proxy_row)
        if not finding.feature_ids:
            return None
        report = self._finding_reports[self._row_index(proxy_row)]
        layer = QgsProject.instance().mapLayer(report.layer_id) if report.layer_id else None
        if not isinstance(layer, QgsVectorLayer) and dataset_id in self.found:
            rec = self.found[dataset_id]  # the checked source is not loaded yet: load that one
            layer = rec.make_layer()
            spec = prepare_layer(layer, dataset_id, rec, self.catalog)
            QgsProject.instance().addMapLayer(layer, False)
            department_group(QgsProject.instance(), spec).insertLayer(0, layer)
            report.layer_id = layer.id()
        if not isinstance(layer, QgsVectorLayer):
            return None
        layer.selectByIds(finding.feature_ids)
        canvas = self.iface.mapCanvas() if self.iface is not None else None
        if canvas is not None and layer.selectedFeatureCount():
            canvas.zoomToSelected(layer)
            canvas.refresh()
        return layer

    def _ask_export(self):
        path, _ = QFileDialog.getSaveFileName(self, tr("Export findings"), "", tr("Excel workbook (*.xlsx)"))
        if path:
            self.export_xlsx(path)

    def export_xlsx(self, path: str) -> str | None:
        from huijiao_plugin.core.xlsx import XlsxError, write_table

        headers = ["数据集", "图层", "严重性", "规则", "字段", "值", "数量", "修改说明", "要素ID"]
        rows = []
        for report in self.reports:
            spec = self.catalog.datasets.get(report.dataset_id)
            for f in report.findings:
                rows.append(
                    [
                        spec.name_zh if spec else report.dataset_id,
                        report.layer_name,
                        "错误" if f.severity == "error" else "警告",
                        RULE_NAMES_ZH.get(f.rule_id, f.rule_id),
                        _field_text(spec, f.field),
                        f.value,
                        f.count,
                        f.message_zh,
                        ",".join(str(i) for i in f.feature_ids[:5000]),
                    ]
                )
        try:
            out = write_table(path, headers, rows, sheet_title="检查结果")
        except XlsxError as error:
            self._message(str(error), Qgis.MessageLevel.Critical)
            return None
        self._message(tr("Findings exported to {path}").format(path=out), Qgis.MessageLevel.Success)
        return str(out)
