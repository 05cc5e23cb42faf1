"""Offline exchange (人工交换、离线拷贝) of exchange packages, and loading packages into the 一张图.

:func:`export_package` copies a package with a ``.sha256`` side file to a folder or removable disk;
:func:`import_package` verifies every hash, refuses a package that was already imported
(:class:`ImportRegistry`) and extracts the data for loading; :func:`open_package` does the same for shared
data downloaded from the server, without the double-import guard.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from qgis.core import QgsProject, QgsVectorLayer

from huijiao_plugin.core.exchange.verify import safe_member, verify_package
from huijiao_plugin.core.package import (
    DATA_DIR,
    HASH_CHUNK,
    PERIOD_PATTERN,
    AlreadyImportedError,
    ImportedPackage,
    PackageError,
    VerifiedPackage,
    _now_iso,
    default_state_dir,
    region_within,
    sha256_file,
)
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)


def extract_package(verified: VerifiedPackage, destination: str | os.PathLike[str]) -> Path:
    """Extract a verified package into ``destination`` (created) and return it."""
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    with zipfile.ZipFile(verified.path) as archive:
        for info in archive.infolist():
            if info.filename.endswith("/"):
                continue
            target = (root / info.filename).resolve()
            if root not in target.parents:
                raise PackageError(tr("Unsafe path in the package: {name}").format(name=info.filename))
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, HASH_CHUNK)
    return destination


# ------------------------------------------------------------------------------------- offline exchange


class ImportRegistry:
    """The packages imported on this machine (JSON file), keyed by package sha256 and UUID."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path else default_state_dir() / "imported_packages.json"

    def _load(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("Import registry %s is unreadable; starting a new one", self.path)
            return []
        return data if isinstance(data, list) else []

    def entries(self) -> list[dict[str, Any]]:
        return self._load()

    def find(self, sha256: str, package_uuid: str | None = None) -> dict[str, Any] | None:
        for entry in self._load():
            if entry.get("sha256") == sha256 or (package_uuid and entry.get("package_uuid") == package_uuid):
                return entry
        return None

    def record(self, entry: dict[str, Any]) -> None:
        entries = self._load()
        entries.append(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(tmp, self.path)

    def mark_registered(self, sha256: str, receipt_id: str) -> None:
        """Note that an offline-exchanged package was registered with the server."""
        entries = self._load()
        for entry in entries:
            if entry.get("sha256") == sha256:
                entry["registered_receipt"] = receipt_id
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(tmp, self.path)


def package_file_name(manifest: dict[str, Any]) -> str:
    """A readable file name: ``<dataset>_<region>_<period>_<uuid8>.zip``."""
    return "{d}_{r}_{p}_{u}.zip".format(
        d=manifest.get("dataset_id", "package"),
        r=manifest.get("region_code", ""),
        p=manifest.get("period", ""),
        u=str(manifest.get("package_uuid", ""))[:8],
    )


def export_package(package_path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> Path:
    """Copy a package to ``folder`` (a directory or removable disk) with a ``.sha256`` side file,
    verifying the copy. Returns the copied zip path."""
    verified = verify_package(package_path)
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / package_file_name(verified.manifest)
        tmp = target.with_suffix(".part")
        shutil.copyfile(verified.path, tmp)
        os.replace(tmp, target)
        if sha256_file(target) != verified.sha256:
            target.unlink()
            raise PackageError(
                tr("The copy on {folder} is damaged; check the disk and try again.").format(folder=folder)
            )
        Path(str(target) + ".sha256").write_text(f"{verified.sha256}  {target.name}\n", encoding="utf-8")
    except OSError as error:
        raise PackageError(
            tr("Cannot write to {folder}: {error}. Check that the disk is plugged in and writable.").format(
                folder=folder, error=error
            )
        ) from error
    return target


def read_side_hash(package_path: str | os.PathLike[str]) -> str | None:
    side = Path(str(package_path) + ".sha256")
    if not side.exists():
        return None
    text = side.read_text(encoding="utf-8").strip()
    return text.split()[0] if text else None


# a layer name or file goes into an OGR URI ("<file>|layername=<name>"): no option may be injected
_URI_UNSAFE = re.compile(r"[|\x00-\x1f\x7f]")


def _layer_entries(verified: VerifiedPackage) -> list[tuple[str, str]]:
    """(file, name) of every layer, each checked: the file is a GeoPackage listed in the manifest under
    data/ (no absolute or '..' path, so nothing outside the package is opened) and neither holds '|'
    or a control character (no OGR option such as '|subset=' can be injected)."""
    listed = {str(entry.get("path", "")) for entry in verified.manifest.get("files", [])}
    reasons: list[str] = []
    out: list[tuple[str, str]] = []
    for entry in verified.manifest.get("layers", []):
        file, name = str(entry.get("file", "")), str(entry.get("name", ""))
        if _URI_UNSAFE.search(file) or _URI_UNSAFE.search(name) or not name.strip():
            reasons.append(
                tr("The layer {name} has a name or file with forbidden characters.").format(name=name)
            )
        elif not (safe_member(file) and file in listed and file.startswith(DATA_DIR + "/")):
            reasons.append(
                tr("The layer {name} points outside the package data ({file}).").format(name=name, file=file)
            )
        elif not file.lower().endswith(".gpkg"):
            reasons.append(tr("The layer {name} is not in a GeoPackage.").format(name=name))
        else:
            out.append((file, name))
    if reasons:
        raise PackageError(
            tr("The package is damaged or was modified; ask the sender for a new copy."), reasons
        )
    return out


def check_package_scope(
    manifest: dict[str, Any], region_code: str | None, dataset_id: str | None = None, catalog: Any = None
) -> None:
    """Refuse a package for another region than ``region_code`` (the user's unit; a province or city
    receives the packages of its counties), for another dataset than ``dataset_id`` (when given), for a
    dataset the catalog does not know."""
    reasons: list[str] = []
    package_region = str(manifest.get("region_code", ""))
    if region_code and not region_within(package_region, region_code):
        reasons.append(
            tr("The package is for region {package}, not for your region {mine}.").format(
                package=package_region, mine=region_code
            )
        )
    package_dataset = str(manifest.get("dataset_id", ""))
    if dataset_id and package_dataset != dataset_id:
        reasons.append(
            tr("The package holds dataset {package}, not the expected {expected}.").format(
                package=package_dataset, expected=dataset_id
            )
        )
    if catalog is None:
        from huijiao_plugin.core.catalog import get_catalog

        catalog = get_catalog()
    spec = catalog.datasets.get(package_dataset)
    if spec is None:
        reasons.append(tr("The dataset {dataset} of the package is unknown.").format(dataset=package_dataset))
    if reasons:
        raise PackageError(tr("The package is not for you; it is not imported."), reasons)


def import_package(
    package_path: str | os.PathLike[str],
    destination_root: str | os.PathLike[str] | None = None,
    registry: ImportRegistry | None = None,
    region_code: str | None = None,
    dataset_id: str | None = None,
    catalog: Any = None,
) -> ImportedPackage:
    """Verify an offline package (side-file hash, every data-file hash, its region and dataset, its
    layer paths), refuse a double import and extract it under ``destination_root/<sha256[:16]>``.
    Layers are returned as OGR URIs. ``region_code``: the importing unit's region."""
    registry = registry or ImportRegistry()
    verified = verify_package(package_path, read_side_hash(package_path))
    check_package_scope(verified.manifest, region_code, dataset_id, catalog)
    entries = _layer_entries(verified)
    previous = registry.find(verified.sha256, str(verified.manifest.get("package_uuid", "")))
    if previous is not None:
        raise AlreadyImportedError(
            tr("This package was already imported on {when} into {path}; it is not imported again.").format(
                when=previous.get("imported_at", "?"), path=previous.get("directory", "?")
            ),
            previous,
        )
    root = Path(destination_root) if destination_root else default_state_dir() / "imported"
    directory = extract_package(verified, root / verified.sha256[:16])
    uris = [(name, f"{directory / file}|layername={name}") for file, name in entries]
    registry.record(
        {
            "sha256": verified.sha256,
            "package_uuid": verified.manifest.get("package_uuid"),
            "dataset_id": verified.manifest.get("dataset_id"),
            "region_code": verified.manifest.get("region_code"),
            "period": verified.manifest.get("period"),
            "department": verified.manifest.get("department"),
            "imported_at": _now_iso(),
            "directory": str(directory),
            "source": str(package_path),
        }
    )
    return ImportedPackage(verified.sha256, verified.manifest, directory, uris)


def open_package(
    package_path: str | os.PathLike[str], destination_root: str | os.PathLike[str] | None = None
) -> ImportedPackage:
    """Verify a package (e.g. shared data downloaded from the server) and extract it once under
    ``destination_root/<sha256[:16]>`` for loading; unlike :func:`import_package` there is no
    double-import guard, so the same package can be opened again (it is not extracted twice)."""
    verified = verify_package(package_path)
    entries = _layer_entries(verified)
    root = Path(destination_root) if destination_root else default_state_dir() / "shared"
    directory = root / verified.sha256[:16]
    marker = directory / ".complete"
    if not marker.exists():
        if directory.exists():
            shutil.rmtree(directory)
        extract_package(verified, directory)
        marker.write_text(verified.sha256, encoding="utf-8")
    uris = [(name, f"{directory / file}|layername={name}") for file, name in entries]
    return ImportedPackage(verified.sha256, verified.manifest, directory, uris)


PACKAGE_PROPERTY = "huijiao/package_sha256"


def _period_year(period: str) -> int | None:
    match = PERIOD_PATTERN.match(period)
    return int(match.group("year")) if match else None


def load_imported_layers(
    imported: ImportedPackage, project: QgsProject | None = None, catalog: Any = None
) -> list[QgsVectorLayer]:
    """Add the layers of an imported or downloaded package to the 一张图 of ``project`` (default: the
    current project).

    Names, QML styles, the department group (基础 / 农业农村 / 自然资源), the place in the group by the
    catalog draw order and the initial visibility all come from :mod:`huijiao_plugin.core.one_map` — the
    one place that knows them — so a package's layers look exactly like the same dataset loaded from a
    folder. A layer is named "<dataset name> <period>" (with the layer name when the package holds
    several). A dataset the catalog does not know is loaded unstyled into the group of its department."""
    from huijiao_plugin.core.catalog import get_catalog
    from huijiao_plugin.core.one_map import (
        DATASET_PROPERTY,
        YEAR_PROPERTY,
        add_one_map_layers,
        department_group,
    )
    from huijiao_plugin.core.recognition import Recognition

    project = project or QgsProject.instance()
    manifest = imported.manifest
    dataset_id = str(manifest.get("dataset_id", ""))
    period = str(manifest.get("period", ""))
    year = _period_year(period)
    catalog = catalog or get_catalog()
    spec = catalog.datasets.get(dataset_id)
    several = len(imported.layer_uris) > 1
    loaded: list[QgsVectorLayer] = []
    for name, uri in imported.layer_uris:
        layer = QgsVectorLayer(uri, name, "ogr")
        if not layer.isValid():
            raise PackageError(tr("The layer {name} of the package cannot be opened.").format(name=name))
        if spec is not None:
            rec = Recognition(
                source=uri,
                provider="ogr",
                layer_name=name,
                dataset_id=dataset_id,
                confidence=1.0,
                evidence=[],
                field_mapping={},
                year=year,
            )
            # each layer is the newest of its dataset in this package: one_map decides group, order, style
            add_one_map_layers(project, [(dataset_id, rec, layer)], {dataset_id: rec}, catalog)
            display = spec.name_zh
        else:
            display = dataset_id
            # the group of the package's department, at its place in the 一张图 (one_map decides)
            department = str(manifest.get("department", "")) or dataset_id
            group = department_group(project, SimpleNamespace(group="", department=department))
            layer.setCustomProperty(DATASET_PROPERTY, dataset_id)
            if year:
                layer.setCustomProperty(YEAR_PROPERTY, year)
            project.addMapLayer(layer, False)
            group.insertLayer(0, layer)
        layer.setName(f"{display} {name} {period}" if several else f"{display} {period}")
        layer.setCustomProperty(PACKAGE_PROPERTY, imported.sha256)
        loaded.append(layer)
    return loaded
