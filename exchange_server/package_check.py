"""Checks the server runs on a committed package by itself: manifest shape, zip safety, file hashes,
GeoPackage
structure, CRS, layers, feature counts and the catalog's required fields. Returns receipt findings."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import re
import shutil
import sqlite3
import stat
import struct
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from exchange_server.catalog import Catalog
from exchange_server.errors import ApiError, finding
from exchange_server.regions import RegionCodeError, normalise

LOG = logging.getLogger(__name__)
FORMAT_VERSIONS = ("1", "1.0")
PERIOD_RE = re.compile(r"^(\d{4})(H[12]|Q[1-4])?$")
MANIFEST_NAME = "manifest.json"
REQUIRED_KEYS = (
    "format_version",
    "package_uuid",
    "dataset_id",
    "region_code",
    "period",
    "department",
    "files",
)
GPKG_APPLICATION_IDS = {0x47504B47, 0x47503130, 0x47503131}  # 'GPKG', 'GP10', 'GP11'
CHUNK = 1024 * 1024
MANIFEST_MAX_BYTES = 16 * 1024 * 1024
GPKG_QUERY_SECONDS = 120
EOCD_SIZE = 22
CD_RECORD_MAX = 46 + 3 * 1024
# stored and deflated: what zipfile reads without optional modules (deflate64 and the like are refused)
SUPPORTED_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
TRANSIENT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EIO,
    errno.ENOMEM,
    errno.EMFILE,
    errno.ENFILE,
    errno.EROFS,
    errno.ENOENT,
    errno.EAGAIN,
    errno.EBUSY,
}


def allowed_epsg(code: int) -> bool:
    """CGCS2000: geographic 4490, 6° GK 4491–4512 and 3° GK 4513–4554."""
    return code == 4490 or 4491 <= code <= 4554


def parse_epsg(crs: object) -> int | None:
    m = re.match(r"^\s*EPSG\s*:\s*(\d+)\s*$", str(crs or ""), re.IGNORECASE)
    return int(m.group(1)) if m else None


def period_year(period: str) -> int | None:
    m = PERIOD_RE.match(period or "")
    return int(m.group(1)) if m else None


@dataclass
class ManifestHead:
    dataset_id: str
    region_code: str
    period: str
    department: str
    package_uuid: str


def manifest_head(manifest: object) -> ManifestHead:
    """Validate the fields needed to authorise a commit; raise MANIFEST_INVALID / REGION_INVALID."""
    if not isinstance(manifest, dict):
        raise ApiError("MANIFEST_INVALID", "manifest must be an object")
    missing = [k for k in REQUIRED_KEYS if manifest.get(k) in (None, "")]
    if missing:
        raise ApiError("MANIFEST_INVALID", "missing: " + ", ".join(missing))
    if not isinstance(manifest["files"], list):
        raise ApiError("MANIFEST_INVALID", "files must be a list")
    if not isinstance(manifest.get("layers", []), list):
        raise ApiError("MANIFEST_INVALID", "layers must be a list")
    try:
        region = normalise(manifest["region_code"])
    except RegionCodeError:
        raise ApiError("REGION_INVALID", str(manifest["region_code"]))
    return ManifestHead(
        dataset_id=str(manifest["dataset_id"]),
        region_code=region,
        period=str(manifest["period"]),
        department=str(manifest["department"]),
        package_uuid=str(manifest["package_uuid"]),
    )


def check_manifest_content(manifest: dict, catalog: Catalog) -> list[dict]:
    """Checks that need no package bytes (also used for offline registration)."""
    found: list[dict] = []
    if str(manifest.get("format_version")) not in FORMAT_VERSIONS:
        found.append(finding("MANIFEST_FORMAT", str(manifest.get("format_version"))))
    if period_year(str(manifest.get("period"))) is None:
        found.append(finding("PERIOD_INVALID", str(manifest.get("period"))))
    ds = catalog.get(str(manifest.get("dataset_id")))
    if ds is None:
        found.append(finding("DATASET_UNKNOWN", str(manifest.get("dataset_id"))))
    epsg = parse_epsg(manifest.get("crs"))
    if manifest.get("crs") and (epsg is None or not allowed_epsg(epsg)):
        found.append(finding("CRS_NOT_CGCS2000", str(manifest.get("crs"))))
    layers = manifest.get("layers") or []
    if not layers:
        found.append(finding("NO_LAYERS"))
    if ds is not None and ds.layer_names:
        allowed = {n.lower() for n in ds.layer_names}
        for layer in layers:
            name = str(layer.get("name", "")) if isinstance(layer, dict) else ""
            if name.lower() not in allowed:
                found.append(
                    finding("LAYER_NAME_UNKNOWN", "{}；标准名称：{}".format(name, "、".join(ds.layer_names)))
                )
    validation = manifest.get("validation") or {}
    if isinstance(validation, dict):
        if _int(validation.get("errors")) > 0:
            found.append(finding("VALIDATION_ERRORS", str(validation.get("errors"))))
        if _int(validation.get("warnings")) > 0:
            found.append(finding("VALIDATION_WARNINGS", str(validation.get("warnings"))))
    return found


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def _unsafe_name(name: str) -> bool:
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or "\x00" in name:
        return True
    parts = re.split(r"[\\/]", name)
    return any(p == ".." for p in parts)


def check_package(path: Path, manifest: dict, catalog: Catalog, limits: object, tmp_root: Path) -> list[dict]:
    """Open the zip at ``path`` and run every content check. ``limits`` is the ServerConfig."""
    found = check_manifest_content(manifest, catalog)
    refused = zip_preflight(path, limits)
    if refused is not None:
        found.append(refused)
        return found
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        if server_fault(exc):
            raise
        found.append(finding("NOT_A_ZIP"))
        return found
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.zip_max_files:
            found.append(finding("ZIP_TOO_MANY_FILES", str(len(infos))))
            return found
        names: set[str] = set()
        total = 0
        fatal = False
        for info in infos:
            if _unsafe_name(info.filename):
                found.append(finding("ZIP_UNSAFE_PATH", info.filename[:200], path=info.filename[:200]))
                fatal = True
            mode = info.external_attr >> 16
            if info.create_system == 3 and stat.S_ISLNK(mode):
                found.append(finding("ZIP_SYMLINK", info.filename[:200], path=info.filename[:200]))
                fatal = True
            if info.filename in names:
                found.append(finding("ZIP_DUPLICATE_ENTRY", info.filename[:200]))
                fatal = True
            names.add(info.filename)
            if info.flag_bits & 0x1:
                found.append(finding("ZIP_ENCRYPTED", info.filename[:200], path=info.filename[:200]))
                fatal = True
            elif info.compress_type not in SUPPORTED_METHODS:
                detail = f"{info.filename[:200]}: {info.compress_type}"
                found.append(finding("ZIP_METHOD_UNSUPPORTED", detail, path=info.filename[:200]))
                fatal = True
            total += info.file_size
            if info.file_size > limits.zip_ratio_min_size:
                ratio = info.file_size / max(info.compress_size, 1)
                if ratio > limits.zip_max_ratio:
                    found.append(finding("ZIP_RATIO", f"{info.filename[:200]}: {ratio:.0f}:1"))
                    fatal = True
        if total > limits.zip_max_uncompressed:
            found.append(finding("ZIP_TOO_LARGE", str(total)))
            fatal = True
        packed = sum(info.compress_size for info in infos)
        if total > limits.zip_ratio_min_size and total / max(packed, 1) > limits.zip_max_ratio:
            # many members just under the per-member threshold: the whole package's ratio
            found.append(finding("ZIP_RATIO", f"{total / max(packed, 1):.0f}:1"))
            fatal = True
        if fatal:
            return found
        if MANIFEST_NAME not in names:
            found.append(finding("MANIFEST_MISSING"))
            return found
        inner = None
        if zf.getinfo(MANIFEST_NAME).file_size <= MANIFEST_MAX_BYTES:
            try:
                inner = json.loads(zf.read(MANIFEST_NAME).decode("utf-8"))
            except (ValueError, UnicodeDecodeError, zipfile.BadZipFile):
                inner = None
        if inner != manifest:
            found.append(finding("MANIFEST_MISMATCH"))
            return found
        listed: dict[str, dict] = {}
        for entry in manifest.get("files") or []:
            if isinstance(entry, dict) and entry.get("path"):
                listed[str(entry["path"])] = entry
        for name in sorted(names):
            if name == MANIFEST_NAME or name.endswith("/"):
                continue
            if name not in listed:
                found.append(finding("EXTRA_FILE", name[:200], path=name[:200]))
        workdir = Path(tempfile.mkdtemp(prefix="check-", dir=tmp_root))
        try:
            gpkgs: dict[str, Path] = {}
            for rel, entry in listed.items():
                if _unsafe_name(rel) or rel not in names:
                    found.append(finding("MISSING_FILE", rel[:200], path=rel[:200]))
                    continue
                is_gpkg = rel.lower().endswith(".gpkg")
                out_path = workdir / f"f{len(gpkgs)}.gpkg" if is_gpkg else None
                try:
                    size, digest = _hash_member(zf, rel, out_path)
                except (zipfile.BadZipFile, OSError, zlib.error, EOFError, ValueError) as exc:
                    if server_fault(exc):  # the server's disk, not the package: answered 503, no verdict
                        raise
                    found.append(finding("ZIP_CORRUPT", rel[:200], path=rel[:200]))
                    continue
                if _int(entry.get("size")) != size:
                    found.append(finding("FILE_SIZE_MISMATCH", rel[:200], path=rel[:200]))
                if str(entry.get("sha256", "")).lower() != digest:
                    found.append(finding("FILE_HASH_MISMATCH", rel[:200], path=rel[:200]))
                if out_path is not None:
                    gpkgs[rel] = out_path
            found.extend(_check_layers(manifest, catalog, gpkgs))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return found


def zip_preflight(path: Path, limits: object) -> dict | None:
    """Check the entry count and the central directory's size from the end-of-central-directory record (and
    its zip64 form) before any entry is parsed: zipfile reads the whole directory into objects when it opens
    a file (a million empty entries: hundreds of MB). A finding when the zip is refused, else None."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        tail_len = min(size, EOCD_SIZE + 65535)
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < EOCD_SIZE:
            return finding("NOT_A_ZIP")
        entries, cd_size, cd_offset = struct.unpack_from("<HLL", tail, at + 10)
        if entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
            locator = at - 20
            if locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":  # else: the 16/32-bit values
                (record_at,) = struct.unpack_from("<Q", tail, locator + 8)
                fh.seek(record_at)
                record = fh.read(56)
                if len(record) < 56 or record[:4] != b"PK\x06\x06":
                    return finding("NOT_A_ZIP")
                entries, cd_size = struct.unpack_from("<QQ", record, 32)
    if entries > limits.zip_max_files:
        return finding("ZIP_TOO_MANY_FILES", str(entries))
    # a directory record is 46 bytes + name + extra + comment: generous room per allowed entry
    if cd_size > limits.zip_max_files * CD_RECORD_MAX:
        return finding("ZIP_TOO_MANY_FILES", f"central directory {cd_size} bytes")
    return None


