"""Checks against the standard: every rule fires on a planted defect and stays quiet on clean data."""

from __future__ import annotations

import pytest
from qgis.core import QgsFeedback, QgsVectorLayer

from huijiao_plugin.core.checks import (
    ERROR,
    WARNING,
    CheckCanceledError,
    CheckError,
    check_layer,
    suggest_cgcs2000,
)
from tests.unit.shared_layers_data import S, dltb_data, square, write_layer


def _layer(tmp_path, data, name="t.gpkg") -> QgsVectorLayer:
    path = str(tmp_path / name)
    write_layer(path, data)
    layer = QgsVectorLayer(f"{path}|layername={data.name}", data.name, "ogr")
    assert layer.isValid()
    return layer


def _rules(report):
    return sorted({f.rule_id for f in report.findings})


def _only(report, rule):
    found = [f for f in report.findings if f.rule_id == rule]
    assert found, (rule, [f.to_dict() for f in report.findings])
    return found


def test_clean_dltb_has_no_findings(tmp_path, qgis_app):
    report = check_layer(_layer(tmp_path, dltb_data(12)), "dltb_sandiao")
    assert report.findings == [] and report.passed
    assert report.feature_count == 12 and report.field_mapping["DLBM"] == "DLBM"


@pytest.mark.parametrize(
    ("epsg", "rule", "target"),
    [
        (2360, "crs_legacy", "EPSG:4524"),  # Xian 1980 3° CM 108 with zone prefix
        (2412, "crs_legacy", "EPSG:4524"),  # Beijing 1954 3° CM 108 with zone prefix
        (4326, "crs_wgs84", "EPSG:4490"),
    ],
)
def test_crs_rules_fire_with_the_fix(tmp_path, qgis_app, epsg, rule, target):
    data = dltb_data(2, epsg=epsg)
    if epsg == 4326:
        data.wkts = ["POLYGON((108.2 34.5,108.201 34.5,108.201 34.501,108.2 34.5))"] * 2
    report = check_layer(_layer(tmp_path, data), "dltb_sandiao")
    (f,) = _only(report, rule)
    assert f.severity == ERROR and target in f.message_zh and "CGCS2000" in f.message_zh


def test_missing_crs_is_flagged_with_the_zone_from_coordinates(tmp_path, qgis_app):
    data = dltb_data(2, epsg=None)
    report = check_layer(_layer(tmp_path, data), "dltb_sandiao")
    (f,) = _only(report, "crs_missing")
    assert "EPSG:4524" in f.message_zh and f.severity == ERROR
    assert suggest_cgcs2000(QgsVectorLayer().crs(), 18_500_000.0) == "EPSG:4524"


@pytest.mark.parametrize("epsg", [4524, 4545, 4497])
def test_cgcs2000_zones_are_accepted(tmp_path, qgis_app, epsg):
    report = check_layer(_layer(tmp_path, dltb_data(2, epsg=epsg)), "dltb_sandiao")
    assert not [r for r in _rules(report) if r.startswith("crs")]


def test_missing_required_field_and_type_mismatch(tmp_path, qgis_app):
    data = dltb_data(3)
    data.fields = [(n, S if n == "TBMJ" else t) for n, t in data.fields if n != "DLMC"]
    for r in data.rows:
        r.pop("DLMC")
        r["TBMJ"] = "{:.2f}".format(r["TBMJ"])
    report = check_layer(_layer(tmp_path, data), "dltb_sandiao")
    (missing,) = _only(report, "field_missing")
    assert missing.field == "DLMC" and missing.severity == ERROR and "地类名称" in missing.message_zh
    (typ,) = _only(report, "field_type")
    assert typ.field == "TBMJ" and typ.severity == WARNING
    # text TBMJ is still compared numerically: no area finding
    assert "area_mismatch" not in _rules(report) and "area_missing" not in _rules(report)


