"""Pre-flight validation (汇交前预检) of the layers to be packaged.

Runs the catalog checks (``core.checks``) and the submission checks of this module: geometry validity,
overlaps inside layers that must be a partition (DLTB), region codes inside the submitter's region,
required catalog fields present and filled. Errors block a submission; warnings are shown and can be
accepted. Every finding names its layer and feature ids so that the panel can zoom to them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

from qgis.core import QgsFeatureRequest, QgsGeometry, QgsSpatialIndex, QgsVectorLayer, QgsWkbTypes

from huijiao_plugin.core.package import region_prefix, region_within
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

ERROR = "error"
WARNING = "warning"

#: datasets whose polygons must not overlap (地类图斑 and administrative partitions); a catalog entry
#: may set ``"partition": true/false`` to override this default.
DEFAULT_PARTITION_DATASETS = frozenset({"dltb_sandiao", "dltb_biangeng", "xzq", "cjdcq"})
#: fields holding a region / 坐落单位 code, checked against the submitter's region (first match wins)
REGION_FIELDS = ("ZLDWDM", "XZQDM", "QSDWDM", "COUNTY_CODE")
#: overlaps smaller than this (m², planar in the layer CRS) are ignored as numeric noise
DEFAULT_OVERLAP_TOLERANCE_M2 = 0.01
MAX_FIDS_PER_FINDING = 5000


@dataclass
class Finding:
    severity: str  # "error" | "warning"
    code: str
    message: str
    layer_name: str = ""
    layer_id: str = ""
    fids: list[int] = field(default_factory=list)
    count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "layer": self.layer_name,
            "count": self.count,
            "fids": self.fids[:100],
        }


@dataclass
class PreflightReport:
    findings: list[Finding] = field(default_factory=list)
    checked_layers: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity != ERROR]

    @property
    def ok(self) -> bool:
        """No blocking error (warnings still need to be accepted by the user)."""
        return not self.errors

    def to_validation(self) -> dict[str, Any]:
        """The manifest's ``validation`` block: counts of errors and warnings, per-code summary."""
        summary: dict[str, int] = {}
        for f in self.findings:
            summary[f.code] = summary.get(f.code, 0) + max(f.count, 1)
        return {
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "summary": dict(sorted(summary.items())),
        }


ProgressCallback = Callable[[float], None]


def _field_index(layer: QgsVectorLayer, names: Sequence[str]) -> int:
    wanted = [n.strip().upper() for n in names]
    for index, fld in enumerate(layer.fields()):
        if fld.name().strip().upper() in wanted:
            return index
    return -1


def _is_partition(dataset: Any, dataset_id: str) -> bool:
    raw = getattr(dataset, "raw", None) or {}
    if "partition" in raw:
        return bool(raw["partition"])
    return dataset_id in DEFAULT_PARTITION_DATASETS


def _load_dataset_spec(dataset_id: str, catalog: Any) -> Any:
    if catalog is None:
        try:
            from huijiao_plugin.core.catalog import get_catalog

            catalog = get_catalog()
        except Exception as error:  # a broken catalog must not stop the other checks
            log.warning("catalog unavailable for pre-flight: %s", error)
            return None
    return catalog.datasets.get(dataset_id) if hasattr(catalog, "datasets") else None


