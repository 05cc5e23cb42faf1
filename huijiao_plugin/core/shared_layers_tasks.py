"""Background tasks of the 共享图层 panel: open the recognised layers (一张图) and check them.

Both run in QGIS's task manager with progress and cancel. Layers are opened in the worker thread with their
own provider connection and moved to the main thread before the task finishes; the panel adds them to the
project in its ``taskCompleted`` slot.
"""

from __future__ import annotations

import logging

from qgis.core import QgsTask, QgsVectorLayer
from qgis.PyQt.QtCore import QCoreApplication

from huijiao_plugin.core.catalog import Catalog
from huijiao_plugin.core.checks import CheckCanceledError, CheckError, CheckReport, check_layer
from huijiao_plugin.core.recognition import Recognition

log = logging.getLogger(__name__)


class _SubProgress:
    """Maps the progress of step ``index`` of ``count`` onto the whole task."""

    def __init__(self, task: QgsTask, index: int, count: int) -> None:
        self.task, self.index, self.count = task, index, max(1, count)

    def isCanceled(self) -> bool:  # noqa: N802 - the QgsFeedback protocol
        return self.task.isCanceled()

    def setProgress(self, progress: float) -> None:  # noqa: N802
        self.task.setProgress(100.0 * (self.index + progress / 100.0) / self.count)


class CheckDatasetsTask(QgsTask):
    """Check each (dataset id, recognition) against the catalog; results in ``reports`` and ``errors``."""

    def __init__(
        self,
        items: list[tuple[str, Recognition]],
        catalog: Catalog,
        description: str = "",
        labels: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description or "Huijiao check", QgsTask.Flag.CanCancel)
        self.items = items
        #: dataset id -> the layer's name as the user sees it (the messages use it)
        self.labels = dict(labels or {})
        self.catalog = catalog
        self.reports: list[CheckReport] = []
        self.errors: list[tuple[str, str]] = []

    def run(self) -> bool:
        for i, (dataset_id, rec) in enumerate(self.items):
            if self.isCanceled():
                return False
            layer = rec.make_layer()
            try:
                report = check_layer(
                    layer,
                    dataset_id,
                    self.catalog,
                    mapping=rec.field_mapping or None,
                    progress=_SubProgress(self, i, len(self.items)),
                    layer_label=self.labels.get(dataset_id, ""),
                )
            except CheckCanceledError:
                return False
            except CheckError as error:
                self.errors.append((dataset_id, str(error)))
                continue
            except Exception as error:  # noqa: BLE001 - one broken layer must not stop the others
                log.exception("check of %s failed", dataset_id)
                self.errors.append((dataset_id, str(error)))
                continue
            finally:
                del layer
            report.layer_name = self.labels.get(dataset_id) or rec.layer_name
            self.reports.append(report)
        self.setProgress(100)
        return True


class OpenLayersTask(QgsTask):
    """Open each recognised layer (and count its features) off the main thread; see ``layers``."""

    def __init__(self, items: list[tuple[str, Recognition]], description: str = "") -> None:
        super().__init__(description or "Huijiao load", QgsTask.Flag.CanCancel)
        self.items = items
        self.layers: list[tuple[str, Recognition, QgsVectorLayer]] = []
        self.errors: list[tuple[str, str]] = []

    def run(self) -> bool:
        main_thread = QCoreApplication.instance().thread()
        for i, (dataset_id, rec) in enumerate(self.items):
            if self.isCanceled():
                return False
            layer = rec.make_layer()
            if not layer.isValid():
                self.errors.append((dataset_id, rec.source))
                continue
            layer.featureCount()
            layer.extent()
            layer.moveToThread(main_thread)
            self.layers.append((dataset_id, rec, layer))
            self.setProgress(100.0 * (i + 1) / max(1, len(self.items)))
        return True
