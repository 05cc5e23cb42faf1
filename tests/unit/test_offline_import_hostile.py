"""Offline import is as strict as the server: a real package is built, then made hostile in the test
(region, dataset, layer paths, OGR options, duplicates, broken zip and JSON, zip bombs); every case
ends in a PackageError with a message for the user and nothing imported, never another exception."""

from __future__ import annotations

import hashlib
import json
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
from qgis.core import QgsVectorLayer

from huijiao_plugin.core.exchange.offline import ImportRegistry, import_package, open_package
from huijiao_plugin.core.package import LayerInput, PackageError, build_package
from tests.integration.server_support import PACKAGE_ARGS, dltb_layer


@pytest.fixture(scope="module")
def package(qgis_app, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pkg") / "good.zip"
    return build_package(out, [LayerInput(dltb_layer(n=3), "DLTB_BG")], **PACKAGE_ARGS).path


def _members(path: Path) -> tuple[dict, list[tuple[str, bytes]]]:
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        data = [(i.filename, archive.read(i)) for i in archive.infolist() if i.filename != "manifest.json"]
    return manifest, data


def _write(path: Path, manifest: dict | bytes, members: list[tuple[str, bytes]], relist: bool = True) -> Path:
    """A zip of ``members`` and the manifest; ``relist``: the manifest's files list (names, sizes, sha256)
    made to match the members, so that only the planted problem is wrong."""
    if isinstance(manifest, dict) and relist:
        manifest = dict(manifest)
        manifest["files"] = [
            {"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in members
        ]
    raw = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about a duplicate name: that is the point
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("manifest.json", raw)
            for name, data in members:
                archive.writestr(name, data)
    return path


def _import(path: Path, tmp_path: Path, **kwargs) -> PackageError:
    registry = ImportRegistry(tmp_path / "registry.json")
    with pytest.raises(PackageError) as caught:
        import_package(path, tmp_path / "imported", registry, **kwargs)
    assert str(caught.value)
    assert registry.entries() == []
    return caught.value


def _text(error: PackageError) -> str:
    return " ".join([str(error), *error.reasons])


def test_the_untouched_package_imports_and_opens(package, tmp_path):
    imported = import_package(
        package, tmp_path / "imported", ImportRegistry(tmp_path / "r.json"), region_code="61"
    )
    [(name, uri)] = imported.layer_uris
    assert name == "DLTB_BG"
    assert QgsVectorLayer(uri, name, "ogr").featureCount() == 3


def test_a_package_for_another_region_is_refused(package, tmp_path):
    error = _import(package, tmp_path, region_code="610103")
    assert "610102" in _text(error) and "610103" in _text(error)


def test_a_package_for_another_dataset_is_refused(package, tmp_path):
    error = _import(package, tmp_path, region_code="610102", dataset_id="yjjbnt")
    assert "dltb_biangeng" in _text(error)


def test_a_package_of_an_unknown_dataset_is_refused(package, tmp_path):
    manifest, members = _members(package)
    manifest["dataset_id"] = "not_a_dataset"
    error = _import(_write(tmp_path / "p.zip", manifest, members), tmp_path)
    assert "not_a_dataset" in _text(error)


@pytest.mark.parametrize("where", ["absolute", "dotdot"])
def test_a_layer_path_outside_the_package_is_refused(package, tmp_path, where):
    manifest, members = _members(package)
    outside = tmp_path / "outside.gpkg"  # a real GeoPackage the package must not reach
    outside.write_bytes(members[0][1])
    target = str(outside) if where == "absolute" else "data/../../outside.gpkg"
    manifest["layers"][0]["file"] = target
    error = _import(_write(tmp_path / "p.zip", manifest, members), tmp_path)
    assert target in _text(error)
    with pytest.raises(PackageError):
        open_package(tmp_path / "p.zip", tmp_path / "shared")


@pytest.mark.parametrize("field", ["name", "file"])
def test_an_ogr_option_injected_into_the_layer_uri_is_refused(package, tmp_path, field):
    manifest, members = _members(package)
    layer = manifest["layers"][0]
    layer[field] = layer[field] + "|subset=1=0"
    error = _import(_write(tmp_path / "p.zip", manifest, members), tmp_path)
    assert "DLTB_BG" in _text(error)


def test_a_duplicate_zip_member_is_refused(package, tmp_path):
    manifest, members = _members(package)
    evil = _write(tmp_path / "p.zip", manifest, members + [members[0]], relist=False)
    error = _import(evil, tmp_path)
    assert "twice" in _text(error)


def test_a_layer_listed_twice_is_refused(package, tmp_path):
    manifest, members = _members(package)
    manifest["layers"].append(dict(manifest["layers"][0]))
    error = _import(_write(tmp_path / "p.zip", manifest, members), tmp_path)
    assert "twice" in _text(error)


def test_a_deeply_nested_manifest_is_refused(package, tmp_path):
    _manifest, members = _members(package)
    deep = b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    error = _import(_write(tmp_path / "p.zip", deep, members), tmp_path)
    assert "nested" in _text(error)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(files=["data/x.gpkg"]),  # entries that are not objects
        lambda m: m.update(layers="DLTB_BG"),
        lambda m: m.update(files=None),
    ],
)
def test_a_manifest_of_the_wrong_shape_is_refused(package, tmp_path, change):
    manifest, members = _members(package)
    _write(tmp_path / "p.zip", manifest, members)
    manifest = json.loads(zipfile.ZipFile(tmp_path / "p.zip").read("manifest.json"))
    change(manifest)
    _import(_write(tmp_path / "q.zip", manifest, members, relist=False), tmp_path)


