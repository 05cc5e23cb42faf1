"""Done-when of issue 5 on the synthetic demo county: 非粮化 comparison → numbered patches → 20
exported as field package + atlas PDF → edited as a field crew would (plain OGR) → imported back
with one conflict → panel totals match the data."""

from __future__ import annotations

import re
import sqlite3
import subprocess

import pytest
from osgeo import ogr
from qgis.core import QgsVectorLayer

from huijiao_plugin.core.patches import schema
from huijiao_plugin.core.patches.field_package import PHOTOS_LAYER
from huijiao_plugin.core.patches.store import PatchStore
from tests.unit.test_patches_helpers import import_field_results


def _layer(county, name: str) -> QgsVectorLayer:
    layer = QgsVectorLayer(f"{county.gpkg}|layername={name}", name, "ogr")
    assert layer.isValid(), name
    return layer


def test_demo_county_round_trip(demo_county, huijiao_provider, tmp_path, qgis_iface):
    import processing

    county = demo_county
    regions = {"XZQ": _layer(county, "XZQ"), "CJDCQ": _layer(county, "CJDCQ")}
    comparison = processing.run(
        "huijiao:pbfnongrain",
        {
            "PBF": _layer(county, "YJJBNTBHTB"),
            "DLTB": _layer(county, "DLTB"),
            **regions,
            "OUTPUT": str(tmp_path / "nongrain.gpkg"),
        },
    )
    assert comparison["COUNT"] > 20
    store_path = str(tmp_path / "bghtb.gpkg")
    params = {"INPUT": comparison["OUTPUT"], "STORE": store_path, "YEAR": 2025, **regions, "USER": "分析员"}
    first = processing.run("huijiao:patchesfromcomparison", params)
    assert first["CREATED"] >= 20
    store = PatchStore(store_path)
    rows = store.patches(with_geometry=False)
    numbers = sorted(r["number"] for r in rows)
    assert numbers == [f"{county.county_code}2025{n:04d}" for n in range(1, len(rows) + 1)]
    assert all(
        r["patch_type"] == schema.TYPE_NONGRAIN and r["township_code"].startswith(county.county_code)
        for r in rows
    )
    assert all(len(r["village_code"]) == 12 for r in rows)
    assert all(set(r["reason"].split("；")) <= {"种植非粮作物", "已非耕地（园林坑塘等占用）"} for r in rows)
    identity = {r["uuid"]: r["number"] for r in rows}
    again = processing.run("huijiao:patchesfromcomparison", params)
    assert again["CREATED"] == 0 and again["MATCHED"] == first["CREATED"]

    context = [_layer(county, "DLTB"), _layer(county, "YJJBNTBHTB"), regions["CJDCQ"]]
    package = processing.run(
        "huijiao:fieldpackage",
        {
            "STORE": store_path,
            "LIMIT": 20,
            "CONTEXT_LAYERS": context,
            "BUFFER": 100,
            "NAME": "waiye_demo",
            "OUTPUT": str(tmp_path / "package"),
        },
    )
    assert package["COUNT"] == 20
    atlas = processing.run(
        "huijiao:patchatlas",
        {
            "STORE": store_path,
            "LIMIT": 20,
            "CONTEXT_LAYERS": context[:2],
            "DPI": 96,
            "OUTPUT": str(tmp_path / "atlas.pdf"),
        },
    )
    info = subprocess.run(["pdfinfo", atlas["OUTPUT"]], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Pages:\s+20$", info, re.M)
    subprocess.run(
        ["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "2", atlas["OUTPUT"], str(tmp_path / "page")],
        check=True,
    )
    assert len(list(tmp_path.glob("page-*.png"))) == 2
    processing.run(
        "huijiao:patchchecklist", {"STORE": store_path, "LIMIT": 20, "OUTPUT": str(tmp_path / "c.xlsx")}
    )

    # the field crew works on the package with a tool outside the plugin
    ds = ogr.Open(package["GPKG"], update=1)
    layer = ds.GetLayerByName(schema.PATCH_LAYER)
    exported = sorted((f.GetField("number"), f.GetFID()) for f in layer)
    results = ["属实", "不属实", "存疑"]
    for n, (_number, fid) in enumerate(exported[:15]):
        feature = layer.GetFeature(fid)
        feature.SetField("result", results[n % 3])
        feature.SetField("verifier", "外业组")
        feature.SetField("verify_date", "2025-06-03")
        feature.SetField("field_notes", f"现场照片{n}")
        layer.SetFeature(feature)
    photos = ds.GetLayerByName(PHOTOS_LAYER)
    first_uuid = layer.GetFeature(exported[0][1]).GetField("uuid")
    (package_dir := tmp_path / "package" / "DCIM").mkdir(exist_ok=True)
    (package_dir / "P1.jpg").write_bytes(b"\xff\xd8\xff\xe0demo")
    photo = ogr.Feature(photos.GetLayerDefn())
    photo.SetField("patch_uuid", first_uuid)
    photo.SetField("photo", "DCIM/P1.jpg")
    photo.SetField("direction", 200.0)
    photos.CreateFeature(photo)
    ds = None
    # meanwhile the desk edits one of the same patches
    conflicted = next(u for u, num in identity.items() if num == exported[4][0])
    store.update(conflicted, {"notes": "内业已复核"}, user="内业员")
    store.update(conflicted, {"status": "in_progress"}, user="内业员")

    imported = import_field_results(store_path, package["GPKG"], tmp_path)
    assert (imported["APPLIED"], imported["CONFLICTS"], imported["PHOTOS"]) == (14, 1, 1)
    assert store.get(conflicted)["result"] is None
    after = {r["uuid"]: r["number"] for r in store.patches(with_geometry=False)}
    assert after == identity  # UUIDs and numbers survived export and import

    # panel totals = the data
    from huijiao_plugin.gui.docks.dock_patches import HuijiaoPatchesDock

    dock = HuijiaoPatchesDock(qgis_iface)
    assert dock.set_store(store_path)
    con = sqlite3.connect(store_path)
    sql_totals = {
        (t, s): (c, round(m, 2))
        for t, s, c, m in con.execute(
            "SELECT patch_type, status, count(*), sum(area_m2) FROM BGHTB GROUP BY 1, 2"
        )
    }
    con.close()
    assert {k: (c, round(m, 2)) for k, (c, m) in dock.totals().items()} == sql_totals
    assert sql_totals[(schema.TYPE_NONGRAIN, "verified")][0] == 14
    assert int(dock.totals_tree.topLevelItem(0).text(1)) == len(identity)
    assert float(dock.totals_tree.topLevelItem(0).text(2).replace(",", "")) == pytest.approx(
        sum(m for _c, m in sql_totals.values()) * 3 / 2000,
        abs=0.01,  # shown in 亩, the default unit
    )
    dock.deleteLater()
