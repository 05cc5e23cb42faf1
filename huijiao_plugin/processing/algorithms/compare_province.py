"""huijiao:provincecompare — a county preset over a whole province, county by county (core/province)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from huijiao_plugin.core.compare.presets import PRESETS
from huijiao_plugin.core.province.engine import ProvinceConfig, dask_available, run_province
from huijiao_plugin.core.province.output import OutputError
from huijiao_plugin.core.province.sources import SourceError
from huijiao_plugin.processing.algorithms.compare_common import (
    MIN_AREA,
    MIN_WIDTH,
    NOISE_WIDTH,
    RULES_PROFILE,
    TOLERANCE,
    XLSX,
)
from huijiao_plugin.processing.base import HuijiaoAlgorithm
from huijiao_plugin.toolbelt.i18n import tr

PRESET = "PRESET"
SOURCE = "SOURCE"
WORKERS = "WORKERS"
SCHEDULER = "SCHEDULER"
OUTPUT = "OUTPUT"


class CompareProvinceAlgorithm(HuijiaoAlgorithm):
    ALG_ID = "provincecompare"
    GROUP_ID = "compare"

    def displayName(self) -> str:
        return tr("Province comparison (county by county)")

    def shortHelpString(self) -> str:
        return tr(
            "Runs one county preset (PRESET, e.g. pbfnongrain) over every county of SOURCE: a folder of "
            "county GeoPackages named by the 6-digit code, or a PostGIS URI "
            "(postgresql://user:password@host/db?schema=name) whose tables carry a county_code column. "
            "A piece belongs to the county holding its representative point, so nothing is counted twice. "
            "Counties run in WORKERS processes (Dask when installed, or the Dask scheduler at SCHEDULER) "
            "and are written to OUTPUT as each finishes; running again on the same OUTPUT skips the "
            "finished counties. Statistics per county, city and province."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(QgsProcessingParameterString(PRESET, tr("Preset id"), "pbfnongrain"))
        self.addParameter(QgsProcessingParameterString(SOURCE, tr("County GeoPackage folder or PostGIS URI")))
        for name, default, label in (
            (MIN_AREA, 0.5, "Minimum piece area (m²)"),
            (MIN_WIDTH, 0.1, "Minimum mean width area/perimeter (m)"),
            (NOISE_WIDTH, 1.0, "Digitising noise width (m, 0 = off)"),
        ):
            self.addParameter(
                QgsProcessingParameterNumber(
                    name, tr(label), QgsProcessingParameterNumber.Type.Double, default, minValue=0.0
                )
            )
        self.addParameter(
            QgsProcessingParameterNumber(
                TOLERANCE,
                tr("Contiguity tolerance (m)"),
                QgsProcessingParameterNumber.Type.Double,
                optional=True,
                minValue=0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                WORKERS,
                tr("Worker processes (0 = cores)"),
                QgsProcessingParameterNumber.Type.Integer,
                0,
                minValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterString(SCHEDULER, tr("Dask scheduler address"), optional=True)
        )
        self.addParameter(
            QgsProcessingParameterFile(
                RULES_PROFILE, tr("Rule profile (JSON, optional)"), extension="json", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(OUTPUT, tr("Province result"), "GeoPackage (*.gpkg)")
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                XLSX, tr("Statistics workbook (xlsx)"), "Excel (*.xlsx)", optional=True, createByDefault=False
            )
        )
        self.addOutput(QgsProcessingOutputNumber("DONE", tr("Counties finished")))
        self.addOutput(QgsProcessingOutputNumber("FAILED", tr("Counties failed")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        preset = self.parameterAsString(parameters, PRESET, context).strip()
        if preset not in PRESETS:
            raise QgsProcessingException(tr("Unknown preset: {preset}").format(preset=preset))
        scheduler = self.parameterAsString(parameters, SCHEDULER, context).strip()
        if scheduler and not dask_available():
            raise QgsProcessingException(
                tr("A Dask scheduler needs the optional package dask[distributed] (pip install it).")
            )
        options = {
            "min_area": self.parameterAsDouble(parameters, MIN_AREA, context),
            "min_width": self.parameterAsDouble(parameters, MIN_WIDTH, context),
            "noise_width": self.parameterAsDouble(parameters, NOISE_WIDTH, context),
        }
        if parameters.get(TOLERANCE) is not None:
            options["tolerance"] = self.parameterAsDouble(parameters, TOLERANCE, context)
        config = ProvinceConfig(
            preset=preset,
            source=self.parameterAsString(parameters, SOURCE, context).strip(),
            output=self.parameterAsFileOutput(parameters, OUTPUT, context),
            options=options,
            profile_path=self.parameterAsFile(parameters, RULES_PROFILE, context),
            workers=self.parameterAsInt(parameters, WORKERS, context),
            scheduler=scheduler,
            xlsx=self.parameterAsFileOutput(parameters, XLSX, context),
        )
        if not dask_available():
            feedback.pushInfo(tr("Dask is not installed: the counties run in a local process pool."))
        states: dict[str, str] = {}

        def progress(code: str, state: str, message: str) -> None:
            states[code] = state
            line = tr("County {code}: {state} {message}").format(code=code, state=state, message=message)
            if state == "failed":
                feedback.reportError(line)
            else:
                feedback.pushInfo(line)
            finished = sum(1 for s in states.values() if s in ("done", "failed", "skipped"))
            feedback.setProgress(100.0 * finished / max(1, len(states)))

        try:
            summary = run_province(config, progress, feedback.isCanceled)
        except (SourceError, OutputError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        if summary.canceled:
            raise QgsProcessingException(tr("Canceled."))
        outputs: dict[str, Any] = {
            OUTPUT: config.output,
            "DONE": len(summary.done) + len(summary.skipped),
            "FAILED": len(summary.failed),
        }
        if config.xlsx:
            outputs[XLSX] = config.xlsx
        return outputs