def server_fault(exc: BaseException) -> bool:
    """An error of the server's own storage (full, failing, out of descriptors), not of the package."""
    return isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS


def _hash_member(zf: zipfile.ZipFile, name: str, out_path: Path | None) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    out = out_path.open("wb") if out_path is not None else None
    try:
        with zf.open(name) as src:
            while True:
                block = src.read(CHUNK)
                if not block:
                    break
                h.update(block)
                size += len(block)
                if out is not None:
                    out.write(block)
    finally:
        if out is not None:
            out.close()
    return size, h.hexdigest()


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _check_layers(manifest: dict, catalog: Catalog, gpkgs: dict[str, Path]) -> list[dict]:
    found: list[dict] = []
    ds = catalog.get(str(manifest.get("dataset_id")))
    manifest_epsg = parse_epsg(manifest.get("crs"))
    opened: dict[str, sqlite3.Connection | None] = {}
    layers_by_file: dict[str, set[str]] = {}
    try:
        for rel, path in gpkgs.items():
            opened[rel] = _open_gpkg(path, rel, found)
        for layer in manifest.get("layers") or []:
            if not isinstance(layer, dict):
                continue
            rel = str(layer.get("file", ""))
            name = str(layer.get("name", ""))
            conn = opened.get(rel)
            if rel not in opened:
                found.append(finding("LAYER_MISSING", f"{name}（文件 {rel} 不是清单中的 GeoPackage）"))
                continue
            if conn is None:
                continue
            layers_by_file.setdefault(rel, set()).add(name.lower())
            try:
                found.extend(_check_one_layer(conn, rel, name, layer, ds, manifest_epsg))
            except (sqlite3.DatabaseError, ValueError, TypeError, OverflowError) as exc:
                # a system table without an expected column, a value of the wrong type…: a broken GeoPackage
                detail = f"{rel}: {name}: {type(exc).__name__}"
                found.append(finding("GPKG_STRUCTURE", detail, path=rel, layer=name))
        for rel, conn in opened.items():
            if conn is None:
                continue
            try:
                tables = [str(r[0]) for r in conn.execute("SELECT table_name FROM gpkg_contents")]
            except sqlite3.DatabaseError:
                continue  # already reported by the layer checks
            extra = [t for t in tables if t.lower() not in layers_by_file.get(rel, set())]
            if extra:
                found.append(finding("GPKG_EXTRA_LAYER", "{}: {}".format(rel, ", ".join(extra)[:200])))
    finally:
        for conn in opened.values():
            if conn is not None:
                conn.close()
    return found


