"""Hostile GeoPackage and zip variants get a finding in a signed rejection (never a 500), and the CRS check
trusts srs_id 4524 only when the row really is EPSG's CGCS2000 3-degree GK zone 36."""

from __future__ import annotations

import io
import sqlite3
import struct
import tempfile
import zipfile
from pathlib import Path

import pytest
from osgeo import osr

from tests.server.helpers import build_package, make_gpkg


@pytest.fixture(scope="module")
def zrzy(make_account):
    return make_account("zrzy", "610102", "submitter", "hv")


def edited_gpkg(sql: list[str], epsg: int = 4545) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "x.gpkg")
        path.write_bytes(make_gpkg("DLTB", ["DLBM", "TBMJ"], 3, epsg))
        conn = sqlite3.connect(path)
        for statement in sql:
            conn.execute(statement)
        conn.commit()
        conn.close()
        return path.read_bytes()


def patch_entry(package: bytes, name: str, flag: int = 0, method: int | None = None) -> bytes:
    """Set a general-purpose flag bit and/or the compression method of one member, in its local header and
    its central-directory record (the bytes stay as they are)."""
    data = bytearray(package)
    encoded = name.encode()
    for sig, flag_at, method_at, name_len_at, name_at in (
        (b"PK\x03\x04", 6, 8, 26, 30),
        (b"PK\x01\x02", 8, 10, 28, 46),
    ):
        pos = data.find(sig)
        while pos >= 0:
            n = struct.unpack_from("<H", data, pos + name_len_at)[0]
            if bytes(data[pos + name_at : pos + name_at + n]) == encoded:
                struct.pack_into(
                    "<H", data, pos + flag_at, struct.unpack_from("<H", data, pos + flag_at)[0] | flag
                )
                if method is not None:
                    struct.pack_into("<H", data, pos + method_at, method)
            pos = data.find(sig, pos + 4)
    return bytes(data)


def wgs84_wkt() -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    return srs.ExportToWkt().replace("'", "''")


def variant(kind: str) -> tuple[bytes, dict]:
    rel = "data/dltb_biangeng.gpkg"
    if kind == "encrypted_member":
        package, manifest = build_package("dltb_biangeng", "610102")
        return patch_entry(package, rel, flag=0x1), manifest
    if kind == "deflate64_member":
        package, manifest = build_package("dltb_biangeng", "610102")
        return patch_entry(package, rel, method=9), manifest
    sql = {
        "no_srs_row": ["DELETE FROM gpkg_spatial_ref_sys WHERE srs_id = 4545"],
        "non_numeric_coordsys_id": [
            "UPDATE gpkg_spatial_ref_sys SET organization_coordsys_id = 'abc' WHERE srs_id = 4545"
        ],
        "no_geometry_type_name": [
            "ALTER TABLE gpkg_geometry_columns DROP COLUMN geometry_type_name",
        ],
        "srs_table_without_organization": ["ALTER TABLE gpkg_spatial_ref_sys DROP COLUMN organization"],
        "evil_organisation_4524": [
            "UPDATE gpkg_spatial_ref_sys SET organization = 'evil' WHERE srs_id = 4524"
        ],
        "wgs84_definition_4524": [
            f"UPDATE gpkg_spatial_ref_sys SET definition = '{wgs84_wkt()}' WHERE srs_id = 4524"
        ],
    }[kind]
    epsg = 4524 if kind.endswith("4524") else 4545
    return build_package("dltb_biangeng", "610102", epsg=epsg, gpkg=edited_gpkg(sql, epsg))


EXPECTED = {
    "encrypted_member": "ZIP_ENCRYPTED",
    "deflate64_member": "ZIP_METHOD_UNSUPPORTED",
    "no_srs_row": "CRS_NOT_CGCS2000",
    "non_numeric_coordsys_id": "CRS_NOT_CGCS2000",
    "no_geometry_type_name": "GPKG_STRUCTURE",
    "srs_table_without_organization": "GPKG_STRUCTURE",
    "evil_organisation_4524": "CRS_NOT_CGCS2000",
    "wgs84_definition_4524": "CRS_NOT_CGCS2000",
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_hostile_variant_is_a_finding(zrzy, kind):
    package, manifest = variant(kind)
    if kind.endswith("_member"):  # the zip really says so in its central directory
        info = zipfile.ZipFile(io.BytesIO(package)).getinfo("data/dltb_biangeng.gpkg")
        assert info.flag_bits & 1 or info.compress_type == 9
    r = zrzy.submit(package, manifest)
    assert r.status_code == 201, r.text
    receipt = r.json()["receipt"]
    assert receipt["status"] == "rejected", receipt
    assert EXPECTED[kind] in {f["code"] for f in receipt["findings"]}, receipt["findings"]


def test_genuine_4524_accepted(zrzy):
    package, manifest = build_package("dltb_biangeng", "610102", epsg=4524)
    r = zrzy.submit(package, manifest)
    assert r.status_code == 201, r.text
    assert r.json()["receipt"]["status"] == "accepted", r.json()["receipt"]["findings"]


@pytest.mark.parametrize(("source", "expected"), [(4524, True), (4326, False), (4545, False)])
def test_crs_comparison_without_gdal_uses_pyproj(source, expected):
    """A server without GDAL's Python bindings compares the definitions with pyproj, to the same verdicts."""
    from exchange_server.package_check import _same_crs_pyproj

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(source)
    assert _same_crs_pyproj(srs.ExportToWkt(), 4524) is expected
