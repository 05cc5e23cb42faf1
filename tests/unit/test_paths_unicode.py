"""The main file-writing paths with Chinese characters and spaces in every directory (output, temp, QGIS
project, profile state), and no file left open afterwards: Windows refuses to move or delete an open file,
so every GeoPackage connection and file handle must be closed when an operation returns (checked here
through the process's open descriptors)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook
from osgeo import ogr
from qgis.core import QgsGeometry, QgsProject

from huijiao_plugin.core.exchange.offline import ImportRegistry, export_package, import_package
from huijiao_plugin.core.package import LayerInput, build_package
from huijiao_plugin.core.patches import schema
from huijiao_plugin.core.patches.checklist import write_checklist
from huijiao_plugin.core.patches.field_package import export_field_package, import_field_package
from huijiao_plugin.core.patches.store import NewPatch, PatchStore
from huijiao_plugin.core.xlsx import write_table
from tests.integration.server_support import PACKAGE_ARGS
from tests.unit.test_alg_ellipsoidal_area import DLTB_FIELDS, SQUARE, run, write_gpkg
from tests.unit.test_exchange_package import KM_SQUARE, make_dltb
from tests.unit.test_patches_helpers import COUNTY, rel_rect

FD_DIR = Path("/proc/self/fd")  # Linux: where this test sees its own open files


def open_files_under(directory: Path) -> list[str]:
    """Files under ``directory`` this process still has open (none where the OS has no /proc)."""
    if not FD_DIR.is_dir():
        return []
    prefix = str(directory.resolve()) + os.sep
    found = []
    for fd in FD_DIR.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(prefix):
            found.append(target)
    return sorted(found)


@pytest.fixture
def base(tmp_path, monkeypatch) -> Path:
    """``测试 目录`` for outputs, and the temporary directory moved under ``临时 文件`` too."""
    directory = tmp_path / "测试 目录"
    directory.mkdir()
    temp = directory / "临时 文件"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return directory


def test_ellipsoidal_area_output(huijiao_provider, base):
    rows = [(SQUARE, ["方块", "0103", "2", "TT", None])]
    source = write_gpkg(base / "输入 图层.gpkg", "Polygon", "EPSG:4524", rows, DLTB_FIELDS)
    out = base / "输出 结果" / "面积 成果.gpkg"
    out.parent.mkdir()
    result = run({"INPUT": source, "FILL_TBMJ": False, "OUTPUT": str(out)})
    del source
    assert Path(result["OUTPUT"].split("|")[0]) == out
    assert open_files_under(out.parent) == []  # the algorithm closed its output
    ds = ogr.Open(str(out))  # plain OGR: a QgsVectorLayer would keep the file in QGIS's connection pool
    [feature] = list(ds.GetLayer(0))
    # 1 km square at (580000, 3800000) in EPSG:4524: 999 840.33 m² on the CGCS2000 ellipsoid (domain.md §5.3)
    assert feature.GetField("AREA_M2") == 999840.33 and feature.GetField("NAME") == "方块"
    feature = ds = None
    assert open_files_under(out.parent) == []
    shutil.rmtree(out.parent)


def test_project_with_layers_in_a_chinese_directory(qgis_app, base):
    rows = [(SQUARE, ["方块", "0103", "2", "TT", None])]
    source = write_gpkg(base / "图斑 数据.gpkg", "Polygon", "EPSG:4524", rows, DLTB_FIELDS)
    project = QgsProject()
    project.addMapLayer(source)
    path = base / "项目 文件" / "汇交 项目.qgz"
    path.parent.mkdir()
    assert project.write(str(path))
    project.clear()
    reread = QgsProject()
    assert reread.read(str(path))
    [layer] = reread.mapLayers().values()
    assert layer.isValid() and layer.featureCount() == 1
    assert Path(layer.source().split("|")[0]) == base / "图斑 数据.gpkg"
    reread.clear()


def test_package_build_export_import(qgis_app, base):
    layer = make_dltb([("1", "6101020010010000000", KM_SQUARE)])
    built = build_package(base / "汇交 包" / "新城区 包.zip", [LayerInput(layer, "DLTB")], **PACKAGE_ARGS)
    assert built.path.parent == base / "汇交 包" and built.path.is_file()
    with zipfile.ZipFile(built.path) as archive:
        assert archive.namelist() == ["data/dltb_biangeng.gpkg", "manifest.json"]
    assert os.listdir(tempfile.gettempdir()) == []  # the build's work directory is gone
    usb = base / "移动 硬盘"
    exported = export_package(built.path, usb)
    registry = ImportRegistry(base / "配置 目录" / "huijiao" / "imported_packages.json")
    imported = import_package(exported, base / "导入 数据", registry)
    assert imported.sha256 == built.sha256
    [(name, uri)] = imported.layer_uris
    gpkg = Path(uri.split("|")[0])
    assert gpkg.is_file() and gpkg.parent.parent.parent == base / "导入 数据"
    assert json.loads(registry.path.read_text(encoding="utf-8"))[0]["directory"] == str(imported.directory)
    assert open_files_under(base) == []
    # Windows refuses these while a file is open: the package can be moved and the folders removed
    built.path.rename(base / "已提交.zip")
    shutil.rmtree(usb)
    shutil.rmtree(base / "导入 数据")


def test_field_package_export_and_import(qgis_app, base):
    store = PatchStore.create(base / "内业 数据" / "变化 图斑.gpkg", "EPSG:4545", county_code=COUNTY)
    ids = store.add_patches(
        [NewPatch(QgsGeometry.fromWkt(rel_rect(100, 100, 180, 180)), year=2025)], user="分析员"
    )
    result = export_field_package(store, base / "外业 包", ids, name="外业 核查", buffer_m=50, user="分析员")
    assert result.gpkg.is_file() and result.project.is_file()
    assert str(result.folder).startswith(str(base / "外业 包"))
    assert open_files_under(base / "外业 包") == []
    ds = ogr.Open(str(result.gpkg), update=1)  # the field worker's edit, outside the plugin
    layer = ds.GetLayerByName(schema.PATCH_LAYER)
    feature = layer.GetNextFeature()
    feature.SetField("verifier", "外业 员")
    layer.SetFeature(feature)
    ds = layer = feature = None
    moved = base / "回传 包"
    shutil.move(str(base / "外业 包"), str(moved))  # returned on a USB disk: another folder
    report = import_field_package(store, moved, user="分析员", report_path=base / "导入 报告.json")
    assert report.package_id == result.package_id
    assert [c["changes"]["verifier"][1] for c in report.applied] == ["外业 员"]
    assert (
        json.loads((base / "导入 报告.json").read_text(encoding="utf-8"))["package_id"] == result.package_id
    )
    assert open_files_under(moved) == []
    assert os.listdir(tempfile.gettempdir()) == []  # the unpacked copy is gone
    shutil.rmtree(moved)


@pytest.mark.parametrize("openpyxl_installed", [True, False], ids=["openpyxl", "gdal-xlsx"])
def test_xlsx_outputs(qgis_app, base, monkeypatch, openpyxl_installed):
    store = PatchStore.create(base / "图斑 库.gpkg", "EPSG:4545", county_code=COUNTY)
    store.add_patches([NewPatch(QgsGeometry.fromWkt(rel_rect(100, 100, 180, 180)), year=2025)], user="分析员")
    real_openpyxl = sys.modules["openpyxl"]
    if not openpyxl_installed:
        monkeypatch.setitem(sys.modules, "openpyxl", None)  # as in a QGIS without openpyxl
    out = base / "统计 表格"
    out.mkdir()
    table = write_table(out / "比对 统计.xlsx", ["行政区", "面积（亩）"], [["新城区", 1.5]])
    checklist = write_checklist(store, out / "核查 清单.xlsx", title="核查 清单")
    monkeypatch.setitem(sys.modules, "openpyxl", real_openpyxl)  # to read the workbooks back
    rows = [[c.value for c in row] for row in load_workbook(table).active.iter_rows()]
    assert rows == [["行政区", "面积（亩）"], ["新城区", 1.5]]
    assert checklist.parent == out and load_workbook(checklist).sheetnames[0] == "核查清单"
    assert open_files_under(out) == []
    shutil.rmtree(out)
