"""Verification of an exchange package zip before anything in it is used (submission, offline import,
shared data).

A package may come from anywhere (a disk, a download): every structural problem becomes a
:class:`PackageError` with a Chinese message, never an uncaught exception. Checked: the package sha256
(when expected), the number of entries, duplicate and unsafe member names, the compression ratio and
the total expanded size (zip bombs), the manifest's shape (an object whose ``files`` and ``layers`` are
lists of objects, no duplicates), and the sha256 and size of every listed file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

from huijiao_plugin.core.package import (
    HASH_CHUNK,
    MANIFEST_NAME,
    MAX_COMPRESSION_RATIO,
    MAX_UNCOMPRESSED_BYTES,
    PackageError,
    VerifiedPackage,
    sha256_file,
)
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

#: a package holds a manifest, a few GeoPackages and attachments: far fewer entries than this
MAX_ENTRIES = 1000
#: the manifest is small JSON; a bigger one is not a package
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


def safe_member(name: str) -> bool:
    """A relative path inside the package: no absolute path, drive, backslash, '..' or '.' part."""
    if not name or name.startswith(("/", "\\")) or "\\" in name or ":" in name or "\x00" in name:
        return False
    parts = name.split("/")
    return all(part not in ("", ".", "..") for part in parts)


def _hostile(error: BaseException) -> PackageError:
    """A clear message for a file that breaks the zip or JSON reader (logged with its type)."""
    log.warning("unreadable package: %s: %s", type(error).__name__, error)
    if isinstance(error, RecursionError):
        reason = tr("The manifest.json is nested too deeply.")
    elif isinstance(error, NotImplementedError):
        reason = tr("A file in the package uses a compression method that is not supported.")
    elif isinstance(error, RuntimeError):
        reason = tr("A file in the package is encrypted.")
    elif isinstance(error, MemoryError):
        reason = tr("The package expands to more than the allowed size.")
    else:
        reason = tr("The structure of the package is not valid.")
    return PackageError(
        tr("The file is not a valid exchange package; ask the sender for a new copy."), [reason]
    )


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a package zip (no hash checks; see :func:`verify_package`)."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(MANIFEST_NAME)
            if info.file_size > MAX_MANIFEST_BYTES:
                raise PackageError(tr("The manifest.json of the package is too large."))
            manifest = json.loads(archive.read(info).decode("utf-8"))
    except KeyError:
        raise PackageError(tr("The package has no manifest.json.")) from None
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as error:
        raise PackageError(tr("The file is not a readable package: {error}").format(error=error)) from error
    except ValueError as error:  # bad JSON or bad UTF-8
        raise PackageError(tr("The manifest.json of the package is not valid JSON.")) from error
    except (RecursionError, RuntimeError, NotImplementedError) as error:
        raise _hostile(error) from None
    if not isinstance(manifest, dict):
        raise PackageError(tr("The manifest.json of the package is not a JSON object."))
    return manifest


def _manifest_shape(manifest: dict[str, Any]) -> list[str]:
    """Reasons why ``files``/``layers`` are not lists of distinct objects."""
    reasons: list[str] = []
    for key, unique in (("files", "path"), ("layers", "name")):
        entries = manifest.get(key, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            reasons.append(tr("The '{key}' of the manifest is not a list of objects.").format(key=key))
            continue
        seen: set[str] = set()
        for entry in entries:
            value = str(entry.get(unique, "")).lower()
            if value in seen:
                reasons.append(tr("The manifest lists {name} twice.").format(name=entry.get(unique)))
            seen.add(value)
    return reasons


def verify_package(path: str | os.PathLike[str], expected_sha256: str | None = None) -> VerifiedPackage:
    """Check a package zip: its sha256 (when expected), safe member names, sizes, the manifest and
    the sha256 and size of every listed file. Raises :class:`PackageError` with every reason found."""
    path = Path(path)
    if not path.is_file():
        raise PackageError(tr("The package {path} does not exist.").format(path=path))
    digest = sha256_file(path)
    if expected_sha256 and digest.lower() != expected_sha256.strip().lower():
        raise PackageError(
            tr(
                "The package hash does not match: the file was changed or copied incompletely. Copy it again."
            ),
            [tr("expected {expected}, found {found}").format(expected=expected_sha256, found=digest)],
        )
    try:
        reasons, manifest = _verify_content(path)
    except PackageError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as error:
        raise PackageError(tr("The file is not a readable package: {error}").format(error=error)) from error
    except (
        RecursionError,
        RuntimeError,
        NotImplementedError,
        AttributeError,
        TypeError,
        ValueError,
    ) as error:
        raise _hostile(error) from None
    if reasons:
        raise PackageError(
            tr("The package is damaged or was modified; ask the sender for a new copy."), reasons
        )
    return VerifiedPackage(path, digest, path.stat().st_size, manifest)


def _verify_content(path: Path) -> tuple[list[str], dict[str, Any]]:
    reasons: list[str] = []
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise PackageError(
                tr("The package holds {n} files, more than the {limit} allowed.").format(
                    n=len(infos), limit=MAX_ENTRIES
                )
            )
        manifest = read_manifest(path)
        total = 0
        names: set[str] = set()
        for info in infos:
            if not safe_member(info.filename):
                reasons.append(tr("Unsafe path in the package: {name}").format(name=info.filename))
            if info.filename in names:
                reasons.append(tr("The package holds {name} twice.").format(name=info.filename))
            names.add(info.filename)
            total += info.file_size
            if info.file_size / max(info.compress_size, 1) > MAX_COMPRESSION_RATIO:
                reasons.append(tr("Suspicious compression ratio of {name}").format(name=info.filename))
        if total > MAX_UNCOMPRESSED_BYTES:
            reasons.append(tr("The package expands to more than the allowed size."))
        for key in (
            "format_version",
            "package_uuid",
            "dataset_id",
            "region_code",
            "period",
            "files",
            "layers",
        ):
            if key not in manifest:
                reasons.append(tr("The manifest has no '{key}'.").format(key=key))
        reasons.extend(_manifest_shape(manifest))
        if reasons:  # nothing is decompressed from a package already found bad
            return reasons, manifest
        members = {info.filename: info for info in infos}
        listed = set()
        for entry in manifest.get("files", []) or []:
            name = str(entry.get("path", ""))
            listed.add(name)
            info = members.get(name)
            if info is None or not safe_member(name):
                reasons.append(tr("The file {name} listed in the manifest is missing.").format(name=name))
                continue
            if reasons:
                continue
            file_digest = hashlib.sha256()
            size = 0
            with archive.open(info) as handle:
                for chunk in iter(lambda h=handle: h.read(HASH_CHUNK), b""):
                    file_digest.update(chunk)
                    size += len(chunk)
            if size != entry.get("size"):
                reasons.append(tr("The size of {name} does not match the manifest.").format(name=name))
            if file_digest.hexdigest() != str(entry.get("sha256", "")).lower():
                reasons.append(tr("The sha256 of {name} does not match the manifest.").format(name=name))
        for name in members:
            if name != MANIFEST_NAME and name not in listed and not name.endswith("/"):
                reasons.append(tr("The file {name} is not listed in the manifest.").format(name=name))
    return reasons, manifest
