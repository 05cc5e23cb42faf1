"""The settings dialog: what every panel needs to know about the user and the exchange server.

Only non-secret values are saved (HuijiaoSettings → QgsSettings). Credentials for the exchange server stay in
the QGIS authentication manager; the dialog stores only the id of the chosen auth configuration.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from qgis.core import QgsApplication, QgsSettings
from qgis.gui import QgsAuthConfigSelect, QgsFileWidget
from qgis.PyQt.QtCore import Qt, QUrl
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
)

from huijiao_plugin.core.connection_check import ConnectionReport, check_connection
from huijiao_plugin.core.exchange.client import ExchangeClient
from huijiao_plugin.core.exchange.transport import ExchangeError
from huijiao_plugin.core.settings import (
    AREA_UNITS,
    DEPARTMENTS,
    HuijiaoSettings,
    is_valid_region_code,
)
from huijiao_plugin.gui.server_task import ServerTask, start_server_task
from huijiao_plugin.gui.user_context import area_unit_label, department_label, load_region_names, region_name
from huijiao_plugin.gui.widgets.wdg_ok_cancel import ok_cancel_buttons
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

ERROR_STYLE = "color: #b00020;"
OK_STYLE = "color: #1a7f37;"


class HuijiaoSettingsDialog(QDialog):
    """Edit HuijiaoSettings; ``accept()`` validates, saves and keeps the result in ``self.settings``."""

    def __init__(self, parent=None, settings: QgsSettings | None = None):
        super().__init__(parent)
        self.setObjectName("HuijiaoSettingsDialog")
        self.setWindowTitle(tr("Huijiao settings"))
        self._qgs_settings = settings
        self.settings = HuijiaoSettings.load(settings)
        #: builds the client for 测试连接 from the entered values (default: server, auth manager, proxy)
        self.client_factory = None
        self.connection_task: ServerTask | None = None
        #: the answer of the last finished 测试连接 (None while it runs or after a cancel)
        self.last_report: ConnectionReport | None = None
        self._region_names = load_region_names()

        layout = QVBoxLayout(self)

        user_box = QGroupBox(tr("User"), self)
        user_form = QFormLayout(user_box)
        self.department_combo = QComboBox(user_box)
        self.department_combo.setObjectName("department_combo")
        for department in DEPARTMENTS:
            self.department_combo.addItem(department_label(department), department)
        user_form.addRow(tr("Department"), self.department_combo)
        self.region_edit = QLineEdit(user_box)
        self.region_edit.setObjectName("region_edit")
        self.region_edit.setPlaceholderText("610100")
        self.region_edit.setMaxLength(6)
        self.region_edit.setToolTip(tr("GB/T 2260 code of your province (2 digits), city (4) or county (6)"))
        user_form.addRow(tr("Region code"), self.region_edit)
        self.region_name_label = QLabel(user_box)
        self.region_name_label.setObjectName("region_name_label")
        user_form.addRow("", self.region_name_label)
        self.unit_edit = QLineEdit(user_box)
        self.unit_edit.setObjectName("unit_edit")
        user_form.addRow(tr("Unit name"), self.unit_edit)
        layout.addWidget(user_box)

        server_box = QGroupBox(tr("Exchange server"), self)
        server_form = QFormLayout(server_box)
        self.server_edit = QLineEdit(server_box)
        self.server_edit.setObjectName("server_edit")
        self.server_edit.setPlaceholderText("https://")
        server_form.addRow(tr("Server URL"), self.server_edit)
        self.auth_select = QgsAuthConfigSelect(server_box)
        self.auth_select.setObjectName("auth_select")
        self.auth_select.setToolTip(
            tr(
                "Credentials are kept in the QGIS authentication manager; "
                "only the id of the configuration is saved."
            )
        )
        server_form.addRow(tr("Authentication"), self.auth_select)
        self.ca_file = QgsFileWidget(server_box)
        self.ca_file.setObjectName("ca_file")
        self.ca_file.setFilter(tr("Certificates (*.pem *.crt *.cer)"))
        self.ca_file.setToolTip(tr("An extra CA certificate for the server's TLS certificate (optional)"))
        server_form.addRow(tr("CA certificate"), self.ca_file)
        self.fingerprint_edit = QLineEdit(server_box)
        self.fingerprint_edit.setObjectName("key_fingerprint_edit")
        self.fingerprint_edit.setPlaceholderText("SHA256:…")
        self.fingerprint_edit.setToolTip(
            tr("The fingerprint of the server's receipt-signing key, as given by the server administrator")
        )
        server_form.addRow(tr("Key fingerprint"), self.fingerprint_edit)
        self.unencrypted_check = QCheckBox(tr("Unencrypted test server (http)"), server_box)
        self.unencrypted_check.setObjectName("allow_unencrypted_check")
        self.unencrypted_check.setToolTip(
            tr("Trust the server's signing key over plain http: only for a test server on a closed network")
        )
        server_form.addRow("", self.unencrypted_check)
        self.test_button = QPushButton(
            QgsApplication.getThemeIcon("mActionRefresh.svg"), tr("Test connection")
        )
        self.test_button.setObjectName("test_connection_button")
        self.test_button.setToolTip(tr("Server reachable, encrypted connection, account valid, department"))
        self.test_button.clicked.connect(self.test_connection)
        self.test_label = QLabel(server_box)
        self.test_label.setObjectName("test_connection_label")
        self.test_label.setWordWrap(True)
        self.test_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.test_cancel_button = QToolButton(server_box)
        self.test_cancel_button.setObjectName("test_connection_cancel_button")
        self.test_cancel_button.setIcon(QgsApplication.getThemeIcon("mTaskCancel.svg"))
        self.test_cancel_button.setToolTip(tr("Stop waiting for the server"))
        self.test_cancel_button.setEnabled(False)
        self.test_cancel_button.clicked.connect(self.cancel_connection_test)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.test_cancel_button)
        test_row.addStretch(1)
        server_form.addRow("", test_row)
        server_form.addRow("", self.test_label)
        layout.addWidget(server_box)

        display_box = QGroupBox(tr("Display and configuration files"), self)
        display_form = QFormLayout(display_box)
        self.area_unit_combo = QComboBox(display_box)
        self.area_unit_combo.setObjectName("area_unit_combo")
        for unit in AREA_UNITS:
            self.area_unit_combo.addItem(area_unit_label(unit), unit)
        display_form.addRow(tr("Area unit"), self.area_unit_combo)
        self.catalog_file = QgsFileWidget(display_box)
        self.catalog_file.setObjectName("catalog_file")
        self.catalog_file.setFilter(tr("JSON files (*.json);;All files (*)"))
        display_form.addRow(tr("Catalog override file"), self.catalog_file)
        self.rules_file = QgsFileWidget(display_box)
        self.rules_file.setObjectName("rules_file")
        self.rules_file.setFilter(tr("JSON files (*.json);;All files (*)"))
        display_form.addRow(tr("Rules profile"), self.rules_file)
        layout.addWidget(display_box)

        self.error_label = QLabel(self)
        self.error_label.setObjectName("error_label")
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        layout.addWidget(self.error_label)

        self.button_box = ok_cancel_buttons(self)
        self.button_box.accepted.connect(self.accept)
        self.button_box.rejected.connect(self.reject)
        layout.addWidget(self.button_box)

        self.region_edit.textChanged.connect(self._update_region_name)
        self._show(self.settings)

    # --- 测试连接 ------------------------------------------------------------------------------------
    def test_connection(self) -> ServerTask | None:
        """Check the server, TLS, account and department with the values as entered (not saved), in a
        task; the answer appears in ``test_label`` and ``last_report`` when the server has answered."""
        if self.connection_task is not None:
            return None
        values = self.values()
        # the client is built here, on the main thread (auth manager, settings); its calls run in the task
        try:
            client = (self.client_factory or ExchangeClient.from_settings)(values)
        except ExchangeError as error:
            client = error
        self.last_report = None
        self.test_label.setText(tr("Connecting…"))
        self.test_label.setStyleSheet("")
        self.test_button.setEnabled(False)
        self.test_cancel_button.setEnabled(True)

        def work(_task: ServerTask) -> ConnectionReport:
            if isinstance(client, ExchangeError):
                return ConnectionReport(steps=[(False, str(client))])
            return check_connection(values, lambda _settings: client)

        self.connection_task = ServerTask(tr("Testing the connection"), work)
        return start_server_task(self, self.connection_task, self._tested)

    def _tested(self, task: ServerTask, ok: bool) -> None:
        self.connection_task = None
        self.test_button.setEnabled(True)
        self.test_cancel_button.setEnabled(False)
        if not ok:
            self.test_label.setText(task.error if task.error else tr("Canceled."))
            self.test_label.setStyleSheet(ERROR_STYLE if task.error else "")
            return
        report: ConnectionReport = task.result
        self.last_report = report
        self.test_label.setText(report.text())
        self.test_label.setStyleSheet(OK_STYLE if report.ok else ERROR_STYLE)

    def cancel_connection_test(self) -> None:
        if self.connection_task is not None:
            self.connection_task.cancel()

    def done(self, result: int) -> None:  # accept or reject: a running test is no longer wanted
        self.cancel_connection_test()
        super().done(result)

    # --- state <-> widgets -------------------------------------------------------------------------
    def _show(self, settings: HuijiaoSettings) -> None:
        self.department_combo.setCurrentIndex(max(0, self.department_combo.findData(settings.department)))
        self.region_edit.setText(settings.region_code)
        self.unit_edit.setText(settings.unit_name)
        self.server_edit.setText(settings.server_url)
        self.auth_select.setConfigId(settings.authcfg)
        self.ca_file.setFilePath(settings.ca_file)
        self.fingerprint_edit.setText(settings.server_key_fingerprint)
        self.unencrypted_check.setChecked(settings.allow_unencrypted)
        self.area_unit_combo.setCurrentIndex(max(0, self.area_unit_combo.findData(settings.area_unit)))
        self.catalog_file.setFilePath(settings.catalog_override_path)
        self.rules_file.setFilePath(settings.rules_profile_path)
        self._update_region_name(settings.region_code)

    def _update_region_name(self, text: str) -> None:
        code = text.strip()
        if not code:
            self.region_name_label.setText("")
        elif not is_valid_region_code(code):
            self.region_name_label.setText(tr("2, 4 or 6 digits"))
        else:
            name = region_name(code, self._region_names)
            self.region_name_label.setText(name or tr("Not in the region list; saved as typed."))

    def values(self) -> HuijiaoSettings:
        """The settings as currently entered (not validated)."""
        return HuijiaoSettings(
            department=self.department_combo.currentData(),
            region_code=self.region_edit.text().strip(),
            unit_name=self.unit_edit.text().strip(),
            server_url=self.server_edit.text().strip(),
            authcfg=self.auth_select.configId() or "",
            area_unit=self.area_unit_combo.currentData(),
            catalog_override_path=self.catalog_file.filePath().strip(),
            rules_profile_path=self.rules_file.filePath().strip(),
            ca_file=self.ca_file.filePath().strip(),
            server_key_fingerprint=self.fingerprint_edit.text().strip(),
            allow_unencrypted=self.unencrypted_check.isChecked(),
        )

    def validation_errors(self, values: HuijiaoSettings) -> list[str]:
        errors = []
        if not is_valid_region_code(values.region_code):
            errors.append(tr("The region code must have 2, 4 or 6 digits (GB/T 2260), for example 610100."))
        if values.server_url:
            url = QUrl(values.server_url)
            if url.scheme() not in ("http", "https") or not url.host():
                errors.append(
                    tr("The exchange server URL must start with http:// or https:// and name a host.")
                )
        if values.server_key_fingerprint and not re.fullmatch(
            r"SHA256:[0-9a-fA-F]{64}", values.server_key_fingerprint
        ):
            errors.append(tr("The key fingerprint must look like SHA256: followed by 64 hexadecimal digits."))
        for label, path in (
            (tr("CA certificate"), values.ca_file),
            (tr("Catalog override file"), values.catalog_override_path),
            (tr("Rules profile"), values.rules_profile_path),
        ):
            if path and not Path(path).is_file():
                errors.append(tr("{label}: file not found: {path}").format(label=label, path=path))
        return errors

    def accept(self) -> None:
        values = self.values()
        errors = self.validation_errors(values)
        if errors:
            self.error_label.setText("\n".join(errors))
            self.error_label.show()
            return
        self.error_label.hide()
        values.save(self._qgs_settings)
        self.settings = values
        log.info("Settings saved (department %s, region %s)", values.department, values.region_code)
        super().accept()
