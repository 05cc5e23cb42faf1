"""One county of a province run, in a worker process: read its partition, run the county preset, keep its own
pieces and write them to a part GeoPackage; only a small summary goes back to the parent.

Everything here is picklable module-level code: the same function runs in a process pool and on Dask workers.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huijiao_plugin.compat import FieldType

RUN_COUNTY = "run_county"
_APP: Any = None


@dataclass
class CountyTask:
    code: str
    preset: str
    layers: dict[str, tuple[str, str]]
    others: dict[str, dict[str, tuple[str, str]]]  # neighbour code -> its layers
    areas: dict[str, bytes]  # this county's and its neighbours' areas
    values: dict[str, Any]  # the preset's run parameters by name (MIN_AREA, …); absent = the profile's value
    profile_path: str
    part_dir: str


@dataclass
class CountyOutcome:
    code: str
    ok: bool
    error: str = ""
    part: str = ""
    count: int = 0
    area_m2: float = 0.0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the worker process's CPU time (user + system) for this county
    peak_mb: float = 0.0
    pid: int = 0
    stats: list[tuple[str, str, str, int, float, float | None]] = field(default_factory=list)


def ensure_qgis() -> None:
    """PyQGIS initialised once per worker process (a no-op where QGIS already runs)."""
    global _APP
    from qgis.core import QgsApplication  # noqa: PLC0415

    if QgsApplication.instance() is None and _APP is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        _APP = QgsApplication([], False)
        _APP.initQgis()


def _peak_mb() -> float:
    """This process's peak RSS (VmHWM; ru_maxrss would carry the parent's peak across exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _cpu() -> float:
    """CPU seconds of this process, every thread (a shared machine slows the wall clock, not this)."""
    return time.process_time()


def run_county(task: CountyTask) -> CountyOutcome:
    """Never raises for a county's own problem: a broken input comes back as ``ok=False`` with the reason."""
    start, cpu = time.perf_counter(), _cpu()
    ensure_qgis()
    try:
        outcome = _run(task)
    except Exception as exc:  # a broken county must not stop the others
        outcome = CountyOutcome(task.code, False, f"{type(exc).__name__}: {exc}")
        outcome.error += "\n" + traceback.format_exc(limit=3) if os.environ.get("HUIJIAO_DEBUG") else ""
    outcome.seconds = time.perf_counter() - start
    outcome.cpu_seconds = _cpu() - cpu
    try:
        outcome.peak_mb = _peak_mb()
    except OSError:  # no /proc (not Linux)
        pass
    outcome.pid = os.getpid()
    return outcome


def run_preset_on(preset: str, layers: dict, values: dict, profile_path: str) -> Any:
    """THE adapter to the county presets: run the declared preset (``PresetSpec``) on given layers with its
    run parameters by name, exactly as its own Processing algorithm does. Returns (PresetResult, crs)."""
    from huijiao_plugin.core.compare.engine import CountyOverlay  # noqa: PLC0415
    from huijiao_plugin.core.compare.presets import PRESETS, run_preset  # noqa: PLC0415
    from huijiao_plugin.core.compare.rules import RuleProfile  # noqa: PLC0415

    options, overrides = PRESETS[preset].options_and_overrides(values)
    profile = RuleProfile.load(profile_path) if profile_path else RuleProfile.default()
    overlay = CountyOverlay(layers, profile.with_overrides(overrides), workers=1)
    result = run_preset(preset, overlay, options)
    return result, overlay.crs


def _run(task: CountyTask) -> CountyOutcome:
    from qgis.core import (  # noqa: PLC0415
        QgsCoordinateTransformContext,
        QgsFeatureSink,
        QgsField,
        QgsVectorFileWriter,
    )

    from huijiao_plugin.core.compare.statistics import region_statistics, result_features, result_fields  # noqa: PLC0415
    from huijiao_plugin.core.province.partition import Partition, county_layers  # noqa: PLC0415

    partition = Partition(task.code, task.areas)
    layers = county_layers(task.layers, task.others, partition.area)
    result, crs = run_preset_on(task.preset, layers, task.values, task.profile_path)
    result.pieces = [p for p in result.pieces if partition.keeps(p.geom)]
    fields = result_fields(result)
    fields.append(QgsField(RUN_COUNTY, FieldType.String))
    Path(task.part_dir).mkdir(parents=True, exist_ok=True)
    final = Path(task.part_dir) / f"{task.code}.gpkg"
    tmp = final.with_suffix(".tmp.gpkg")
    tmp.unlink(missing_ok=True)
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "pieces"
    from huijiao_plugin.core.compare.statistics import WKB_OUTPUT  # noqa: PLC0415

    writer = QgsVectorFileWriter.create(
        str(tmp), fields, WKB_OUTPUT, crs, QgsCoordinateTransformContext(), options
    )
    if writer.hasError() != QgsVectorFileWriter.WriterError.NoError:
        raise OSError(writer.errorMessage())
    for feature in result_features(result, fields):
        feature.setAttributes([*feature.attributes()[: fields.count() - 1], task.code])
        writer.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
    del writer
    os.replace(tmp, final)  # a part file exists only when complete
    for piece in result.pieces:
        piece.codes = (task.code, "", "")
    stats = [
        (row.rule_id, row.category, row.category_name, row.count, row.area_m2, row.ratio_pct)
        for row in region_statistics([result], "county")
    ]
    return CountyOutcome(
        task.code,
        True,
        part=str(final),
        count=len(result.pieces),
        area_m2=sum(p.area_m2 for p in result.pieces),
        stats=stats,
    )