def _open_gpkg(path: Path, rel: str, found: list[dict]) -> sqlite3.Connection | None:
    """Open an untrusted GeoPackage read-only: schema functions untrusted, queries time-limited."""
    try:
        conn = sqlite3.connect(f"file:{path.as_posix()}?mode=ro", uri=True)
        conn.execute("PRAGMA trusted_schema = OFF")
        deadline = time.monotonic() + GPKG_QUERY_SECONDS
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10000)
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        found.append(finding("NOT_GEOPACKAGE", f"{rel}: {str(exc)[:80]}", path=rel))
        return None
    if app_id not in GPKG_APPLICATION_IDS:
        conn.close()
        found.append(finding("NOT_GEOPACKAGE", f"{rel}: application_id={app_id}", path=rel))
        return None
    needed = {"gpkg_contents", "gpkg_geometry_columns", "gpkg_spatial_ref_sys"}
    if not needed <= names:
        conn.close()
        found.append(
            finding("GPKG_STRUCTURE", "{}: {}".format(rel, ", ".join(sorted(needed - names))), path=rel)
        )
        return None
    return conn


def _layer_epsg(conn: sqlite3.Connection, srs_id: object) -> int | None:
    """The EPSG code of a layer's spatial reference system, trusted only when the row names EPSG as its
    organisation and its definition really is that EPSG system (an ``evil`` organisation or a WGS 84
    definition under the number 4524 is not CGCS2000). None when it is not an EPSG system."""
    srs = conn.execute(
        "SELECT organization, organization_coordsys_id, definition FROM gpkg_spatial_ref_sys"
        " WHERE srs_id = ?",
        (srs_id,),
    ).fetchone()
    if srs is None or str(srs[0]).strip().upper() != "EPSG":
        return None
    try:
        code = int(str(srs[1]).strip())
    except ValueError:
        return None
    if not allowed_epsg(code) or not _same_crs(str(srs[2] or ""), code):
        return None
    return code


