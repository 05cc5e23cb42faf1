"""The change-patch Processing algorithms (group "patches") end to end, with atlas and checklist output."""

from __future__ import annotations

import re
import subprocess
import unicodedata

import pytest
from openpyxl import load_workbook
from osgeo import ogr
from qgis.core import QgsProcessingException, QgsVectorLayer

from huijiao_plugin.core.patches import schema
from huijiao_plugin.core.patches.store import PatchStore
from tests.unit.test_patches_helpers import COUNTY, import_field_results, make_comparison, make_regions


@pytest.fixture()
def inputs(tmp_path, huijiao_provider):
    xzq, cjdcq = make_regions(tmp_path / "regions.gpkg")
    comparison = make_comparison(tmp_path / "cmp.gpkg")
    return tmp_path, xzq, cjdcq, comparison


def _from_comparison(tmp_path, xzq, cjdcq, comparison, **extra):
    import processing

    params = {
        "INPUT": comparison,
        "STORE": str(tmp_path / "bghtb.gpkg"),
        "YEAR": 2025,
        "XZQ": QgsVectorLayer(xzq, "XZQ", "ogr"),
        "CJDCQ": QgsVectorLayer(cjdcq, "CJDCQ", "ogr"),
        "USER": "分析员",
    }
    params.update(extra)
    return processing.run("huijiao:patchesfromcomparison", params)


def test_algorithms_registered_in_group(huijiao_provider):
    ids = {alg.name(): alg.groupId() for alg in huijiao_provider.algorithms()}
    for name in (
        "patchesfromcomparison",
        "fieldpackage",
        "patchatlas",
        "patchchecklist",
        "importfieldresults",
    ):
        assert ids[name] == "patches"


def test_from_comparison_twice_is_idempotent(inputs):
    tmp_path, xzq, cjdcq, comparison = inputs
    first = _from_comparison(tmp_path, xzq, cjdcq, comparison)
    assert (first["CREATED"], first["MATCHED"], first["DROPPED"]) == (3, 0, 1)
    second = _from_comparison(tmp_path, xzq, cjdcq, comparison)
    assert (second["CREATED"], second["MATCHED"]) == (0, 3)
    store = PatchStore(first["STORE"])
    assert store.count() == 3
    assert store.crs.authid() == "EPSG:4545"
    assert all(r["number"].startswith(COUNTY + "2025") for r in store.patches(with_geometry=False))


def test_bad_county_code_is_a_clear_error(inputs):
    tmp_path, xzq, cjdcq, comparison = inputs
    with pytest.raises(QgsProcessingException, match="6 digits"):
        _from_comparison(tmp_path, xzq, cjdcq, comparison, COUNTY_CODE="61")


