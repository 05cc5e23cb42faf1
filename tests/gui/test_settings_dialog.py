"""The settings dialog: round-trip to QgsSettings, only the authcfg id stored, bad input refused."""

from __future__ import annotations

import pytest
from qgis.core import QgsApplication, QgsAuthMethodConfig, QgsSettings
from qgis.PyQt.QtCore import QSettings

from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.gui.dialogs.dlg_settings import HuijiaoSettingsDialog

SECRET = "s3cret-Pa55word"


@pytest.fixture()
def settings(tmp_path):
    """An isolated QgsSettings file, so that the test sees exactly what the dialog wrote."""
    return QgsSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture()
def basic_authcfg(qgis_app):
    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        assert manager.setMasterPassword("master-test", True)
    config = QgsAuthMethodConfig("Basic")
    config.setName("huijiao test server")
    config.setConfig("username", "xian_user")
    config.setConfig("password", SECRET)
    assert manager.storeAuthenticationConfig(config)
    yield config.id()
    manager.removeAuthenticationConfig(config.id())


def test_round_trip_to_qgssettings(qgis_parent, settings, basic_authcfg, tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text("{}", encoding="utf-8")
    dialog = HuijiaoSettingsDialog(qgis_parent, settings)
    dialog.department_combo.setCurrentIndex(dialog.department_combo.findData("nync"))
    dialog.region_edit.setText("610100")
    assert dialog.region_name_label.text() == "西安市"
    dialog.unit_edit.setText("西安市农业农村局")
    dialog.server_edit.setText("https://exchange.example.org:8443/api")
    dialog.auth_select.setConfigId(basic_authcfg)
    dialog.area_unit_combo.setCurrentIndex(dialog.area_unit_combo.findData("ha"))
    dialog.rules_file.setFilePath(str(rules))
    dialog.accept()
    assert dialog.result() == HuijiaoSettingsDialog.Accepted

    saved = HuijiaoSettings.load(settings)
    assert saved == HuijiaoSettings(
        department="nync",
        region_code="610100",
        unit_name="西安市农业农村局",
        server_url="https://exchange.example.org:8443/api",
        authcfg=basic_authcfg,
        area_unit="ha",
        catalog_override_path="",
        rules_profile_path=str(rules),
    )
    # a new dialog shows what was saved
    again = HuijiaoSettingsDialog(qgis_parent, settings)
    assert again.values() == saved
    assert again.department_combo.currentData() == "nync"
    assert again.auth_select.configId() == basic_authcfg


def test_only_the_authcfg_id_is_stored(qgis_parent, settings, basic_authcfg, tmp_path):
    dialog = HuijiaoSettingsDialog(qgis_parent, settings)
    dialog.region_edit.setText("6104")
    dialog.auth_select.setConfigId(basic_authcfg)
    dialog.accept()
    settings.sync()
    stored = {key: str(settings.value(key)) for key in settings.allKeys()}
    assert stored["huijiao/server/authcfg"] == basic_authcfg
    assert len(basic_authcfg) == 7  # an auth-manager id, not a credential
    text = (tmp_path / "settings.ini").read_text(encoding="utf-8")
    assert SECRET not in text and "xian_user" not in text
    assert not any(SECRET in value or "xian_user" in value for value in stored.values())


@pytest.mark.parametrize("bad_code", ["", "6", "61010", "61-01", "61a100", "陕西"])
def test_invalid_region_code_is_refused_with_a_message(qgis_parent, settings, bad_code):
    HuijiaoSettings(region_code="610300").save(settings)
    dialog = HuijiaoSettingsDialog(qgis_parent, settings)
    dialog.region_edit.setText(bad_code)
    dialog.unit_edit.setText("changed")
    dialog.accept()
    assert dialog.result() != HuijiaoSettingsDialog.Accepted
    assert not dialog.error_label.isHidden()
    assert "GB/T 2260" in dialog.error_label.text()
    # nothing was saved
    assert HuijiaoSettings.load(settings).region_code == "610300"
    assert HuijiaoSettings.load(settings).unit_name == ""


def test_region_names_for_known_and_unknown_codes(qgis_parent, settings):
    dialog = HuijiaoSettingsDialog(qgis_parent, settings)
    dialog.region_edit.setText("61")
    assert dialog.region_name_label.text() == "陕西省"
    dialog.region_edit.setText("610403")
    assert "杨陵" in dialog.region_name_label.text()
    dialog.region_edit.setText("620100")  # valid format, not in the Shaanxi list: accepted as typed
    assert dialog.region_name_label.text() not in ("", "西安市")
    dialog.accept()
    assert dialog.result() == HuijiaoSettingsDialog.Accepted
    assert HuijiaoSettings.load(settings).region_code == "620100"


def test_bad_server_url_and_missing_file_are_refused(qgis_parent, settings, tmp_path):
    dialog = HuijiaoSettingsDialog(qgis_parent, settings)
    dialog.region_edit.setText("610100")
    dialog.server_edit.setText("ftp://example.org")
    dialog.catalog_file.setFilePath(str(tmp_path / "missing.json"))
    dialog.accept()
    assert dialog.result() != HuijiaoSettingsDialog.Accepted
    message = dialog.error_label.text()
    assert "http://" in message and "missing.json" in message
    assert settings.allKeys() == []


def test_region_names_and_context_lines(qgis_app):
    from huijiao_plugin.gui.user_context import context_lines, load_region_names, region_name

    names = load_region_names()
    assert names["610100"] == "西安市"
    assert all(len(code) == 6 and code.startswith("61") for code in names)
    assert region_name("61") == "陕西省"
    assert region_name("6101") == "西安市"
    assert region_name("611000") == "商洛市"
    assert region_name("999999") is None
    assert region_name("61x") is None
    assert region_name("") is None
    lines = context_lines(HuijiaoSettings(region_code="6103", server_url=""), ("region", "server", "unknown"))
    assert len(lines) == 2
    assert "宝鸡市 (6103)" in lines[0] or "宝鸡市（6103）" in lines[0]  # the name, its code in brackets