def test_codes_outside_domain_are_counted_per_value(tmp_path, qgis_app):
    data = dltb_data(8)
    data.rows[1].update(DLBM="0105", DLMC="x")
    data.rows[2].update(DLBM="0105", DLMC="x")
    data.rows[3]["ZZSXDM"] = "ABC"
    data.rows[4]["DLBM"] = "0201K"  # an extended code is valid
    data.rows[4]["DLMC"] = "可调整果园"
    data.rows[5]["TBXHDM"] = "HHGD"  # legacy draft code is tolerated (mapped to SHGD)
    layer = _layer(tmp_path, data)
    report = check_layer(layer, "dltb_sandiao")
    domain = {(f.field, f.value): f for f in _only(report, "code_domain")}
    assert set(domain) == {("DLBM", "0105"), ("ZZSXDM", "ABC")}
    assert domain[("DLBM", "0105")].count == 2 and domain[("DLBM", "0105")].severity == ERROR
    assert "0105" in domain[("DLBM", "0105")].message_zh
    fids = {f.id(): f["BSM"] for f in layer.getFeatures()}
    assert sorted(fids[i] for i in domain[("DLBM", "0105")].feature_ids) == [
        data.rows[1]["BSM"],
        data.rows[2]["BSM"],
    ]
    assert domain[("ZZSXDM", "ABC")].count == 1
    assert "dlmc_mismatch" not in _rules(report)  # unknown codes are reported once, as code_domain


def test_dlmc_not_matching_dlbm(tmp_path, qgis_app):
    data = dltb_data(6)
    data.rows[0]["DLMC"] = "旱地"  # DLBM 0101 水田
    report = check_layer(_layer(tmp_path, data), "dltb_sandiao")
    (f,) = _only(report, "dlmc_mismatch")
    assert f.value == "0101/旱地" and f.count == 1 and "水田" in f.message_zh


def test_empty_and_invalid_geometries(tmp_path, qgis_app):
    data = dltb_data(5)
    data.wkts[0] = ""
    x, y = 36_530_000.0, 3_822_000.0
    bowtie = "POLYGON(({0} {1},{2} {3},{2} {1},{0} {3},{0} {1}))".format(x, y, x + 100, y + 100)
    data.wkts[1] = bowtie
    data.rows[1]["TBMJ"] = 1.0
    layer = _layer(tmp_path, data)
    report = check_layer(layer, "dltb_sandiao")
    (empty,) = _only(report, "geometry_empty")
    (invalid,) = _only(report, "geometry_invalid")
    bsm = {f.id(): f["BSM"] for f in layer.getFeatures()}
    assert [bsm[i] for i in empty.feature_ids] == [data.rows[0]["BSM"]]
    assert [bsm[i] for i in invalid.feature_ids] == [data.rows[1]["BSM"]]
    assert empty.severity == invalid.severity == ERROR


def test_duplicate_bsm(tmp_path, qgis_app):
    data = dltb_data(6)
    data.rows[4]["BSM"] = data.rows[2]["BSM"]
    report = check_layer(_layer(tmp_path, data), "dltb_sandiao")
    (f,) = _only(report, "bsm_duplicate")
    assert f.count == 2 and f.value == data.rows[2]["BSM"] and len(f.feature_ids) == 2


def test_tbmj_against_ellipsoidal_area_with_tolerance(tmp_path, qgis_app):
    data = dltb_data(6)
    data.rows[0]["TBMJ"] += 1.0  # beyond max(0.1, 1e-6·TBMJ)
    data.rows[1]["TBMJ"] += 0.05  # within tolerance
    data.rows[2]["TBMJ"] = None
    data.rows[3]["TBMJ"] *= 1.0002  # planar-like error of 2e-4
    report = check_layer(_layer(tmp_path, data), "dltb_sandiao")
    (bad,) = _only(report, "area_mismatch")
    assert bad.count == 2 and bad.severity == ERROR
    (missing,) = _only(report, "area_missing")
    assert missing.count == 1