def _same_crs(definition: str, code: int) -> bool:
    """Whether a WKT definition is equivalent to the EPSG system ``code`` (datum, projection parameters), with
    GDAL's OSR or else pyproj (imported here: the server's modules load without either); without both, no
    definition can be trusted."""
    try:
        from osgeo import osr
    except ImportError:
        return _same_crs_pyproj(definition, code)
    try:
        actual = osr.SpatialReference()
        if actual.ImportFromWkt(definition) != 0:
            return False
        expected = osr.SpatialReference()
        expected.ImportFromEPSG(code)
        return bool(actual.IsSame(expected, ["CRITERION=EQUIVALENT_EXCEPT_AXIS_ORDER_GEOGCRS"]))
    except RuntimeError:  # osr raises when exceptions are enabled (another module may have done so)
        return False


def _same_crs_pyproj(definition: str, code: int) -> bool:
    try:
        from pyproj import CRS
        from pyproj.exceptions import CRSError
    except ImportError:
        LOG.error("neither GDAL's osr nor pyproj can be imported: CRS definitions cannot be checked")
        return False
    try:
        return CRS.from_wkt(definition).equals(CRS.from_epsg(code), ignore_axis_order=True)
    except CRSError:
        return False


def _check_one_layer(
    conn: sqlite3.Connection, rel: str, name: str, layer: dict, ds, manifest_epsg
) -> list[dict]:
    found: list[dict] = []
    row = conn.execute(
        "SELECT table_name, srs_id FROM gpkg_contents WHERE lower(table_name) = lower(?)", (name,)
    ).fetchone()
    if row is None:
        return [finding("LAYER_MISSING", f"{rel}: {name}", layer=name)]
    table, srs_id = row
    is_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    if is_table is None:
        return [finding("LAYER_MISSING", f"{rel}: {name}（不是数据表）", layer=name)]
    geom = conn.execute(
        "SELECT geometry_type_name, srs_id FROM gpkg_geometry_columns WHERE lower(table_name) = lower(?)",
        (table,),
    ).fetchone()
    if geom is not None:
        srs_id = geom[1]
        declared = str(layer.get("geometry_type") or "").upper().replace("MULTI", "")
        actual = str(geom[0] or "").upper().replace("MULTI", "")
        if declared and actual and actual != "GEOMETRY" and declared != actual:
            found.append(finding("GEOMETRY_TYPE_MISMATCH", f"{name}: {declared} ≠ {actual}", layer=name))
    epsg = _layer_epsg(conn, srs_id)
    if epsg is None or not allowed_epsg(epsg):
        found.append(finding("CRS_NOT_CGCS2000", f"{name}: srs_id={str(srs_id)[:40]}", layer=name))
    elif manifest_epsg is not None and epsg != manifest_epsg:
        found.append(finding("CRS_MISMATCH", f"{name}: EPSG:{epsg} ≠ EPSG:{manifest_epsg}", layer=name))
    try:
        count = conn.execute(f"SELECT count(*) FROM {_q(table)}").fetchone()[0]
        columns = {r[1].lower() for r in conn.execute(f"PRAGMA table_info({_q(table)})")}
    except sqlite3.DatabaseError as exc:
        return [*found, finding("NOT_GEOPACKAGE", f"{name}: {str(exc)[:80]}", layer=name)]
    if count != _int(layer.get("feature_count", -1)):
        found.append(
            finding(
                "FEATURE_COUNT_MISMATCH",
                "{}: {} ≠ {}".format(name, layer.get("feature_count"), count),
                layer=name,
            )
        )
    if ds is not None:
        for field in ds.required_fields():
            if not (field.names() & columns):
                found.append(finding("FIELD_MISSING", f"{name}.{field.name}", layer=name))
    return found
