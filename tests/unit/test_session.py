"""The session: one place for settings, client, stores and the notification policy."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProject

from huijiao_plugin.core.session import PROJECT_GPKG_NAME, Session
from huijiao_plugin.core.settings import HuijiaoSettings


def test_feed_news_are_other_departments_versions_only(qgis_app):
    session = Session(HuijiaoSettings(department="nync", region_code="610431"))
    mine = {"dataset_id": "gbzn", "department": "nync", "package_sha256": "a" * 64}
    theirs = {"dataset_id": "yjjbnt", "department": "zrzy", "package_sha256": "b" * 64}
    assert session.news([mine, theirs]) == [theirs]


def test_a_package_this_user_sent_is_never_news(qgis_app):
    session = Session(HuijiaoSettings(department="zrzy"))
    item = {"department": "nync", "package_sha256": "c" * 64}
    assert session.is_news(item)
    session.remember_own_package("c" * 64)
    assert not session.is_news(item)


def test_settings_change_is_announced(qgis_app):
    session = Session(HuijiaoSettings())
    seen = []
    session.settingsChanged.connect(seen.append)
    new = HuijiaoSettings(region_code="610102")
    session.apply_settings(new)
    assert seen == [new] and session.settings is new


def test_project_geopackage_next_to_project_or_in_chosen_folder(qgis_app, tmp_path):
    session = Session(HuijiaoSettings(), state_dir=tmp_path / "state")
    QgsProject.instance().setFileName("")
    assert session.project_geopackage() == tmp_path / "state" / PROJECT_GPKG_NAME
    QgsProject.instance().setFileName(str(tmp_path / "day" / "county.qgz"))
    try:
        assert session.project_geopackage() == tmp_path / "day" / PROJECT_GPKG_NAME
        session.results_folder = str(tmp_path / "results")
        assert session.project_geopackage() == Path(tmp_path / "results" / PROJECT_GPKG_NAME)
    finally:
        QgsProject.instance().setFileName("")