class Preflight:
    """Validate ``layers`` ((package layer name, QgsVectorLayer) pairs) of ``dataset_id`` for a submitter
    of ``user_region``, for a package of ``region_code``."""

    def __init__(
        self,
        dataset_id: str,
        user_region: str,
        region_code: str | None = None,
        catalog: Any = None,
        overlap_tolerance_m2: float = DEFAULT_OVERLAP_TOLERANCE_M2,
        progress: ProgressCallback | None = None,
        is_canceled: Callable[[], bool] | None = None,
        display_names: dict[str, str] | None = None,
    ) -> None:
        self.dataset_id = dataset_id
        #: package layer name -> the layer's name in the Layers panel (what the messages say)
        self.display_names = dict(display_names or {})
        self.user_region = user_region
        self.region_code = region_code or user_region
        self.catalog = catalog
        self.spec = _load_dataset_spec(dataset_id, catalog)
        self.overlap_tolerance_m2 = overlap_tolerance_m2
        self.progress = progress
        self.is_canceled = is_canceled or (lambda: False)

    # ------------------------------------------------------------------------------------------ entry
    def run(self, layers: Sequence[tuple[str, QgsVectorLayer]]) -> PreflightReport:
        report = PreflightReport()
        self._check_package_region(report)
        if self.spec is None:
            report.findings.append(
                Finding(
                    ERROR,
                    "DATASET_UNKNOWN",
                    tr("The dataset {id} is not in the shared-data catalog.").format(id=self.dataset_id),
                )
            )
        total = max(len(layers), 1)
        for index, (name, layer) in enumerate(layers):
            if self.is_canceled():
                break
            report.checked_layers.append(name)

            def step(value: float, _i: int = index) -> None:
                if self.progress is not None:
                    self.progress(100.0 * (_i + value) / total)

            # the catalog checks take the first 40 % of a layer, our own checks the rest; messages name the
            # layer as the Layers panel does
            label = self.display_names.get(name, name)
            catalog_checked = self._catalog_check(report, label, layer, lambda v: step(0.4 * v))
            if self.is_canceled():
                break
            self._check_layer(report, label, layer, lambda v: step(0.4 + 0.6 * v), catalog_checked)
        if self.progress is not None and not self.is_canceled():
            self.progress(100.0)
        return report

    # ---------------------------------------------------------------------------------------- checks
    def _check_package_region(self, report: PreflightReport) -> None:
        code = self.region_code or ""
        if not code.isdigit() or len(code) not in (2, 4, 6):
            report.findings.append(
                Finding(ERROR, "REGION_INVALID", tr("The region code {code} is not valid.").format(code=code))
            )
            return
        if not region_prefix(code).startswith(region_prefix(self.user_region)):
            report.findings.append(
                Finding(
                    ERROR,
                    "REGION_OUTSIDE_ACCOUNT",
                    tr(
                        "The package region {code} is outside your region {own}: you cannot submit it."
                    ).format(code=code, own=self.user_region),
                )
            )

    def _check_layer(
        self,
        report: PreflightReport,
        name: str,
        layer: QgsVectorLayer,
        step: Callable[[float], None],
        catalog_checked: bool = False,
    ) -> None:
        if layer is None or not layer.isValid():
            report.findings.append(
                Finding(
                    ERROR, "LAYER_INVALID", tr("The layer {name} cannot be read.").format(name=name), name
                )
            )
            return
        layer_id = layer.id()
        if layer.featureCount() == 0:
            report.findings.append(
                Finding(
                    WARNING,
                    "LAYER_EMPTY",
                    tr("The layer {name} has no features.").format(name=name),
                    name,
                    layer_id,
                )
            )
        if not catalog_checked:
            self._check_fields(report, name, layer)
        polygonal = QgsWkbTypes.geometryType(layer.wkbType()) == QgsWkbTypes.GeometryType.PolygonGeometry
        region_index = _field_index(layer, REGION_FIELDS)
        required = self._required_field_indexes(layer)
        invalid: list[int] = []
        empty: list[int] = []
        outside: list[int] = []
        outside_package: list[int] = []
        unfilled: dict[str, list[int]] = {}
        geometries: dict[int, QgsGeometry] = {}
        count = max(layer.featureCount(), 1)
        for n, feature in enumerate(layer.getFeatures(QgsFeatureRequest())):
            if n % 500 == 0:
                if self.is_canceled():
                    return
                step(0.5 * n / count)
            geometry = feature.geometry()
            if geometry is None or geometry.isNull() or geometry.isEmpty():
                empty.append(feature.id())
            elif not geometry.isGeosValid():
                invalid.append(feature.id())
            elif polygonal:
                geometries[feature.id()] = QgsGeometry(geometry)
            attrs = feature.attributes()
            if region_index >= 0:
                value = attrs[region_index]
                code = "" if value is None else str(value).strip()
                if code and code.upper() != "NULL":
                    if not region_within(code, self.user_region):
                        outside.append(feature.id())
                    elif not region_within(code, self.region_code):
                        outside_package.append(feature.id())
            for field_name, field_index in required.items():
                value = attrs[field_index]
                if value is None or str(value).strip() in ("", "NULL"):
                    unfilled.setdefault(field_name, []).append(feature.id())
        if catalog_checked:  # the catalog checks report geometries and empty required fields themselves
            empty, invalid, unfilled = [], [], {}
        self._add(
            report,
            ERROR,
            "GEOMETRY_EMPTY",
            tr("{n} features of {name} have no geometry."),
            name,
            layer,
            empty,
        )
        self._add(
            report,
            ERROR,
            "GEOMETRY_INVALID",
            tr("{n} features of {name} have an invalid geometry."),
            name,
            layer,
            invalid,
        )
        if region_index >= 0:
            field_name = layer.fields()[region_index].name()
            self._add(
                report,
                ERROR,
                "REGION_OUTSIDE_ACCOUNT",
                tr("{n} features of {name} lie outside your region ({field}).").replace(
                    "{field}", field_name
                ),
                name,
                layer,
                outside,
            )
            self._add(
                report,
                WARNING,
                "REGION_OUTSIDE_PACKAGE",
                tr("{n} features of {name} lie outside the package region ({field}).").replace(
                    "{field}", field_name
                ),
                name,
                layer,
                outside_package,
            )
        for field_name, fids in sorted(unfilled.items()):
            self._add(
                report,
                WARNING,
                "REQUIRED_FIELD_EMPTY",
                tr("{n} features of {name} have no value in the required field {field}.").replace(
                    "{field}", self._field_label(field_name)
                ),
                name,
                layer,
                fids,
            )
        if polygonal and _is_partition(self.spec, self.dataset_id):
            overlapping = self._overlaps(geometries, layer, lambda v: step(0.5 + 0.5 * v))
            self._add(
                report,
                ERROR,
                "OVERLAP",
                tr("{n} features of {name} overlap each other; the layer must be a partition."),
                name,
                layer,
                overlapping,
            )
        step(1.0)

    def _field_label(self, name: str) -> str:
        from huijiao_plugin.core.checks import field_label

        spec = self.spec.field_spec(name) if self.spec is not None else None
        return field_label(spec) if spec is not None else name

    def _required_field_indexes(self, layer: QgsVectorLayer) -> dict[str, int]:
        out: dict[str, int] = {}
        if self.spec is None:
            return out
        for spec in self.spec.fields:
            if spec.required:
                index = _field_index(layer, spec.candidate_names())
                if index >= 0:
                    out[spec.name] = index
        return out

    def _check_fields(self, report: PreflightReport, name: str, layer: QgsVectorLayer) -> None:
        if self.spec is None:
            return
        missing = [
            s.name for s in self.spec.fields if s.required and _field_index(layer, s.candidate_names()) < 0
        ]
        if missing:
            report.findings.append(
                Finding(
                    ERROR,
                    "FIELD_MISSING",
                    tr("The layer {name} lacks the required fields: {fields}.").format(
                        name=name, fields="、".join(self._field_label(m) for m in missing)
                    ),
                    name,
                    layer.id(),
                    count=len(missing),
                )
            )

    def _overlaps(
        self, geometries: dict[int, QgsGeometry], layer: QgsVectorLayer, step: Callable[[float], None]
    ) -> list[int]:
        index = QgsSpatialIndex()
        for fid, geometry in geometries.items():
            index.addFeature(fid, geometry.boundingBox())
        geographic = layer.crs().isGeographic()
        tolerance = self.overlap_tolerance_m2 if not geographic else self.overlap_tolerance_m2 * 1e-10
        flagged: set[int] = set()
        total = max(len(geometries), 1)
        for n, (fid, geometry) in enumerate(sorted(geometries.items())):
            if n % 200 == 0:
                if self.is_canceled():
                    break
                step(n / total)
            engine = QgsGeometry.createGeometryEngine(geometry.constGet())
            engine.prepareGeometry()
            for other in index.intersects(geometry.boundingBox()):
                if other <= fid:
                    continue
                other_geometry = geometries[other]
                if not engine.relatePattern(other_geometry.constGet(), "T********"):
                    continue
                if geometry.intersection(other_geometry).area() > tolerance:
                    flagged.update((fid, other))
        return sorted(flagged)

    def _add(
        self,
        report: PreflightReport,
        severity: str,
        code: str,
        template: str,
        name: str,
        layer: QgsVectorLayer,
        fids: list[int],
    ) -> None:
        if not fids:
            return
        report.findings.append(
            Finding(
                severity,
                code,
                template.replace("{n}", str(len(fids))).replace("{name}", name),
                name,
                layer.id(),
                fids[:MAX_FIDS_PER_FINDING],
                len(fids),
            )
        )

    def _catalog_check(
        self,
        report: PreflightReport,
        name: str,
        layer: QgsVectorLayer,
        step: Callable[[float], None] | None = None,
    ) -> bool:
        """The catalog's checks (CRS, fields, codes, geometry, areas) from ``core.checks``; ``step`` gets
        their progress as 0…1.

        Returns True when they ran (their geometry and field findings then replace ours)."""
        if self.spec is None or layer is None or not layer.isValid():
            return False
        try:
            from huijiao_plugin.core import checks
        except Exception as error:  # missing or broken module: our own checks still run
            log.warning("catalog checks unavailable: %s", error)
            return False
        try:
            result = checks.check_layer(
                layer,
                self.spec,
                self.catalog,
                progress=_CheckProgress(self.is_canceled, step),
                layer_label=name,
            )
        except checks.CheckCanceledError:
            return True
        except Exception as error:  # a failing catalog check must not hide the other findings
            log.warning("catalog checks failed on %s: %s", name, error)
            report.findings.append(
                Finding(
                    WARNING,
                    "CATALOG_CHECKS_FAILED",
                    tr("The catalog checks could not run on {name}: {error}").format(name=name, error=error),
                    name,
                    layer.id(),
                )
            )
            return False
        for item in result.findings:
            # the same message as the 共享图层 check: one check, one wording in both panels
            report.findings.append(
                Finding(
                    ERROR if item.severity == ERROR else WARNING,
                    item.rule_id.upper(),
                    item.message_zh,
                    name,
                    layer.id(),
                    list(item.feature_ids)[:MAX_FIDS_PER_FINDING],
                    int(item.count or len(item.feature_ids)),
                )
            )
        return True


class _CheckProgress:
    """Adapter: the catalog checks ask ``isCanceled()``/``setProgress()`` (0…100); ``step`` gets 0…1."""

    def __init__(self, is_canceled: Callable[[], bool], step: Callable[[float], None] | None = None) -> None:
        self._is_canceled = is_canceled
        self._step = step

    def isCanceled(self) -> bool:  # noqa: N802
        return bool(self._is_canceled())

    def setProgress(self, progress: float) -> None:  # noqa: N802
        if self._step is not None:
            self._step(max(0.0, min(float(progress), 100.0)) / 100.0)


def run_preflight(
    layers: Sequence[tuple[str, QgsVectorLayer]],
    dataset_id: str,
    user_region: str,
    region_code: str | None = None,
    catalog: Any = None,
    overlap_tolerance_m2: float = DEFAULT_OVERLAP_TOLERANCE_M2,
    progress: ProgressCallback | None = None,
    is_canceled: Callable[[], bool] | None = None,
) -> PreflightReport:
    """Convenience wrapper around :class:`Preflight`."""
    return Preflight(
        dataset_id, user_region, region_code, catalog, overlap_tolerance_m2, progress, is_canceled
    ).run(layers)