def test_aliased_fields_are_checked_under_their_actual_names(tmp_path, qgis_app):
    data = dltb_data(4)
    rename = {"DLBM": "地类编码", "DLMC": "地类名称", "TBMJ": "图斑面积"}
    data.fields = [(rename.get(n, n), t) for n, t in data.fields]
    data.rows = [{rename.get(k, k): v for k, v in r.items()} for r in data.rows]
    data.rows[0]["地类编码"] = "9999"
    report = check_layer(_layer(tmp_path, data), "dltb_sandiao")
    (f,) = _only(report, "code_domain")
    assert f.field == "DLBM" and "地类编码" in f.message_zh
    assert _rules(report) == ["code_domain"]


def test_other_datasets_use_their_own_area_field(tmp_path, qgis_app):
    from tests.unit.shared_layers_data import D, ellipsoidal_area, simple_data

    rows = []
    for i in range(3):
        mj = ellipsoidal_area(square(i))
        rows.append({"YJJBNTTBBH": str(i), "DLBM": "0101", "DLMC": "水田", "BSM": str(i), "YJJBNTTBMJ": mj,
                     "YJJBNTMJ": mj})  # fmt: skip
    rows[2]["YJJBNTTBMJ"] += 5
    fields = [("BSM", S), ("YJJBNTTBBH", S), ("DLBM", S), ("DLMC", S), ("YJJBNTTBMJ", D), ("YJJBNTMJ", D)]
    report = check_layer(_layer(tmp_path, simple_data("YJJBNTBHTB", fields, rows)), "yjjbnt")
    (f,) = _only(report, "area_mismatch")
    assert f.field == "YJJBNTTBMJ" and f.count == 1
    assert _rules(report) == ["area_mismatch"]


def test_cancel_and_bad_layer(tmp_path, qgis_app):
    feedback = QgsFeedback()
    feedback.cancel()
    with pytest.raises(CheckCanceledError):
        check_layer(_layer(tmp_path, dltb_data(3)), "dltb_sandiao", progress=feedback)
    with pytest.raises(CheckError, match="图层无效"):
        check_layer(QgsVectorLayer("/nonexistent.gpkg", "x", "ogr"), "dltb_sandiao")
    progress = QgsFeedback()
    check_layer(_layer(tmp_path, dltb_data(3), "p.gpkg"), "dltb_sandiao", progress=progress)
    assert progress.progress() == 100


def test_zero_means_not_applicable_in_numeric_grade_fields(tmp_path, qgis_app):
    data = dltb_data(6)
    data.rows[2]["GDDB"] = 0  # non-耕地 carry 0 in many deliveries: not a code error
    report = check_layer(_layer(tmp_path, data), "dltb_sandiao")
    assert report.findings == []
    data.rows[3]["GDDB"] = 16  # 1–15 only
    report = check_layer(_layer(tmp_path, data, "b.gpkg"), "dltb_sandiao")
    (f,) = _only(report, "code_domain")
    assert f.field == "GDDB" and f.value == "16"


def test_check_task_runs_and_cancels(tmp_path, qgis_app):
    from huijiao_plugin.core.catalog import Catalog
    from huijiao_plugin.core.recognition import recognize_path
    from huijiao_plugin.core.shared_layers_tasks import CheckDatasetsTask, OpenLayersTask

    data = dltb_data(4)
    data.rows[0]["DLMC"] = "旱地"
    path = str(tmp_path / "task.gpkg")
    write_layer(path, data)
    (rec,) = recognize_path(path)
    task = CheckDatasetsTask([(rec.dataset_id, rec)], Catalog.load())
    assert task.run() is True
    (report,) = task.reports
    assert [f.rule_id for f in report.findings] == ["dlmc_mismatch"] and task.progress() == 100
    cancelled = CheckDatasetsTask([(rec.dataset_id, rec)], Catalog.load())
    cancelled.cancel()
    assert cancelled.run() is False and cancelled.reports == []
    opener = OpenLayersTask([(rec.dataset_id, rec)])
    assert opener.run() is True
    ((dataset_id, _, layer),) = opener.layers
    assert dataset_id == "dltb_sandiao" and layer.featureCount() == 4
