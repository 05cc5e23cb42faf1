"""Background work of the 成果汇交 panel (the upload itself is a task of gui/server_task.py): a QgsTask
that opens layer snapshots in the task thread before running the work (:class:`LayerTask`); progress text.

Layers are read in the task only through what the main thread handed over: a fresh layer on the same OGR
source, or a copy made from a ``QgsVectorLayerFeatureSource`` snapshot (memory layers, unsaved edits, other
providers).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureRequest,
    QgsFields,
    QgsMemoryProviderUtils,
    QgsTask,
    QgsVectorLayer,
    QgsVectorLayerFeatureSource,
)

from huijiao_plugin.core.package import PackageCanceledError, PackageError
from huijiao_plugin.core.preflight import PreflightReport
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)


def _mb(n: float) -> str:
    return f"{n / 1024 / 1024:.1f}"


def format_progress(done: int, total: int, elapsed: float, start_offset: int = 0) -> str:
    """Bytes, speed and time left, e.g. "12.0 / 40.0 MB, 3.2 MB/s, 9 s left" (KB below 1 MB); the speed
    counts the bytes sent in this run only."""
    sent = max(done - start_offset, 0)
    speed = sent / elapsed if elapsed > 0 else 0.0
    left = (total - done) / speed if speed > 0 else None
    if total < 1024 * 1024:
        text = tr("{done} / {total} KB").format(done=f"{done / 1024:.1f}", total=f"{total / 1024:.1f}")
    else:
        text = tr("{done} / {total} MB, {speed} MB/s").format(
            done=_mb(done), total=_mb(total), speed=_mb(speed)
        )
    if left is not None and done < total:
        text += ", " + tr("{seconds} s left").format(seconds=int(left + 0.5))
    return text


#: features copied per batch when a layer snapshot is materialised in a task
_COPY_BATCH = 2000


class LayerSource:
    """What a task needs of one project layer, taken on the main thread.

    An OGR layer without unsaved edits is opened again in the task from its source URI (same fids); any
    other layer (memory layers, unsaved edits, database providers whose fids are not stable across
    connections) is read through a ``QgsVectorLayerFeatureSource`` snapshot and copied in the task into a
    memory layer of its own, fids renumbered in ascending source-fid order (``fid_map`` maps them back).
    """

    def __init__(self, name: str, layer: QgsVectorLayer) -> None:
        self.name = name
        self.layer_id = layer.id()
        self.layer_name = layer.name()
        self.provider = layer.providerType()
        self.uri = layer.source()
        self.fields = QgsFields(layer.fields())
        self.wkb_type = layer.wkbType()
        self.crs = QgsCoordinateReferenceSystem(layer.crs())
        self.reopen = self.provider == "ogr" and not layer.isModified()
        self.snapshot = None if self.reopen else QgsVectorLayerFeatureSource(layer)
        self.feature_count = max(int(layer.featureCount()), 0)
        self.fid_map: dict[int, int] = {}
        self.opened_id = ""

    def open(self, is_canceled: Callable[[], bool], step: Callable[[float], None]) -> QgsVectorLayer | None:
        """A layer owned by the calling (task) thread; None when canceled."""
        if self.reopen:
            layer = QgsVectorLayer(
                self.uri, self.layer_name, self.provider, QgsVectorLayer.LayerOptions(False)
            )
            self.opened_id = layer.id()
            step(1.0)
            return layer
        layer = QgsMemoryProviderUtils.createMemoryLayer(
            self.layer_name, self.fields, self.wkb_type, self.crs
        )
        self.opened_id = layer.id()
        self.fid_map = {}
        features = []
        for n, feature in enumerate(self.snapshot.getFeatures(QgsFeatureRequest())):
            if n % _COPY_BATCH == 0:
                if is_canceled():
                    return None
                step(0.5 * n / max(self.feature_count, 1))
            features.append(QgsFeature(feature))
        features.sort(key=lambda f: f.id())
        provider = layer.dataProvider()
        for start in range(0, len(features), _COPY_BATCH):
            if is_canceled():
                return None
            batch = features[start : start + _COPY_BATCH]
            originals = [f.id() for f in batch]
            ok, added = provider.addFeatures(batch)
            if not ok:
                raise PackageError(tr("The layer {name} cannot be read.").format(name=self.layer_name))
            self.fid_map.update({new.id(): old for new, old in zip(added, originals)})
            step(0.5 + 0.5 * (start + len(batch)) / max(len(features), 1))
        layer.updateExtents()
        return layer


class LayerTask(QgsTask):
    """Opens the layer sources in the task thread, then runs ``work(task, layers, progress)``.

    The first 20 % of the progress is opening (copying) the layers, ``work`` reports 0…100 for the rest.
    ``result`` holds what ``work`` returned, ``error`` a user message, ``canceled`` is set when canceled.
    """

    def __init__(
        self,
        description: str,
        sources: list[LayerSource],
        work: Callable[[QgsTask, list[tuple[str, QgsVectorLayer]], Callable[[float], None]], Any],
    ) -> None:
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.sources = sources
        self.work = work
        self.result: Any = None
        self.error = ""
        self.canceled = False

    def run(self) -> bool:
        layers: list[tuple[str, QgsVectorLayer]] = []
        count = max(len(self.sources), 1)
        try:
            for index, source in enumerate(self.sources):

                def step(value: float, _i: int = index) -> None:
                    self.setProgress(20.0 * (_i + value) / count)

                layer = source.open(self.isCanceled, step)
                if layer is None or self.isCanceled():
                    self.canceled = True
                    return False
                layers.append((source.name, layer))
            self.result = self.work(self, layers, lambda value: self.setProgress(20.0 + 0.8 * value))
        except PackageCanceledError:
            self.canceled = True
            return False
        except PackageError as error:
            self.error = str(error)
            return False
        except Exception as error:  # a bug must end the task with a message, not QGIS
            log.exception("background task %s failed", self.description())
            self.error = repr(error)
            return False
        finally:
            layers.clear()  # the task's own layers are deleted in the task thread
        if self.isCanceled():
            self.canceled = True
            return False
        self.setProgress(100.0)
        return True

    def remap(self, report: PreflightReport) -> PreflightReport:
        """Findings name the project layers and their fids again (not the task's copies)."""
        by_id = {source.opened_id: source for source in self.sources}
        for finding in report.findings:
            source = by_id.get(finding.layer_id)
            if source is None:
                continue
            finding.layer_id = source.layer_id
            if source.fid_map:
                finding.fids = [source.fid_map.get(fid, fid) for fid in finding.fids]
        return report
