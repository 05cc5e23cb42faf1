"""The desktop as a user starts it: `make run` in screenshot mode under Xvfb shows the Chinese panels."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_TITLES = {
    "HuijiaoSharedLayersDock": "共享图层",
    "HuijiaoCompareDock": "耕地比对",
    "HuijiaoPatchesDock": "变化图斑",
    "HuijiaoSubmitDock": "成果汇交",
}


def write_sample_county(path: Path) -> None:
    """A small county GeoPackage in EPSG:4545: DLTB (3 land-use classes), XZQ and GBZNT."""
    from osgeo import ogr, osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4545)
    driver = ogr.GetDriverByName("GPKG")
    dataset = driver.CreateDataSource(str(path))

    def box(x0, y0, x1, y1):
        return ogr.CreateGeometryFromWkt(f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))")

    def add_layer(name, fields, rows):
        layer = dataset.CreateLayer(name, srs, ogr.wkbMultiPolygon)
        for field in fields:
            layer.CreateField(ogr.FieldDefn(field, ogr.OFTString))
        for geometry, values in rows:
            feature = ogr.Feature(layer.GetLayerDefn())
            for field, value in zip(fields, values):
                feature.SetField(field, value)
            feature.SetGeometry(ogr.ForceToMultiPolygon(geometry))
            layer.CreateFeature(feature)

    x, y = 500000, 3800000
    add_layer(
        "DLTB",
        ["DLBM", "DLMC", "ZLDWDM"],
        [
            (
                box(x + i * 1000, y + j * 1000, x + (i + 1) * 1000, y + (j + 1) * 1000),
                (code, name, "6104030010010000000"),
            )
            for i in range(4)
            for j, (code, name) in enumerate([("0103", "旱地"), ("0301", "乔木林地"), ("1101", "河流水面")])
        ],
    )
    add_layer("XZQ", ["XZQDM", "XZQMC"], [(box(x, y, x + 4000, y + 3000), ("610403001", "杨陵街道"))])
    add_layer("GBZNT", ["XMMC"], [(box(x + 500, y + 200, x + 2500, y + 900), ("高标准农田建设项目",))])
    dataset = None


@pytest.fixture(scope="module")
def desktop_run(tmp_path_factory):
    if shutil.which("xvfb-run") is None:
        pytest.fail("xvfb-run is missing: install the Debian packages xvfb and xauth (make system)")
    base = tmp_path_factory.mktemp("desktop")
    demo = base / "demo"
    demo.mkdir()
    write_sample_county(demo / "county.gpkg")
    png = base / "desktop.png"
    command = [
        "xvfb-run", "-a", "-s", "-screen 0 1600x900x24",
        sys.executable, "-m", "tests.demo_profile", "run", "--profiles", str(base / "profiles"),
        "--demo", str(demo), "--screenshot", str(png), "--timeout", "240", "--no-server",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    return base, png, result


def test_screenshot_shows_the_chinese_panels(desktop_run):
    base, png, result = desktop_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert png.exists()
    from qgis.PyQt.QtGui import QImage

    image = QImage(str(png))
    assert image.width() >= 800 and image.height() >= 500
    colors = {image.pixel(x, y) for x in range(0, image.width(), 37) for y in range(0, image.height(), 37)}
    assert len(colors) > 20  # a drawn window, not a blank frame

    report = json.loads(png.with_suffix(".json").read_text(encoding="utf-8"))
    assert report["error"] is None
    assert report["plugin_loaded"] is True
    assert report["locale"] == "zh-Hans"
    titles = {d["objectName"]: d["title"] for d in report["docks"]}
    assert titles == EXPECTED_TITLES
    assert all(d["visible"] for d in report["docks"])
    assert report["menus"] == ["汇交联动"]


def test_demo_project_and_isolated_profile(desktop_run):
    base, png, result = desktop_run
    report = json.loads(png.with_suffix(".json").read_text(encoding="utf-8"))
    assert report["crs"] == "EPSG:4545"
    assert report["project"] == str(base / "demo" / "demo.qgz")
    # the 一张图 as the 共享图层 panel loads it: catalog groups (基础 on top) and catalog names
    from huijiao_plugin.core.catalog import get_catalog

    assert report["groups"] == ["基础", "农业农村", "自然资源"]
    names = [get_catalog().dataset(d).name_zh for d in ("dltb_sandiao", "gbznt", "xzq")]
    assert report["layers"] == sorted(names)
    profile = base / "profiles" / "profiles" / "huijiao-demo"
    ini = (profile / "QGIS" / "QGIS3.ini").read_text(encoding="utf-8")
    assert "huijiao_plugin=true" in ini
    assert "userLocale=zh-Hans" in ini
    assert (profile / "python" / "plugins" / "huijiao_plugin" / "metadata.txt").exists()
    assert (profile / "python" / "plugins" / "huijiao_plugin" / "i18n" / "huijiao_zh_CN.qm").exists()
