"""The exchange package (交换包): one zip format for network submission and offline exchange.

A package is a zip archive holding ``manifest.json``, the data as GeoPackage(s) under ``data/`` and
optional attachments under ``attachments/``. Building is deterministic: the same features give the
same data-file sha256 (fixed fid order, fixed ``gpkg_contents.last_change``, checkpointed database
without ``-wal``/``-shm``, VACUUMed; zip entries sorted with a fixed date). The package sha256 is the
sha256 of the zip bytes.

The offline side (export to a disk, import, loading into the 一张图) is
:mod:`huijiao_plugin.core.exchange.offline`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCoordinateTransformContext,
    QgsDistanceArea,
    QgsFeature,
    QgsFeatureRequest,
    QgsFields,
    QgsGeometry,
    QgsProject,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsWkbTypes,
)

from huijiao_plugin.compat import wkb_display_string
from huijiao_plugin.core.settings import DEPARTMENTS
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

FORMAT_VERSION = "1.0"
MANIFEST_NAME = "manifest.json"
DATA_DIR = "data"
ATTACHMENTS_DIR = "attachments"
#: written into gpkg_contents.last_change so that the data files do not depend on the build time
FIXED_GPKG_TIMESTAMP = "2000-01-01T00:00:00.000Z"
#: date of every zip entry (the earliest a zip can hold)
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
HASH_CHUNK = 1024 * 1024
FID_BATCH = 2000
#: refuse archives whose entries expand more than this factor (zip bombs) ...
MAX_COMPRESSION_RATIO = 200
#: ... or more than this many bytes in total
MAX_UNCOMPRESSED_BYTES = 20 * 1024**3
PERIOD_PATTERN = re.compile(r"^(?P<year>(19|20)\d\d)(H[12]|Q[1-4])?$")
SAFE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

ProgressCallback = Callable[[float], None]


class PackageError(Exception):
    """A package cannot be built, verified or imported. ``str(e)`` is a user message (translated);
    ``reasons`` lists each problem found."""

    def __init__(self, message: str, reasons: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reasons = list(reasons)

    def __str__(self) -> str:
        base = super().__str__()
        if not self.reasons:
            return base
        return base + "\n" + "\n".join("- " + r for r in self.reasons)


class PackageCanceledError(PackageError):
    """Building was canceled (``is_canceled()`` returned True); nothing is left at the output path."""


def _check_canceled(is_canceled: Callable[[], bool] | None) -> None:
    if is_canceled is not None and is_canceled():
        raise PackageCanceledError(tr("Packaging was canceled."))


class AlreadyImportedError(PackageError):
    """The package (same sha256 or package UUID) was imported before."""

    def __init__(self, message: str, previous: dict[str, Any]) -> None:
        super().__init__(message)
        self.previous = previous


@dataclass
class LayerInput:
    """One layer to package: the source layer and its name inside the package (catalog layer name)."""

    layer: QgsVectorLayer
    name: str
    file: str = ""  # GeoPackage file name inside data/; default "<dataset_id>.gpkg"


@dataclass
class BuiltPackage:
    path: Path
    sha256: str
    size: int
    manifest: dict[str, Any]


@dataclass
class VerifiedPackage:
    path: Path
    sha256: str
    size: int
    manifest: dict[str, Any]


@dataclass
class ImportedPackage:
    sha256: str
    manifest: dict[str, Any]
    directory: Path
    layer_uris: list[tuple[str, str]] = field(default_factory=list)  # (layer name, OGR uri)


# --------------------------------------------------------------------------------------------- helpers


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_state_dir() -> Path:
    """``<QGIS profile>/huijiao``: where receipts, upload states and the import registry live."""
    path = Path(QgsApplication.qgisSettingsDirPath()) / "huijiao"
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_valid_period(period: str) -> bool:
    """``2025`` (year), ``2025H1``/``2025H2`` (half-year) or ``2025Q1``…``2025Q4`` (quarter)."""
    return bool(PERIOD_PATTERN.match(period or ""))


def region_prefix(region_code: str) -> str:
    """The significant prefix of a GB/T 2260 code: 610000 → 61, 610100 → 6101, 610102 → 610102."""
    code = (region_code or "").strip()
    if len(code) == 6 and code.isdigit():
        if code.endswith("0000"):
            return code[:2]
        if code.endswith("00"):
            return code[:4]
    return code


def region_within(code: str, user_region: str) -> bool:
    """True when ``code`` (6-digit region or 9/12/19-digit 坐落单位代码) lies in ``user_region``."""
    code = (code or "").strip()
    prefix = region_prefix(user_region)
    if not prefix or not code.isdigit():
        return False
    return region_prefix(code[:6]).startswith(prefix) if len(code) >= 6 else code.startswith(prefix)


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _plugin_version() -> str:
    from huijiao_plugin.toolbelt.resources import plugin_version

    return plugin_version()


# ------------------------------------------------------------------------------------ ellipsoidal area


def ellipsoidal_areas(crs: QgsCoordinateReferenceSystem, geometries: Sequence[QgsGeometry]) -> list[float]:
    """三调 ellipsoidal areas (m²) of ``geometries`` in ``crs``.

    Uses the project's 三调 calculator (``core.ellipsoidal_area``); when that module is not available
    the CGCS2000 ellipsoid of ``QgsDistanceArea`` is used, which agrees with the 三调 method to a few
    0.01 m² on patch-sized polygons (domain.md §5.3).
    """
    try:
        from huijiao_plugin.core.ellipsoidal_area import EllipsoidalAreaCalculator
    except ImportError:
        EllipsoidalAreaCalculator = None  # noqa: N806
    if EllipsoidalAreaCalculator is not None:
        return [float(a) for a in EllipsoidalAreaCalculator(crs).areas(list(geometries))]
    calculator = QgsDistanceArea()
    calculator.setSourceCrs(crs, QgsProject.instance().transformContext())
    calculator.setEllipsoid("EPSG:1024")
    return [calculator.measureArea(g) if g is not None and not g.isNull() else 0.0 for g in geometries]


# ---------------------------------------------------------------------------- deterministic GeoPackage


def _package_fields(fields: QgsFields) -> tuple[QgsFields, list[int]]:
    """Fields of the written layer (the source ``fid`` column is dropped: fids are renumbered 1…n)."""
    out = QgsFields()
    indexes: list[int] = []
    for index, fld in enumerate(fields):
        if fld.name().lower() == "fid":
            continue
        out.append(fld)
        indexes.append(index)
    return out, indexes


def _features_in_fid_order(layer: QgsVectorLayer, batch: int = FID_BATCH) -> Iterable[QgsFeature]:
    """Every feature of ``layer`` in ascending fid order, fetched in batches (bounded memory)."""
    fids = sorted(layer.allFeatureIds())
    for start in range(0, len(fids), batch):
        wanted = fids[start : start + batch]
        fetched = {
            f.id(): QgsFeature(f) for f in layer.getFeatures(QgsFeatureRequest().setFilterFids(wanted))
        }
        for fid in wanted:
            feature = fetched.get(fid)
            if feature is not None:
                yield feature


def finalize_gpkg(path: str | os.PathLike[str]) -> None:
    """Make a written GeoPackage reproducible and self-contained: fixed timestamps, WAL checkpointed,
    then copied with ``VACUUM INTO`` into a fresh rollback-journal file (its header counters do not depend
    on how many transactions the writer used); no ``-wal``/``-shm`` file is left next to it."""
    path = Path(path)
    fresh = path.with_name(path.name + ".vacuum")
    fresh.unlink(missing_ok=True)
    con = sqlite3.connect(str(path), isolation_level=None)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode=DELETE")
        con.execute("UPDATE gpkg_contents SET last_change = ?", (FIXED_GPKG_TIMESTAMP,))
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "gpkg_metadata_reference" in tables:
            con.execute("UPDATE gpkg_metadata_reference SET timestamp = ?", (FIXED_GPKG_TIMESTAMP,))
        con.execute("VACUUM INTO ?", (str(fresh),))
    finally:
        con.close()
    os.replace(fresh, path)
    for suffix in ("-wal", "-shm", "-journal"):
        leftover = Path(str(path) + suffix)
        if leftover.exists():
            leftover.unlink()


def write_layers_gpkg(
    path: str | os.PathLike[str],
    layers: Sequence[tuple[str, QgsVectorLayer]],
    crs: QgsCoordinateReferenceSystem,
    progress: ProgressCallback | None = None,
    is_canceled: Callable[[], bool] | None = None,
    transform_context: QgsCoordinateTransformContext | None = None,
) -> list[dict[str, Any]]:
    """Write ``layers`` ((name, layer) pairs) into one new GeoPackage in ``crs``, deterministically.

    Features are written in ascending source-fid order with new fids 1…n, geometries as multi-type
    and transformed to ``crs``. Returns per layer: name, geometry_type, feature_count, area_m2, extent.
    ``transform_context`` defaults to the current project's; pass it when running off the main thread.
    """
    path = Path(path)
    if path.exists():
        path.unlink()
    context = transform_context if transform_context is not None else QgsProject.instance().transformContext()
    stats: list[dict[str, Any]] = []
    total = sum(max(layer.featureCount(), 0) for _, layer in layers) or 1
    done = 0
    for index, (name, layer) in enumerate(layers):
        if not layer or not layer.isValid():
            raise PackageError(tr("Layer {name} is not valid and cannot be packaged.").format(name=name))
        fields, indexes = _package_fields(layer.fields())
        wkb_type = QgsWkbTypes.multiType(QgsWkbTypes.flatType(layer.wkbType()))
        options = QgsVectorFileWriter.SaveVectorOptions()
        options.driverName = "GPKG"
        options.layerName = name
        options.fileEncoding = "UTF-8"
        if index > 0:
            options.actionOnExistingFile = QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteLayer
        writer = QgsVectorFileWriter.create(str(path), fields, wkb_type, crs, context, options)
        if writer is None or writer.hasError():
            message = writer.errorMessage() if writer is not None else ""
            raise PackageError(
                tr("Cannot write the GeoPackage {path}: {error}").format(path=path, error=message)
            )
        transform = None
        if layer.crs().isValid() and layer.crs() != crs:
            transform = QgsCoordinateTransform(layer.crs(), crs, context)
        polygonal = QgsWkbTypes.geometryType(wkb_type) == QgsWkbTypes.GeometryType.PolygonGeometry
        geometries: list[QgsGeometry] = []
        extent = QgsRectangle()
        extent.setMinimal()
        count = 0
        for src in _features_in_fid_order(layer):
            if is_canceled is not None and is_canceled():
                del writer
                raise PackageCanceledError(tr("Packaging was canceled."))
            out = QgsFeature(fields)
            attrs = src.attributes()
            out.setAttributes([attrs[i] for i in indexes])
            geometry = QgsGeometry(src.geometry())
            if not geometry.isNull():
                if transform is not None:
                    geometry.transform(transform)
                geometry.convertToMultiType()
                out.setGeometry(geometry)
                extent.combineExtentWith(geometry.boundingBox())
                if polygonal:
                    geometries.append(geometry)
            if not writer.addFeature(out):
                message = writer.errorMessage()
                del writer
                raise PackageError(
                    tr("Cannot write a feature of layer {name}: {error}").format(name=name, error=message)
                )
            count += 1
            done += 1
            if progress is not None and done % 200 == 0:
                progress(100.0 * done / total)
        del writer
        _check_canceled(is_canceled)
        area = round(sum(ellipsoidal_areas(crs, geometries)), 2) if polygonal else None
        stats.append(
            {
                "name": name,
                "geometry_type": wkb_display_string(wkb_type),
                "feature_count": count,
                "area_m2": area,
                "extent": None
                if count == 0 or extent.width() < 0
                else [
                    round(extent.xMinimum(), 3),
                    round(extent.yMinimum(), 3),
                    round(extent.xMaximum(), 3),
                    round(extent.yMaximum(), 3),
                ],
            }
        )
    _check_canceled(is_canceled)
    finalize_gpkg(path)
    if progress is not None:
        progress(100.0)
    return stats


# ------------------------------------------------------------------------------------------ zip writing


def _zip_add_file(archive: zipfile.ZipFile, arcname: str, source: Path) -> None:
    info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    with open(source, "rb") as src, archive.open(info, "w", force_zip64=True) as dst:
        shutil.copyfileobj(src, dst, HASH_CHUNK)


def _zip_add_bytes(archive: zipfile.ZipFile, arcname: str, data: bytes) -> None:
    info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")


def build_package(
    output_path: str | os.PathLike[str],
    layers: Sequence[LayerInput],
    dataset_id: str,
    region_code: str,
    period: str,
    department: str,
    unit: str,
    crs: QgsCoordinateReferenceSystem | str | None = None,
    validation: dict[str, Any] | None = None,
    sources: Sequence[dict[str, Any]] = (),
    attachments: Sequence[str | os.PathLike[str]] = (),
    package_uuid: str | None = None,
    created_at: str | None = None,
    progress: ProgressCallback | None = None,
    is_canceled: Callable[[], bool] | None = None,
    transform_context: QgsCoordinateTransformContext | None = None,
) -> BuiltPackage:
    """Build an exchange package zip at ``output_path`` and return it with its sha256 and manifest.

    ``is_canceled()`` is asked between features and phases: a canceled build raises
    :class:`PackageCanceledError` and leaves nothing at ``output_path``. ``transform_context`` defaults to
    the current project's; a background task passes the one it took on the main thread."""
    problems: list[str] = []
    if not dataset_id or not SAFE_NAME_PATTERN.match(dataset_id):
        problems.append(tr("The dataset id '{value}' is not valid.").format(value=dataset_id))
    if not (region_code or "").isdigit() or len(region_code) not in (2, 4, 6):
        problems.append(
            tr("The region code '{value}' is not a GB/T 2260 code (2, 4 or 6 digits).").format(
                value=region_code
            )
        )
    if not is_valid_period(period):
        problems.append(
            tr(
                "The period '{value}' is not valid: use a year (2025), a half-year (2025H1) or a quarter."
            ).format(value=period)
        )
    if department not in DEPARTMENTS:
        problems.append(tr("The department '{value}' is unknown (zrzy or nync).").format(value=department))
    if not layers:
        problems.append(tr("There is no layer to package."))
    names = [item.name for item in layers]
    if len(set(n.lower() for n in names)) != len(names):
        problems.append(tr("Two layers have the same name in the package."))
    for item in layers:
        if not SAFE_NAME_PATTERN.match(item.name or ""):
            problems.append(tr("The layer name '{value}' is not valid in a package.").format(value=item.name))
    attachment_paths = [Path(a) for a in attachments]
    for attachment in attachment_paths:
        if not attachment.is_file():
            problems.append(tr("The attachment {path} does not exist.").format(path=attachment))
    if problems:
        raise PackageError(tr("The package cannot be built."), problems)

    if crs is None:
        target_crs = layers[0].layer.crs()
    elif isinstance(crs, str):
        target_crs = QgsCoordinateReferenceSystem(crs)
    else:
        target_crs = crs
    if not target_crs.isValid():
        raise PackageError(tr("The coordinate reference system of the package is not valid."))

    groups: dict[str, list[LayerInput]] = {}
    for item in layers:
        file_name = item.file or f"{dataset_id}.gpkg"
        if not SAFE_NAME_PATTERN.match(file_name) or not file_name.lower().endswith(".gpkg"):
            raise PackageError(tr("The data file name '{value}' is not valid.").format(value=file_name))
        groups.setdefault(file_name, []).append(item)

    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="huijiao-pkg-", dir=str(output_path.parent)) as work:
        work_dir = Path(work)
        files: list[dict[str, Any]] = []
        layer_entries: list[dict[str, Any]] = []
        entries: list[tuple[str, Path]] = []
        total_groups = len(groups)
        for group_index, (file_name, items) in enumerate(sorted(groups.items())):
            gpkg_path = work_dir / file_name

            def group_progress(value: float, _i: int = group_index) -> None:
                if progress is not None:
                    progress(90.0 * (_i + value / 100.0) / total_groups)

            stats = write_layers_gpkg(
                gpkg_path,
                [(i.name, i.layer) for i in items],
                target_crs,
                group_progress,
                is_canceled,
                transform_context,
            )
            arcname = f"{DATA_DIR}/{file_name}"
            entries.append((arcname, gpkg_path))
            for entry in stats:
                layer_entries.append({"file": arcname, **entry})
        for attachment in attachment_paths:
            entries.append((f"{ATTACHMENTS_DIR}/{attachment.name}", attachment))
        entries.sort(key=lambda e: e[0])
        for arcname, source in entries:
            _check_canceled(is_canceled)
            files.append({"path": arcname, "size": source.stat().st_size, "sha256": sha256_file(source)})

        manifest: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "package_uuid": package_uuid or str(uuid.uuid4()),
            "dataset_id": dataset_id,
            "region_code": region_code,
            "period": period,
            "department": department,
            "unit": unit,
            "created_at": created_at or _now_iso(),
            "crs": target_crs.authid(),
            "files": files,
            "layers": layer_entries,
            "validation": validation or {"errors": 0, "warnings": 0, "summary": {}},
            "sources": list(sources),
            "plugin_version": _plugin_version(),
        }
        tmp_zip = work_dir / "package.zip"
        with zipfile.ZipFile(tmp_zip, "w", allowZip64=True) as archive:
            all_entries = [(MANIFEST_NAME, None), *entries]
            for n, (arcname, source) in enumerate(sorted(all_entries, key=lambda e: e[0])):
                _check_canceled(is_canceled)
                if progress is not None:
                    progress(90.0 + 9.0 * n / len(all_entries))
                if source is None:
                    _zip_add_bytes(archive, arcname, manifest_bytes(manifest))
                else:
                    _zip_add_file(archive, arcname, source)
        _check_canceled(is_canceled)
        os.replace(tmp_zip, output_path)
    if progress is not None:
        progress(100.0)
    digest = sha256_file(output_path)
    log.info("Built package %s (%s) sha256=%s", output_path.name, dataset_id, digest)
    return BuiltPackage(output_path, digest, output_path.stat().st_size, manifest)