def test_package_atlas_checklist_import(inputs):
    import processing

    tmp_path, xzq, cjdcq, comparison = inputs
    store_path = _from_comparison(tmp_path, xzq, cjdcq, comparison)["STORE"]
    store = PatchStore(store_path)
    numbers = sorted(r["number"] for r in store.patches(with_geometry=False))

    package = processing.run(
        "huijiao:fieldpackage",
        {
            "STORE": store_path,
            "WHERE": "patch_type = 'nongrain'",
            "CONTEXT_LAYERS": [QgsVectorLayer(cjdcq, "CJDCQ", "ogr")],
            "BUFFER": 30,
            "NAME": "pkg",
            "OUTPUT": str(tmp_path / "pkg"),
        },
    )
    assert package["COUNT"] == 2
    ds = ogr.Open(package["GPKG"], update=1)
    layer = ds.GetLayerByName(schema.PATCH_LAYER)
    feature = layer.GetNextFeature()
    feature.SetField("result", "属实")
    feature.SetField("verifier", "外业员")
    layer.SetFeature(feature)
    ds = None

    atlas = processing.run(
        "huijiao:patchatlas",
        {
            "STORE": store_path,
            "PATCH_IDS": ",".join(numbers[:2]),
            "CONTEXT_LAYERS": [QgsVectorLayer(xzq, "XZQ", "ogr"), QgsVectorLayer(cjdcq, "CJDCQ", "ogr")],
            "DPI": 72,
            "OUTPUT": str(tmp_path / "a.pdf"),
        },
    )
    info = subprocess.run(["pdfinfo", atlas["OUTPUT"]], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Pages:\s+2$", info, re.M)
    fonts = subprocess.run(["pdffonts", atlas["OUTPUT"]], capture_output=True, text=True, check=True).stdout
    cjk = [line.split() for line in fonts.splitlines() if "NotoSansCJK" in line]
    assert cjk and all(row[-5] == "yes" for row in cjk), fonts  # columns …, emb, sub, uni, object, gen
    # the page in words: the rule's name (not its id), a numeric scale, coordinates with two decimals, legend
    text = subprocess.run(
        ["pdftotext", "-layout", atlas["OUTPUT"], "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "规则：PBF non-grain use" in text and "pbfnongrain" not in text
    assert re.search(r"例尺 1:[\d,]*\d", text)  # pdftotext may map 比 to a radical
    assert re.search(r"西北 \d{7}\.\d\d / \d{6}\.\d\d", text)  # 3800630.00, not 3800630
    assert "图例" in text
    # on every page: regions by name with the code in brackets, the rule in words with its parameters,
    # the datasets compared by their Chinese names and versions; no raw JSON or role ids
    # (NFKC: pdftotext gives some characters as radicals, 土 as ⼟; lines wrap inside a sentence)
    pages = [re.sub(r"\s+", "", unicodedata.normalize("NFKC", page)) for page in text.split("\f")[:2]]
    assert len(pages) == 2
    for page in pages:
        # (NFKC also turns the full-width ：（）； into ASCII)
        assert re.search(r"行政区:泾阳县\(610423\)镇\(61042310[01]\)村\(61042310[01]20[12]\)", page), page
        assert "PBFonfarmlandwithanon-grainplantingattribute" in page
        assert "参数:Non-grainZZSXDMcodes:FLS、WG" in page and "(e.g." not in page
        assert "数据来源:年度国土变更调查地类图斑2023;永久基本农田保护图斑2022" in page
        assert "{" not in page and "YJJBNTBHTB" not in page and "nongrain_codes" not in page

    checklist = processing.run(
        "huijiao:patchchecklist", {"STORE": store_path, "LIMIT": 2, "OUTPUT": str(tmp_path / "list.xlsx")}
    )
    sheet = load_workbook(checklist["OUTPUT"])["核查清单"]
    assert sheet.cell(1, 2).value == "图斑编号"
    assert [sheet.cell(r, 2).value for r in (2, 3)] == numbers[:2]
    assert sheet.max_row == 3

    # the rule by name and the regions by name with their codes: the county from the catalog, township
    # and village from the region layers given (names and codes of make_regions); no rule id, no bare code
    def columns(path, *names):
        sheet = load_workbook(path)["核查清单"]
        headers = [c.value for c in sheet[1]]
        return [{sheet.cell(r, headers.index(h) + 1).value for r in (2, 3)} for h in names]

    rule, county = columns(checklist["OUTPUT"], "规则", "县级行政区")
    assert rule == {"PBF non-grain use"} and county == {"泾阳县（610423）"}
    named = processing.run(
        "huijiao:patchchecklist",
        {
            "STORE": store_path,
            "LIMIT": 2,
            "CONTEXT_LAYERS": [QgsVectorLayer(xzq, "XZQ", "ogr"), QgsVectorLayer(cjdcq, "CJDCQ", "ogr")],
            "OUTPUT": str(tmp_path / "named.xlsx"),
        },
    )
    towns, villages = columns(named["OUTPUT"], "乡镇", "村")
    assert towns and all(re.fullmatch(r"镇（61042310[01]）", t) for t in towns), towns
    assert villages and all(re.fullmatch(r"村（61042310[01]20[12]）", v) for v in villages), villages

    imported = import_field_results(store_path, package["GPKG"], tmp_path)
    assert (imported["APPLIED"], imported["CONFLICTS"], imported["REJECTED"]) == (1, 0, 0)
    with pytest.raises(QgsProcessingException, match="already imported"):
        processing.run("huijiao:importfieldresults", {"STORE": store_path, "PACKAGE": package["GPKG"]})


def test_unknown_patch_ids_are_reported(inputs):
    import processing

    tmp_path, xzq, cjdcq, comparison = inputs
    store_path = _from_comparison(tmp_path, xzq, cjdcq, comparison)["STORE"]
    with pytest.raises(QgsProcessingException, match="99999"):
        processing.run(
            "huijiao:patchchecklist",
            {"STORE": store_path, "PATCH_IDS": "99999", "OUTPUT": str(tmp_path / "x.xlsx")},
        )


def test_checklist_without_openpyxl_uses_gdal(inputs):
    from huijiao_plugin.core.patches.checklist import checklist_info, checklist_rows, write_checklist_ogr

    tmp_path, xzq, cjdcq, comparison = inputs
    store = PatchStore(_from_comparison(tmp_path, xzq, cjdcq, comparison)["STORE"])
    rows = checklist_rows(store)
    path = write_checklist_ogr(tmp_path / "plain", rows, checklist_info(rows, "测试"))
    assert path.suffix == ".xlsx"
    workbook = load_workbook(path)
    sheet = workbook["核查清单"]
    assert sheet.cell(1, 2).value == "图斑编号"
    assert [sheet.cell(r, 2).value for r in range(2, 5)] == sorted(r[1] for r in rows)
    assert float(sheet.cell(2, 11).value) == pytest.approx(rows[0][10])
    assert workbook["说明"].cell(2, 2).value == "测试"


def test_atlas_page_has_an_overview_inset_scale_and_legend(inputs):
    """The page layout: a main map, an overview inset showing all patches with the page's frame on it (linked
    to the main map, inside the page, not hiding the main map's centre), a numeric scale and a legend."""
    from qgis.core import QgsLayoutItemLabel, QgsLayoutItemLegend, QgsLayoutItemMap, QgsProject

    from huijiao_plugin.core.patches.atlas import build_atlas_layout

    tmp_path, xzq, cjdcq, comparison = inputs
    store = PatchStore(_from_comparison(tmp_path, xzq, cjdcq, comparison)["STORE"])
    project = QgsProject()
    coverage = store.qgs_layer("变化图斑")
    project.addMapLayer(coverage)
    layout = build_atlas_layout(project, coverage, [], "核查图")
    main, inset = layout.itemById("main"), layout.itemById("overview")
    assert isinstance(main, QgsLayoutItemMap) and isinstance(inset, QgsLayoutItemMap)
    assert inset.overview().enabled() and inset.overview().linkedMap() is main
    assert inset.extent().contains(coverage.extent())  # every patch of the atlas on the inset
    page = layout.pageCollection().page(0).rect()
    box, map_box = inset.sceneBoundingRect(), main.sceneBoundingRect()
    assert page.contains(box) and box.width() < map_box.width() / 3
    assert not box.contains(map_box.center())
    legends = [i for i in layout.items() if isinstance(i, QgsLayoutItemLegend)]
    assert len(legends) == 1 and legends[0].title() == "图例" and legends[0].linkedMap() is main
    texts = [i.text() for i in layout.items() if isinstance(i, QgsLayoutItemLabel)]
    assert any("比例尺 1:" in t and "map_scale" in t for t in texts)
