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
from huijiao_plugin.core.compare.spec import ParamSpec
from huijiao_plugin.core.province.engine import ProvinceConfig, dask_available, run_province
from huijiao_plugin.core.province.output import OutputError, is_postgres
from huijiao_plugin.core.province.sources import SourceError
from huijiao_plugin.processing.algorithms.compare_common import (
    RULES_PROFILE,
    XLSX,
    CompareAlgorithm,
    _default_profile,
    add_preset_parameter,
)
from huijiao_plugin.processing.base import HuijiaoAlgorithm
from huijiao_plugin.toolbelt.i18n import tr

PRESET = "PRESET"
SOURCE = "SOURCE"
WORKERS = "WORKERS"
SCHEDULER = "SCHEDULER"
OUTPUT = "OUTPUT"
OUTPUT_PG = "OUTPUT_PG"


def preset_params() -> list[ParamSpec]:
    """Every preset's run parameters, once by name: the province run takes those of the chosen PRESET."""
    out: dict[str, ParamSpec] = {}
    for spec in PRESETS.values():
        for p in spec.all_params:
            out.setdefault(p.name, p)
    return list(out.values())


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
            "finished counties. Statistics per county, city and province. "
            "OUTPUT_PG (postgresql://user:password@host/db?schema=name), when given, replaces OUTPUT: "
            "the same tables in that PostgreSQL schema, the finished counties recorded there."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(QgsProcessingParameterString(PRESET, tr("Preset id"), "pbfnongrain"))
        self.addParameter(QgsProcessingParameterString(SOURCE, tr("County GeoPackage folder or PostGIS URI")))
        profile = _default_profile()
        for p in preset_params():
            add_preset_parameter(self, p, profile)
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
            QgsProcessingParameterFileDestination(
                OUTPUT, tr("Province result"), "GeoPackage (*.gpkg)", optional=True, createByDefault=True
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                OUTPUT_PG,
                tr("Province result in PostgreSQL (URI with ?schema=, instead of OUTPUT)"),
                optional=True,
            )
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
        self.spec = PRESETS[preset]  # the county algorithm's reading of the preset's parameters
        output = self.parameterAsString(parameters, OUTPUT_PG, context).strip()
        output = output or self.parameterAsFileOutput(parameters, OUTPUT, context)
        if not output:
            raise QgsProcessingException(tr("Choose an output GeoPackage or a PostgreSQL schema."))
        values = CompareAlgorithm._values(self, parameters, context)  # type: ignore[arg-type]
        config = ProvinceConfig(
            preset=preset,
            source=self.parameterAsString(parameters, SOURCE, context).strip(),
            output=output,
            values=values,
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
            "DONE": len(summary.done) + len(summary.skipped),
            "FAILED": len(summary.failed),
        }
        if not is_postgres(config.output):  # a file QGIS may open; a PostgreSQL target is not one
            outputs[OUTPUT] = config.output
        if config.xlsx:
            outputs[XLSX] = config.xlsx
        return outputs