def iter_package_layers(manifest: dict[str, Any]) -> Iterable[tuple[str, str]]:
    for entry in manifest.get("layers", []):
        yield str(entry.get("file")), str(entry.get("name"))


def package_layer_names(dataset_id: str, source_names: Sequence[str], catalog: Any = None) -> list[str]:
    """Names of the layers inside a package: a source name that is a standard layer name of the dataset
    (catalog ``layer_names``, case-insensitive) keeps it in the standard spelling; other layers get the
    dataset's first standard name (with ``_2``, ``_3``… when several layers need it)."""
    standard: list[str] = []
    try:
        if catalog is None:
            from huijiao_plugin.core.catalog import get_catalog

            catalog = get_catalog()
        spec = catalog.datasets.get(dataset_id)
        standard = list(spec.layer_names) if spec is not None else []
    except Exception as error:  # the catalog is optional here: fall back to the source names
        log.warning("catalog unavailable for layer names: %s", error)
    by_upper = {n.upper(): n for n in standard}
    out: list[str] = []
    for source in source_names:
        name = by_upper.get(str(source).strip().upper())
        if name is None or name in out:
            base = (
                standard[0] if standard else re.sub(r"[^A-Za-z0-9_]", "_", str(source)).strip("_") or "layer"
            )
            name = base
            n = 2
            while name in out:
                name = f"{base}_{n}"
                n += 1
        out.append(name)
    return out
