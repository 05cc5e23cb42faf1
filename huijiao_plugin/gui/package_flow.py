"""Pre-flight validation and package building of the 成果汇交 panel as QgsTasks (progress, cancel; QGIS stays
responsive), results handed back on the main thread. A mixin of the panel: its methods run on the panel."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any, Callable

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateTransformContext,
    QgsProject,
    QgsTask,
    QgsVectorLayer,
)

from huijiao_plugin.core.exchange.offline import export_package
from huijiao_plugin.core.package import LayerInput, PackageCanceledError, build_package, package_layer_names
from huijiao_plugin.core.preflight import Preflight, PreflightReport
from huijiao_plugin.gui.layer_tasks import LayerSource, LayerTask
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)


class PackageFlow:
    """Validate the ticked layers, then build the exchange package; mixed into HuijiaoSubmitDock."""

    # ------------------------------------------------------------------------------------ validation
    def _pairs(self) -> list[tuple[str, QgsVectorLayer]]:
        layers = self.selected_layers()
        names = package_layer_names(self.dataset_combo.currentData() or "", [lyr.name() for lyr in layers])
        return list(zip(names, layers))

    def _catalog(self) -> Any:
        try:
            from huijiao_plugin.core.catalog import get_catalog

            return get_catalog(self.settings.catalog_override_path or None)
        except Exception as error:  # pre-flight reports the unknown dataset itself
            log.warning("catalog unavailable for pre-flight: %s", error)
            return None

    def start_validation(
        self,
        then: Callable[[PreflightReport | None], None] | None = None,
        sources: list[LayerSource] | None = None,
    ) -> QgsTask | None:
        """Validate the checked layers (or the layer snapshots ``sources``) in a background task; the
        findings appear when it ends and ``then(report)`` is called (``then(None)`` when it was canceled
        or failed). None if not started."""
        if self.is_busy():
            return None
        if sources is None:
            sources = [LayerSource(name, layer) for name, layer in self._pairs()]
        self.findings_tree.clear()
        self.report = None
        if not sources:
            self._message(tr("Check at least one layer to submit."), Qgis.MessageLevel.Warning)
            return None
        preflight = Preflight(
            self.dataset_combo.currentData() or "",
            self.settings.region_code,
            self.package_region(),
            self._catalog(),
            display_names={source.name: source.layer_name for source in sources},
        )

        def work(task: QgsTask, layers: list[tuple[str, QgsVectorLayer]], progress: Callable) -> Any:
            preflight.progress = progress
            preflight.is_canceled = task.isCanceled
            return preflight.run(layers)

        task = LayerTask(tr("Pre-flight validation"), sources, work)

        def done(finished: LayerTask, ok: bool) -> None:
            report = finished.remap(finished.result) if ok and finished.result is not None else None
            if report is not None:
                self.report = report
                self.form.show_report(report)
            if then is not None:
                then(report)

        self._start_task(task, tr("Validating…"), done)
        return task

    def validate(self, timeout: float = 3600.0) -> PreflightReport | None:
        """Validate in the background and wait for the report (the event loop keeps running); for
        scripts and tests. The Validate button starts the task without waiting."""
        box: list[PreflightReport | None] = []
        if self.start_validation(box.append) is None:
            return None
        self.wait(timeout)
        return box[0] if box else None

    # ---------------------------------------------------------------------------------------- package
    def start_package(
        self,
        then: Callable[[Path | None], None] | None = None,
        folder: Path | None = None,
        export_to: str | Path | None = None,
    ) -> bool:
        """Validate, then build the package of the checked layers in background tasks; ``then(path)``
        gets the package (or its copy in ``export_to``), ``then(None)`` when blocked, canceled or failed.
        A canceled or failed build leaves no package file behind."""
        if self.is_busy():
            return False
        # one snapshot for both tasks: the package holds exactly the data that was validated
        sources = [LayerSource(name, layer) for name, layer in self._pairs()]
        dataset_id = self.dataset_combo.currentData() or ""
        region = self.package_region()
        period = self.period_edit.text().strip()

        def finish(path: Path | None) -> None:
            if then is not None:
                then(path)

        def validated(report: PreflightReport | None) -> None:
            if report is None:
                finish(None)
                return
            if report.errors:
                self._message(
                    tr("Validation found {n} errors: fix them before submitting.").format(
                        n=len(report.errors)
                    ),
                    Qgis.MessageLevel.Critical,
                )
                finish(None)
                return
            if report.warnings and not self.accept_warnings_check.isChecked():
                self._message(
                    tr("Validation found {n} warnings: check them, then tick the box to accept them.").format(
                        n=len(report.warnings)
                    ),
                    Qgis.MessageLevel.Warning,
                )
                finish(None)
                return
            if self._control is not None and self._control.canceled:
                finish(None)
                return
            self._start_build(sources, dataset_id, region, period, report, folder, export_to, finish)

        return self.start_validation(validated, sources) is not None

    def _start_build(
        self,
        sources: list[LayerSource],
        dataset_id: str,
        region: str,
        period: str,
        report: PreflightReport,
        folder: Path | None,
        export_to: str | Path | None,
        finish: Callable[[Path | None], None],
    ) -> None:
        out_dir = folder or (self._state_dir() / "outbox")
        out_dir.mkdir(parents=True, exist_ok=True)
        # nothing exists at this path until the finished zip is moved there
        output = out_dir / f"{dataset_id}_{uuid.uuid4().hex[:12]}.zip"
        department, unit = self.settings.department, self.settings.unit_name
        validation = report.to_validation()
        context = QgsCoordinateTransformContext(QgsProject.instance().transformContext())

        def work(task: QgsTask, layers: list[tuple[str, QgsVectorLayer]], progress: Callable) -> Any:
            try:
                built = build_package(
                    output,
                    [LayerInput(layer, lname) for lname, layer in layers],
                    dataset_id=dataset_id,
                    region_code=region,
                    period=period,
                    department=department,
                    unit=unit,
                    validation=validation,
                    progress=progress,
                    is_canceled=task.isCanceled,
                    transform_context=context,
                )
                if task.isCanceled():
                    raise PackageCanceledError(tr("Packaging was canceled."))
                exported = export_package(built.path, export_to) if export_to is not None else None
            except BaseException:
                output.unlink(missing_ok=True)
                raise
            return built.path, exported

        task = LayerTask(tr("Building the exchange package"), sources, work)

        def done(finished: LayerTask, ok: bool) -> None:
            if not ok or finished.result is None:
                output.unlink(missing_ok=True)  # also when the task was canceled before it ran
                finish(None)
                return
            path, exported = finished.result
            self.last_package = path
            if exported is not None:
                self._message(tr("Package copied to {path}").format(path=exported), Qgis.MessageLevel.Success)
            finish(exported or path)

        self._start_task(task, tr("Building the package…"), done)

    def build_current_package(self, folder: Path | None = None, timeout: float = 3600.0) -> Path | None:
        """Validate and build the package of the checked layers and wait for it (the event loop keeps
        running); None (with a message) when blocked. For scripts and tests: the panel's buttons start
        the same tasks without waiting."""
        box: list[Path | None] = []
        if not self.start_package(box.append, folder):
            return None
        self.wait(timeout)
        return box[0] if box else None

    # ------------------------------------------------------------------------------------ background
    def _start_task(self, task: LayerTask, text: str, done: Callable[[LayerTask, bool], None]) -> None:
        """Run ``task`` in QGIS's task manager; ``done(task, ok)`` on the main thread when it ends."""
        self._task = task
        self._task_text = text
        self.progress_bar.setValue(0)
        self.progress_label.setText(text)
        task.progressChanged.connect(self._task_progress)

        def ended(ok: bool) -> None:
            if self._task is not task:
                return
            self._task = None
            error, canceled = task.error, task.canceled or task.isCanceled()
            if canceled:
                self.progress_bar.setValue(0)
                self.progress_label.setText(tr("Canceled."))
            elif error:
                self.progress_label.setText(error)
                self._message(error, Qgis.MessageLevel.Critical)
            else:
                self.progress_bar.setValue(0)
                self.progress_label.clear()
            try:
                done(task, ok and not canceled)
            finally:
                self._set_running(self.is_busy())
                if not self.is_busy():
                    self._control = None

        task.taskCompleted.connect(lambda: ended(True))
        task.taskTerminated.connect(lambda: ended(False))
        self._set_running(True)
        QgsApplication.taskManager().addTask(task)

    def _task_progress(self, value: float) -> None:
        if self._task is None:
            return
        self.progress_bar.setValue(int(10 * value))
        self.progress_label.setText(f"{self._task_text} {int(value)}%")
