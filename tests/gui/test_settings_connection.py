"""设置 → 测试连接 against the real exchange server: reachable, encryption, account and department, with the
account from the QGIS authentication manager as the user picks it in the dialog."""

from __future__ import annotations

import base64
import hashlib

import pytest
import requests
from qgis.core import QgsApplication, QgsAuthMethodConfig, QgsSettings
from qgis.PyQt.QtCore import QSettings
from qgis.PyQt.QtTest import QTest

from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.gui.dialogs.dlg_settings import HuijiaoSettingsDialog
from tests.gui.task_support import wait_until
from tests.integration.server_support import DEMO_PASSWORD, demo_server_fixture

server = demo_server_fixture("exchange-settings", release=False)


@pytest.fixture()
def authcfg(qgis_app):
    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        assert manager.setMasterPassword("master-test", True)
    ids = []

    def make(username, password):
        config = QgsAuthMethodConfig("Basic")
        config.setName(f"huijiao {username}")
        config.setConfig("username", username)
        config.setConfig("password", password)
        assert manager.storeAuthenticationConfig(config)
        ids.append(config.id())
        return config.id()

    yield make
    for config_id in ids:
        manager.removeAuthenticationConfig(config_id)


def _dialog(qgis_parent, tmp_path, url, config_id, department="zrzy"):
    dialog = HuijiaoSettingsDialog(
        qgis_parent, QgsSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    )
    dialog.department_combo.setCurrentIndex(dialog.department_combo.findData(department))
    dialog.region_edit.setText("610102")
    dialog.server_edit.setText(url)
    dialog.auth_select.setConfigId(config_id)
    return dialog


def _test(dialog):
    """Press 测试连接 and wait for the answer handed back from the task."""
    dialog.test_button.click()
    wait_until(lambda: dialog.connection_task is None)
    assert dialog.test_button.isEnabled() and not dialog.test_cancel_button.isEnabled()
    return dialog.last_report


def _server_fingerprint(url: str) -> str:
    """The key fingerprint computed here from what the server sends (sha256 of the raw Ed25519 key)."""
    key = requests.get(url + "/api/v1/server-key", timeout=30).json()["public_key"]
    return "SHA256:" + hashlib.sha256(base64.b64decode(key)).hexdigest()


def test_connection_ok_names_account_and_department(qgis_parent, tmp_path, server, authcfg):
    dialog = _dialog(qgis_parent, tmp_path, server.url, authcfg("demo_zrzy_submitter", DEMO_PASSWORD))
    dialog.unencrypted_check.click()  # a plain-http test server: its key may be trusted on first use
    dialog.test_button.click()
    assert not dialog.test_button.isEnabled()  # the checks run in a task
    wait_until(lambda: dialog.connection_task is None)
    text = dialog.test_label.text()
    lines = text.splitlines()
    assert lines[0].startswith("✔") and server.url in lines[0]
    assert lines[1].startswith("✘") and "http" in lines[1]  # a plain-http test server: not encrypted
    assert lines[2].startswith("✔") and _server_fingerprint(server.url) in lines[2]
    assert lines[3].startswith("✔") and "demo_zrzy_submitter" in lines[3] and "610102" in lines[3]
    assert len(lines) == 4
    dialog.deleteLater()


def test_connection_checks_the_key_fingerprint(qgis_parent, tmp_path, server, authcfg):
    """Over plain http the key is refused unless the test-server box is ticked or its fingerprint typed; a
    typed fingerprint that differs is refused too, naming both."""
    dialog = _dialog(qgis_parent, tmp_path, server.url, authcfg("demo_zrzy_submitter", DEMO_PASSWORD))
    report = _test(dialog)
    assert not report.ok and report.steps[2][0] is False and "unencrypted" in report.steps[2][1].lower()
    right = _server_fingerprint(server.url)
    QTest.keyClicks(dialog.fingerprint_edit, right)
    report = _test(dialog)
    assert report.steps[2] == (True, f"The server's signing key {right} is the one set in the settings.")
    wrong = "SHA256:" + "0" * 64
    dialog.fingerprint_edit.clear()
    QTest.keyClicks(dialog.fingerprint_edit, wrong)
    report = _test(dialog)
    assert report.steps[2][0] is False and right in report.steps[2][1] and wrong in report.steps[2][1]
    dialog.fingerprint_edit.clear()
    QTest.keyClicks(dialog.fingerprint_edit, "SHA256:abc")
    assert dialog.validation_errors(dialog.values())  # not a fingerprint: the dialog says how it looks
    dialog.deleteLater()


def test_tls_settings_saved(qgis_parent, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    store = QgsSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    dialog = HuijiaoSettingsDialog(qgis_parent, store)
    dialog.region_edit.setText("610102")
    dialog.ca_file.setFilePath(str(ca))
    QTest.keyClicks(dialog.fingerprint_edit, "SHA256:" + "ab" * 32)
    dialog.unencrypted_check.click()
    dialog.accept()
    saved = HuijiaoSettings.load(store)
    assert saved.ca_file == str(ca) and saved.server_key_fingerprint == "SHA256:" + "ab" * 32
    assert saved.allow_unencrypted is True
    dialog.deleteLater()


def test_connection_wrong_password_wrong_department_and_no_server(qgis_parent, tmp_path, server, authcfg):
    dialog = _dialog(qgis_parent, tmp_path, server.url, authcfg("demo_zrzy_submitter", "wrong"))
    report = _test(dialog)
    assert not report.ok and report.steps[-1][0] is False
    assert dialog.test_label.text().splitlines()[-1].startswith("✘")
    assert report.account == {}

    dialog = _dialog(qgis_parent, tmp_path, server.url, authcfg("demo_nync_reader", DEMO_PASSWORD), "zrzy")
    report = _test(dialog)
    assert report.account["department"] == "nync"
    assert not report.ok and report.steps[-1][0] is False  # the settings say 自然资源

    dialog = _dialog(
        qgis_parent, tmp_path, "http://127.0.0.1:9", authcfg("demo_zrzy_submitter", DEMO_PASSWORD)
    )
    report = _test(dialog)
    assert len(report.steps) == 1 and not report.ok and "127.0.0.1:9" in report.steps[0][1]


def test_connection_test_can_be_canceled(qgis_parent, tmp_path, server, authcfg):
    dialog = _dialog(qgis_parent, tmp_path, server.url, authcfg("demo_zrzy_submitter", DEMO_PASSWORD))
    dialog.test_button.click()
    assert dialog.test_cancel_button.isEnabled()
    dialog.test_cancel_button.click()
    wait_until(lambda: dialog.connection_task is None)
    assert dialog.last_report is None and dialog.test_label.text() in ("Canceled.", "已取消。")
    assert dialog.test_button.isEnabled()
    assert _test(dialog).account["username"] == "demo_zrzy_submitter"  # pressed again, it answers
    dialog.deleteLater()