def test_a_manifest_that_is_a_list_is_refused(package, tmp_path):
    _manifest, members = _members(package)
    error = _import(_write(tmp_path / "p.zip", b"[1, 2]", members), tmp_path)
    assert "object" in _text(error)


def _patch_headers(path: Path, flags: int = 0, method: int | None = None) -> Path:
    """Set general-purpose flag bits and/or the compression method in every local and central header."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        pos = archive.start_dir
    for info in infos:
        local = info.header_offset
        assert data[local : local + 4] == b"PK\x03\x04"
        old = struct.unpack_from("<H", data, local + 6)[0]
        struct.pack_into("<H", data, local + 6, old | flags)
        if method is not None:
            struct.pack_into("<H", data, local + 8, method)
    for _ in infos:
        assert data[pos : pos + 4] == b"PK\x01\x02"
        old = struct.unpack_from("<H", data, pos + 8)[0]
        struct.pack_into("<H", data, pos + 8, old | flags)
        if method is not None:
            struct.pack_into("<H", data, pos + 10, method)
        n, m, k = struct.unpack_from("<HHH", data, pos + 28)
        pos += 46 + n + m + k
    path.write_bytes(bytes(data))
    return path


def test_an_encrypted_member_is_refused(package, tmp_path):
    copy = tmp_path / "p.zip"
    copy.write_bytes(package.read_bytes())
    error = _import(_patch_headers(copy, flags=0x1), tmp_path)
    assert "encrypted" in _text(error)


def test_an_unsupported_compression_method_is_refused(package, tmp_path):
    copy = tmp_path / "p.zip"
    copy.write_bytes(package.read_bytes())
    error = _import(_patch_headers(copy, method=9), tmp_path)  # 9: deflate64
    assert "compression" in _text(error)


def test_a_zip_bomb_is_refused_before_it_is_expanded(package, tmp_path):
    manifest, members = _members(package)
    bomb = ("attachments/zeros.bin", bytes(64 * 1024 * 1024))  # 64 MiB of zeros, ~64 KiB compressed
    evil = _write(tmp_path / "p.zip", manifest, members + [bomb])
    assert evil.stat().st_size < 1024 * 1024
    error = _import(evil, tmp_path)
    assert "compression ratio" in _text(error)


def test_too_many_entries_are_refused(package, tmp_path):
    manifest, members = _members(package)
    many = [(f"attachments/{i}.txt", b"") for i in range(1001)]
    error = _import(_write(tmp_path / "p.zip", manifest, members + many), tmp_path)
    assert str(1 + len(members) + 1001) in _text(error)
