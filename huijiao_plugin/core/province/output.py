"""The output of a province run — a GeoPackage, or a PostgreSQL schema (``postgresql://…?schema=name``) —
written only by the parent process, one county at a time, through OGR (the same code for both).

Layers / tables: ``province_result`` (the county preset's pieces + ``run_county``), ``province_stats`` (counts
and areas per county, city and province) and ``province_runs`` (one row per county: done / failed). A county's
pieces, statistics and its ``done`` row are committed in one transaction, so a killed run leaves either all
of a county or nothing of it, and a re-run skips exactly the finished counties (recorded in the GeoPackage or
in the database's ``province_runs`` table).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from osgeo import gdal, ogr

from huijiao_plugin.core.compare.statistics import STAT_COLUMNS
from huijiao_plugin.core.province.worker import CountyOutcome

ogr.UseExceptions()

RESULT = "province_result"
STATS = "province_stats"
RUNS = "province_runs"
RUN_FIELDS = [
    ("county_code", ogr.OFTString),
    ("status", ogr.OFTString),
    ("preset", ogr.OFTString),
    ("params", ogr.OFTString),
    ("pieces", ogr.OFTInteger64),
    ("area_m2", ogr.OFTReal),
    ("seconds", ogr.OFTReal),
    ("peak_mb", ogr.OFTReal),
    ("error", ogr.OFTString),
    ("finished_at", ogr.OFTString),
]
_OGR_TYPES = {"String": ogr.OFTString, "Int": ogr.OFTInteger64, "Double": ogr.OFTReal}


class OutputError(Exception):
    pass


def is_postgres(target: str | Path) -> bool:
    return str(target).startswith(("postgresql://", "postgres://", "PG:", "dbname=", "service="))


def parts_dir(target: str | Path) -> str:
    """Where workers leave each finished county's part GeoPackage for the parent to copy: beside a
    GeoPackage output; for a PostgreSQL output a folder in the temp directory named after the target."""
    if not is_postgres(target):
        return str(Path(target).with_suffix(".parts"))
    digest = hashlib.sha1(str(target).encode("utf-8")).hexdigest()[:12]
    return str(Path(tempfile.gettempdir()) / f"huijiao_province_{digest}.parts")


def _open_postgres(target: str) -> tuple[Any, str]:
    """(OGR data source, display name) of ``postgresql://user:pw@host:port/db?schema=name`` or a QGIS
    ``dbname=… schema=…`` string; the schema is created when missing."""
    from huijiao_plugin.core.province.sources import _pg_uri  # noqa: PLC0415 (needs PyQGIS)

    uri, schema = _pg_uri(target)
    if not schema.replace("_", "").isalnum():
        raise OutputError(f"PostgreSQL 模式名无效: {schema}")
    conninfo = uri.connectionInfo(False)
    try:
        # the schema first: OGR falls back to "public" for an active schema that does not exist yet
        ogr.Open(f"PG:{conninfo}", 1).ExecuteSQL(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        ds = ogr.Open(f"PG:{conninfo} active_schema={schema} schemas={schema}", 1)
    except RuntimeError as exc:
        raise OutputError(f"无法连接 PostgreSQL 输出: {exc}") from exc
    return ds, f"{uri.database()}.{schema}"


class ProvinceOutput:
    def __init__(self, target: str | Path, preset: str, params: dict[str, Any]) -> None:
        self.postgres = is_postgres(target)
        self.preset = preset
        self.params = json.dumps(params, sort_keys=True, ensure_ascii=False)
        if self.postgres:
            self.ds, self.name = _open_postgres(str(target))
        else:
            path = Path(target)
            self.name = path.name
            driver = ogr.GetDriverByName("GPKG")
            self.ds = ogr.Open(str(path), 1) if path.exists() else driver.CreateDataSource(str(path))
        if self.ds.GetLayerByName(RUNS) is None:
            self._table(RUNS, RUN_FIELDS)
        if self.ds.GetLayerByName(STATS) is None:
            self._table(STATS, [(name, _OGR_TYPES[_type_name(t)]) for name, t, _h in STAT_COLUMNS])
        self._check_same_run()

    def close(self) -> None:
        self.ds = None

    # --- state ----------------------------------------------------------------------------------------------
    def _table(self, name: str, fields: Sequence[tuple[str, int]]) -> None:
        layer = self.ds.CreateLayer(name, geom_type=ogr.wkbNone)
        for field_name, typ in fields:
            layer.CreateField(ogr.FieldDefn(field_name, typ))

    def _rows(self, name: str) -> list[dict[str, Any]]:
        layer = self.ds.GetLayerByName(name)
        layer.SetAttributeFilter(None)
        layer.ResetReading()
        return [f.items() for f in layer]

    def _check_same_run(self) -> None:
        for row in self._rows(RUNS):
            if row["status"] == "done" and (row["preset"], row["params"]) != (self.preset, self.params):
                raise OutputError(
                    f"输出 {self.name} 已含另一次运行（{row['preset']}，其他参数）的结果，请另选输出文件"
                )

    def finished(self) -> set[str]:
        return {row["county_code"] for row in self._rows(RUNS) if row["status"] == "done"}

    def runs(self) -> list[dict[str, Any]]:
        return self._rows(RUNS)

    def _delete(self, name: str, where: str) -> None:
        self.ds.ExecuteSQL(f"DELETE FROM {name} WHERE {where}")  # noqa: S608 (our own table names)

    # --- one county -----------------------------------------------------------------------------------
    def add_county(self, outcome: CountyOutcome) -> None:
        """Pieces + statistics + the ``done`` row of one county in one transaction, streamed from its part."""
        code = outcome.code.replace("'", "")
        part = ogr.Open(outcome.part) if outcome.ok else None
        src = part.GetLayerByName("pieces") if part is not None else None
        if src is not None and self.ds.GetLayerByName(RESULT) is None:
            # PostgreSQL: the preset's field names kept as they are (no laundering to lower case)
            options = ["FID=fid", "GEOMETRY_NAME=geom", "LAUNDER=NO"] if self.postgres else ["FID=fid"]
            dst = self.ds.CreateLayer(RESULT, src.GetSpatialRef(), ogr.wkbMultiPolygon, options)
            for i in range(src.GetLayerDefn().GetFieldCount()):
                dst.CreateField(src.GetLayerDefn().GetFieldDefn(i))
        # PostgreSQL: the pieces go in by COPY (the default only for a table created in this session)
        gdal.SetThreadLocalConfigOption("PG_USE_COPY", "YES")
        self.ds.StartTransaction()
        try:
            self._delete(RUNS, f"county_code = '{code}'")
            self._delete(STATS, f"level = 'county' AND region_code = '{code}'")
            if src is not None:
                self._delete(RESULT, f"run_county = '{code}'")
                dst = self.ds.GetLayerByName(RESULT)
                defn = dst.GetLayerDefn()
                for feature in src:
                    out = ogr.Feature(defn)
                    out.SetFrom(feature)
                    dst.CreateFeature(out)
                for rule_id, category, name, count, area, ratio in outcome.stats:
                    self._stat("county", code, rule_id, category, name, count, area, ratio)
            self._run_row(outcome)
            self.ds.CommitTransaction()
        except Exception:
            self.ds.RollbackTransaction()
            raise
        finally:
            part = None
            gdal.SetThreadLocalConfigOption("PG_USE_COPY", None)
        if outcome.ok:
            Path(outcome.part).unlink(missing_ok=True)

    def _run_row(self, outcome: CountyOutcome) -> None:
        layer = self.ds.GetLayerByName(RUNS)
        f = ogr.Feature(layer.GetLayerDefn())
        values = {
            "county_code": outcome.code,
            "status": "done" if outcome.ok else "failed",
            "preset": self.preset,
            "params": self.params,
            "pieces": outcome.count,
            "area_m2": outcome.area_m2,
            "seconds": outcome.seconds,
            "peak_mb": outcome.peak_mb,
            "error": outcome.error,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        for key, value in values.items():
            f.SetField(key, value)
        layer.CreateFeature(f)

    def _stat(
        self,
        level: str,
        code: str,
        rule_id: str,
        category: str,
        name: str,
        count: int,
        area: float,
        ratio: float | None,
    ) -> None:
        from huijiao_plugin.core.compare.presets import area_values  # noqa: PLC0415

        layer = self.ds.GetLayerByName(STATS)
        f = ogr.Feature(layer.GetLayerDefn())
        m2, mu, ha = area_values(area)
        values = [level, code, "", rule_id, category, name, count, area, mu, ha, ratio]
        del m2  # the raw m² sum is stored: roll-ups add exact sums, rounding only in the workbook
        for (field_name, _t, _h), value in zip(STAT_COLUMNS, values):
            if value is not None:
                f.SetField(field_name, value)
        layer.CreateFeature(f)

    # --- roll-up --------------------------------------------------------------------------------------------
    def county_stats(self) -> list[dict[str, Any]]:
        return [r for r in self._rows(STATS) if r["level"] == "county"]

    def write_rollup(self, rows: Sequence[tuple[str, str, str, str, str, int, float, float | None]]) -> None:
        self.ds.StartTransaction()
        self._delete(STATS, "level IN ('city', 'province')")
        for level, code, rule_id, category, name, count, area, ratio in rows:
            self._stat(level, code, rule_id, category, name, count, area, ratio)
        self.ds.CommitTransaction()


def _type_name(field_type: Any) -> str:
    from huijiao_plugin.compat import FieldType  # noqa: PLC0415

    for name in ("String", "Int", "Double"):
        if field_type == getattr(FieldType, name):
            return name
    return "String"
