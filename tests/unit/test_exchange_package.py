"""The exchange package: deterministic build, manifest, verification, offline export/import."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zipfile
from pathlib import Path

import pytest
from qgis.core import (
    QgsFeature,
    QgsGeometry,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)

from huijiao_plugin.core.exchange.offline import (
    ImportRegistry,
    export_package,
    import_package,
    load_imported_layers,
)
from huijiao_plugin.core.exchange.verify import read_manifest, verify_package
from huijiao_plugin.core.package import (
    FIXED_GPKG_TIMESTAMP,
    AlreadyImportedError,
    LayerInput,
    PackageError,
    build_package,
    is_valid_period,
    region_prefix,
    region_within,
)
from tests.integration.server_support import PACKAGE_ARGS, dltb_layer


def make_dltb(features: list[tuple[str, str, QgsRectangle]], name: str = "DLTB") -> QgsVectorLayer:
    layer = QgsVectorLayer(
        "Polygon?crs=EPSG:4545&field=BSM:string&field=DLBM:string&field=ZLDWDM:string&field=TBMJ:double",
        name,
        "memory",
    )
    feats = []
    for bsm, zldwdm, rect in features:
        f = QgsFeature(layer.fields())
        f.setAttributes([bsm, "0101", zldwdm, 0.0])
        f.setGeometry(QgsGeometry.fromRect(rect))
        feats.append(f)
    assert layer.dataProvider().addFeatures(feats)
    return layer


KM_SQUARE = QgsRectangle(580000, 3800000, 581000, 3801000)


@pytest.fixture()
def dltb(qgis_app) -> QgsVectorLayer:
    return make_dltb(
        [
            ("1", "6101020010010000000", KM_SQUARE),
            ("2", "6101020010010000000", QgsRectangle(581000, 3800000, 581100, 3800100)),
            ("3", "6101020010020000000", QgsRectangle(581100, 3800000, 581200, 3800050)),
        ]
    )


def build(tmp_path: Path, layer: QgsVectorLayer, name: str = "pkg.zip", **kwargs):
    args = dict(PACKAGE_ARGS)
    args.update(kwargs)
    return build_package(tmp_path / name, [LayerInput(layer, "DLTB")], **args)


def test_manifest_content_and_area(tmp_path, dltb):
    built = build(tmp_path, dltb, sources=[{"dataset_id": "gbznt", "version": "3"}])
    manifest = read_manifest(built.path)
    assert manifest == built.manifest
    assert manifest["format_version"] == "1.0"
    assert manifest["dataset_id"] == "dltb_biangeng"
    assert manifest["region_code"] == "610102"
    assert manifest["period"] == "2025"
    assert manifest["department"] == "zrzy"
    assert manifest["crs"] == "EPSG:4545"
    assert manifest["created_at"][-6] in "+-"  # time zone offset present
    assert manifest["sources"] == [{"dataset_id": "gbznt", "version": "3"}]
    assert manifest["plugin_version"]
    [entry] = manifest["files"]
    assert entry["path"] == "data/dltb_biangeng.gpkg"
    with zipfile.ZipFile(built.path) as archive:
        data = archive.read(entry["path"])
        names = archive.namelist()
        assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())
    assert names == sorted(names)
    assert not any(n.endswith(("-wal", "-shm", "-journal")) for n in names)
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert len(data) == entry["size"]
    assert built.sha256 == hashlib.sha256(built.path.read_bytes()).hexdigest()
    [layer] = manifest["layers"]
    assert layer["name"] == "DLTB"
    assert layer["geometry_type"] == "MultiPolygon"
    assert layer["feature_count"] == 3
    # 1 km square at (580000, 3800000) in EPSG:4545 is 999 840.33 m² on the ellipsoid (domain.md §5.3)
    plane = 1_000_000 + 10_000 + 5_000
    assert layer["area_m2"] == pytest.approx(999_840.33 + (plane - 1_000_000) * 0.99984, abs=0.5)
    assert layer["extent"] == [580000.0, 3800000.0, 581200.0, 3801000.0]
    # no build leftovers next to the package
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg.zip"]


def test_rebuild_gives_identical_data_hash(tmp_path, dltb):
    first = build(tmp_path, dltb, name="a.zip")
    # same features inserted in another order: the fid order decides, not the insertion time
    second = build(tmp_path, dltb, name="b.zip")
    assert first.manifest["package_uuid"] != second.manifest["package_uuid"]
    assert first.manifest["files"] == second.manifest["files"]
    changed = make_dltb(
        [
            ("1", "6101020010010000000", KM_SQUARE),
            ("2", "6101020010010000000", QgsRectangle(581000, 3800000, 581100, 3800101)),
            ("3", "6101020010020000000", QgsRectangle(581100, 3800000, 581200, 3800050)),
        ]
    )
    third = build(tmp_path, changed, name="c.zip")
    assert third.manifest["files"][0]["sha256"] != first.manifest["files"][0]["sha256"]


def test_gpkg_is_checkpointed_with_fixed_timestamp(tmp_path, dltb):
    built = build(tmp_path, dltb)
    with zipfile.ZipFile(built.path) as archive:
        (tmp_path / "x.gpkg").write_bytes(archive.read("data/dltb_biangeng.gpkg"))
    con = sqlite3.connect(tmp_path / "x.gpkg")
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert {r[0] for r in con.execute("SELECT last_change FROM gpkg_contents")} == {FIXED_GPKG_TIMESTAMP}
        fids = [r[0] for r in con.execute('SELECT fid FROM "DLTB" ORDER BY fid')]
        bsm = [r[0] for r in con.execute('SELECT BSM FROM "DLTB" ORDER BY fid')]
    finally:
        con.close()
    assert fids == [1, 2, 3]
    assert bsm == ["1", "2", "3"]


def test_reprojects_to_package_crs(tmp_path, qgis_app):
    layer = QgsVectorLayer("Polygon?crs=EPSG:4490&field=BSM:string", "geo", "memory")
    f = QgsFeature(layer.fields())
    f.setAttributes(["9"])
    f.setGeometry(QgsGeometry.fromRect(QgsRectangle(108.90, 34.25, 108.91, 34.26)))
    layer.dataProvider().addFeatures([f])
    built = build(tmp_path, layer, name="geo.zip", period="2025H1", unit="u")
    [entry] = built.manifest["layers"]
    assert built.manifest["crs"] == "EPSG:4545"
    assert 400_000 < entry["extent"][0] < 600_000  # metres, not degrees
    # the 0.01° cell, densified in the GK plane, stays within a few m² of 1 021 724.35 (domain.md §5.3)
    assert entry["area_m2"] == pytest.approx(1_021_724.35, abs=20)


def test_bad_parameters_are_refused_with_all_reasons(tmp_path, dltb):
    with pytest.raises(PackageError) as error:
        build(tmp_path, dltb, region_code="61a", period="2025H3", department="other")
    assert len(error.value.reasons) == 3
    assert not (tmp_path / "pkg.zip").exists()


def test_period_and_region_rules():
    assert is_valid_period("2025") and is_valid_period("2025H1") and is_valid_period("2025Q3")
    assert not is_valid_period("2025Q5") and not is_valid_period("25") and not is_valid_period("2025H")
    assert region_prefix("610000") == "61"
    assert region_prefix("610100") == "6101"
    assert region_prefix("610102") == "610102"
    assert region_within("6101020010010000000", "610000")
    assert region_within("6101020010010000000", "610100")
    assert region_within("6101020010010000000", "610102")
    assert not region_within("6101030010010000000", "610102")
    assert not region_within("6201020010010000000", "610000")
    assert not region_within("", "610000")
    assert not region_within("abc", "610000")


def _rewrite_zip(source: Path, target: Path, change) -> None:
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = change(info.filename, src.read(info.filename))
            if data is not None:
                dst.writestr(info, data)


def test_verify_detects_tampering_and_unsafe_members(tmp_path, dltb):
    built = build(tmp_path, dltb)
    assert verify_package(built.path, built.sha256).manifest["dataset_id"] == "dltb_biangeng"

    def flip(name: str, data: bytes) -> bytes:
        if name.endswith(".gpkg"):
            return data[:-10] + bytes([data[-10] ^ 1]) + data[-9:]
        return data

    _rewrite_zip(built.path, tmp_path / "tampered.zip", flip)
    with pytest.raises(PackageError) as error:
        verify_package(tmp_path / "tampered.zip")
    assert any("sha256" in r for r in error.value.reasons)

    with pytest.raises(PackageError):
        verify_package(built.path, "0" * 64)

    _rewrite_zip(built.path, tmp_path / "evil.zip", lambda n, d: d)
    with zipfile.ZipFile(tmp_path / "evil.zip", "a") as archive:
        archive.writestr("../evil.txt", b"x")
    with pytest.raises(PackageError) as error:
        verify_package(tmp_path / "evil.zip")
    assert any("../evil.txt" in r for r in error.value.reasons)

    _rewrite_zip(built.path, tmp_path / "nomanifest.zip", lambda n, d: None if n == "manifest.json" else d)
    with pytest.raises(PackageError):
        verify_package(tmp_path / "nomanifest.zip")

    (tmp_path / "notzip.zip").write_bytes(b"hello")
    with pytest.raises(PackageError):
        verify_package(tmp_path / "notzip.zip")


def test_offline_export_import_and_double_import_refused(tmp_path, dltb, qgis_new_project):
    built = build(tmp_path, dltb)
    usb = tmp_path / "usb"
    exported = export_package(built.path, usb)
    assert exported.parent == usb
    assert (usb / (exported.name + ".sha256")).read_text().split()[0] == built.sha256

    registry = ImportRegistry(tmp_path / "state" / "imported.json")
    imported = import_package(exported, tmp_path / "imported", registry)
    assert imported.sha256 == built.sha256
    [(name, uri)] = imported.layer_uris
    layers = load_imported_layers(imported)
    assert [lyr.featureCount() for lyr in layers] == [3]
    [layer] = layers
    assert layer.name() == "年度国土变更调查地类图斑 2025"
    assert layer.customProperty("huijiao/dataset_id") == "dltb_biangeng"
    group = QgsProject.instance().layerTreeRoot().findGroup("自然资源")  # the 一张图 department group
    assert group is not None and group.findLayer(layer.id()) is not None
    assert registry.find(built.sha256)["dataset_id"] == "dltb_biangeng"

    with pytest.raises(AlreadyImportedError) as error:
        import_package(exported, tmp_path / "imported", registry)
    assert error.value.previous["sha256"] == built.sha256
    # a copy under another name is the same package
    copy = tmp_path / "copy.zip"
    copy.write_bytes(exported.read_bytes())
    with pytest.raises(AlreadyImportedError):
        import_package(copy, tmp_path / "imported", registry)
    assert len(registry.entries()) == 1


def test_import_refuses_a_damaged_copy(tmp_path, dltb):
    built = build(tmp_path, dltb)
    exported = export_package(built.path, tmp_path / "usb")
    data = bytearray(exported.read_bytes())
    data[len(data) // 2] ^= 0xFF
    exported.write_bytes(bytes(data))
    registry = ImportRegistry(tmp_path / "imported.json")
    with pytest.raises(PackageError) as error:
        import_package(exported, tmp_path / "imported", registry)
    assert "hash" in str(error.value)
    assert registry.entries() == []
    assert not (tmp_path / "imported").exists()


def test_manifest_is_json_with_validation(tmp_path, dltb):
    validation = {"errors": 0, "warnings": 2, "summary": {"overlap": 2}}
    built = build(tmp_path, dltb, validation=validation)
    with zipfile.ZipFile(built.path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["validation"] == validation


def test_build_and_import_algorithms(tmp_path, huijiao_provider, qgis_new_project):
    import processing
    from qgis.core import QgsProcessingException

    layer = dltb_layer(n=3, cell=10.0)
    out = tmp_path / "alg.zip"
    result = processing.run(
        "huijiao:buildpackage",
        {
            "INPUT": [layer],
            "DATASET_ID": "dltb_biangeng",
            "REGION_CODE": "610102",
            "PERIOD": "2025Q3",
            "DEPARTMENT": 0,
            "UNIT": "测试单位",
            "ACCEPT_WARNINGS": True,
            "OUTPUT": str(out),
            "EXPORT_FOLDER": str(tmp_path / "usb"),
        },
    )
    assert result["OUTPUT"] == str(out)
    assert result["ERRORS"] == 0
    manifest = read_manifest(out)
    assert manifest["period"] == "2025Q3"
    assert manifest["department"] == "zrzy"
    assert [entry["name"] for entry in manifest["layers"]] == ["DLTB_BG"]  # the catalog's standard name
    assert result["SHA256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    exported = Path(result["EXPORTED"])
    assert exported.exists() and exported.parent == tmp_path / "usb"

    registry = tmp_path / "registry.json"
    params = {
        "INPUT": str(exported),
        "DESTINATION": str(tmp_path / "in"),
        "REGISTRY": str(registry),
        "LOAD": False,
    }
    imported = processing.run("huijiao:importpackage", params)
    assert imported["SHA256"] == result["SHA256"]
    assert imported["DATASET_ID"] == "dltb_biangeng"
    [uri] = imported["LAYERS"]
    assert QgsVectorLayer(uri, "x", "ogr").featureCount() == 3
    with pytest.raises(QgsProcessingException) as error:
        processing.run("huijiao:importpackage", params)
    assert "already imported" in str(error.value)


def test_build_algorithm_stops_on_validation_errors(tmp_path, huijiao_provider):
    import processing
    from qgis.core import QgsProcessingException

    layer = dltb_layer(n=3, cell=10.0)
    overlap = QgsFeature(layer.fields())
    overlap.setAttributes(["9", "9", "0101", "水田", "30", "6101020010010000000", 25.0])
    overlap.setGeometry(QgsGeometry.fromRect(QgsRectangle(580005, 3800000, 580010, 3800005)))
    layer.dataProvider().addFeatures([overlap])
    out = tmp_path / "bad.zip"
    with pytest.raises(QgsProcessingException) as error:
        processing.run(
            "huijiao:buildpackage",
            {
                "INPUT": [layer],
                "DATASET_ID": "dltb_biangeng",
                "REGION_CODE": "610102",
                "PERIOD": "2025",
                "DEPARTMENT": 0,
                "ACCEPT_WARNINGS": True,
                "OUTPUT": str(out),
            },
        )
    assert "errors" in str(error.value)
    assert not out.exists()


def test_gpkg_source_with_gaps_is_renumbered_deterministically(tmp_path, dltb):
    from qgis.core import QgsVectorFileWriter

    from huijiao_plugin.core.package import _features_in_fid_order

    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "src"
    QgsVectorFileWriter.writeAsVectorFormatV3(
        dltb, str(tmp_path / "src.gpkg"), QgsProject.instance().transformContext(), options
    )
    source = QgsVectorLayer(f"{tmp_path / 'src.gpkg'}|layername=src", "src", "ogr")
    assert source.dataProvider().deleteFeatures([2])
    assert [f.id() for f in _features_in_fid_order(source, batch=1)] == [1, 3]
    args = ("dltb_biangeng", "610102", "2025", "zrzy", "u")
    first = build_package(tmp_path / "a.zip", [LayerInput(source, "DLTB")], *args)
    second = build_package(tmp_path / "b.zip", [LayerInput(source, "DLTB")], *args)
    assert first.manifest["files"] == second.manifest["files"]
    assert first.manifest["layers"][0]["feature_count"] == 2
