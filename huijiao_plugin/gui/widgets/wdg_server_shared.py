"""The 服务器共享数据 tab of the 共享图层 panel: the newest versions on the exchange server per dataset,
download with progress and load styled, and the feed of new versions (long poll in a task, notifications of
other departments' data only). A mixin of the panel: its methods run on the panel (catalog, messages)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

from qgis.core import (
    Qgis,
    QgsProject,
    QgsVectorLayer,
)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from huijiao_plugin.core.catalog import DEPARTMENT_GROUPS
from huijiao_plugin.core.exchange.client import ExchangeClient
from huijiao_plugin.core.exchange.offline import PACKAGE_PROPERTY, load_imported_layers, open_package
from huijiao_plugin.core.exchange.transport import ExchangeError
from huijiao_plugin.core.exchange.upload import TransferCanceledError
from huijiao_plugin.core.one_map import (
    set_project_crs,
)
from huijiao_plugin.core.package import ImportedPackage, PackageError, default_state_dir
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.core.timefmt import local_time
from huijiao_plugin.gui.server_task import ServerTask, start_server_task
from huijiao_plugin.gui.user_context import region_display
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

# the server tab
SRV_DATASET, SRV_REGION, SRV_PERIOD, SRV_VERSION, SRV_DEPARTMENT, SRV_SIZE, SRV_DATE, SRV_STATE = range(8)
ROLE_VERSION = Qt.ItemDataRole.UserRole + 3
FEED_INTERVAL_MS = 5 * 60 * 1000  # poll the feed every 5 minutes ...
FEED_FIRST_MS = 10 * 1000  # ... and once shortly after start
FEED_WAIT_SECONDS = 20.0  # long-poll time of a timed poll (in the task, never in the GUI thread)
FEED_STEP_SECONDS = 5.0  # one request of a long poll waits at most this long
FEED_MAX_MESSAGES = 3  # more new versions at once are summarised in one message


def _size_text(size: int) -> str:
    if size >= 1024 * 1024:
        return tr("{value} MB").format(value=f"{size / 1024 / 1024:.1f}")
    return tr("{value} KB").format(value=f"{size / 1024:.1f}")


def newest_per_dataset(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest version per (dataset, region): latest period, then highest version number."""

    def rank(v: dict[str, Any]) -> tuple[str, str, int, str]:
        period = str(v.get("period", ""))
        return period[:4], period, int(v.get("version") or 0), str(v.get("created_at", ""))

    best: dict[tuple[str, str], dict[str, Any]] = {}
    for version in versions:
        key = (str(version.get("dataset_id", "")), str(version.get("region_code", "")))
        if key not in best or rank(version) > rank(best[key]):
            best[key] = version
    return sorted(best.values(), key=lambda v: (v.get("dataset_id", ""), v.get("region_code", "")))


class ServerSharedTab:
    """The server tab's widgets and work; mixed into HuijiaoSharedLayersDock."""

    # ---- 服务器共享数据 (shared data from the exchange server) ------------------------------------------
    def _build_server_tab(self) -> QWidget:
        tab = QWidget(self)
        tab.setObjectName("HuijiaoServerSharedTab")
        self.server_tab = tab
        layout = QVBoxLayout(tab)
        layout.setContentsMargins(4, 4, 4, 4)
        self.server_info_label = QLabel(tab)
        self.server_info_label.setWordWrap(True)
        layout.addWidget(self.server_info_label)
        bar = QHBoxLayout()
        self.server_refresh_button = QPushButton(tr("Refresh list"), tab)
        self.server_refresh_button.setObjectName("HuijiaoServerRefreshButton")
        self.server_refresh_button.clicked.connect(lambda: self.refresh_server())
        self.server_download_button = QPushButton(tr("Download and load"), tab)
        self.server_download_button.setObjectName("HuijiaoServerDownloadButton")
        self.server_download_button.setToolTip(
            tr("Download the selected package (resumed after a cut), check its hashes and load it styled")
        )
        self.server_download_button.clicked.connect(lambda: self.download_and_load())
        self.server_cancel_button = QPushButton(tr("Cancel"), tab)
        self.server_cancel_button.setObjectName("HuijiaoServerCancelButton")
        self.server_cancel_button.setEnabled(False)
        self.server_cancel_button.clicked.connect(self.cancel_server)
        self.feed_button = QPushButton(tr("Check for new data"), tab)
        self.feed_button.setObjectName("HuijiaoServerFeedButton")
        self.feed_button.clicked.connect(lambda: self.poll_feed(0.0))
        for button in (
            self.server_refresh_button,
            self.server_download_button,
            self.server_cancel_button,
            self.feed_button,
        ):
            bar.addWidget(button)
        layout.addLayout(bar)
        self.own_department_check = QCheckBox(tr("Also list my department's data"), tab)
        self.own_department_check.toggled.connect(lambda _checked: self._fill_server_tree())
        layout.addWidget(self.own_department_check)
        self.server_tree = QTreeWidget(tab)
        self.server_tree.setObjectName("HuijiaoServerVersionsTree")
        self.server_tree.setRootIsDecorated(False)
        self.server_tree.setHeaderLabels(
            [
                tr("Dataset"),
                tr("Region"),
                tr("Period"),
                tr("Version"),
                tr("Department"),
                tr("Size"),
                tr("Shared on"),
                tr("State"),
            ]
        )
        self.server_tree.header().setSectionResizeMode(SRV_DATASET, QHeaderView.ResizeMode.ResizeToContents)
        self.server_tree.itemDoubleClicked.connect(lambda item, _col: self.download_and_load(item))
        layout.addWidget(self.server_tree, 1)
        self.server_progress = QProgressBar(tab)
        self.server_progress.setRange(0, 1000)
        self.server_progress.setVisible(False)
        self.server_progress_label = QLabel(tab)
        self.server_status_label = QLabel(tab)
        self.server_status_label.setWordWrap(True)
        layout.addWidget(self.server_progress)
        layout.addWidget(self.server_progress_label)
        layout.addWidget(self.server_status_label)
        return tab

    def _tab_changed(self, index: int):
        """The server tab lists the shared data the first time it is shown."""
        if self.tabs.widget(index) is self.server_tab and not self.server_versions and not self.server_busy():
            self.refresh_server()

    def apply_server_settings(self, settings: HuijiaoSettings) -> None:
        """The department, region and server the tab works with (kept in the session)."""
        self.session.apply_settings(settings)
        self._fill_server_tree()

    def _settings(self) -> HuijiaoSettings:
        return self.session.settings

    # the session builds the client and knows the state folder; tests set these on the dock or the session
    @property
    def client_factory(self) -> Callable[[], ExchangeClient]:
        return self.session.client_factory

    @client_factory.setter
    def client_factory(self, factory: Callable[[], ExchangeClient]) -> None:
        self.session.client_factory = factory

    @property
    def state_dir(self) -> Path | None:
        return self.session.state_dir

    @state_dir.setter
    def state_dir(self, path: Path | None) -> None:
        self.session.state_dir = path

    def _make_client(self, quiet: bool = False) -> ExchangeClient | None:
        try:
            client = self.client_factory()
        except ExchangeError as error:
            self.server_status_label.setText(str(error))
            if not quiet:
                self._server_message(str(error), Qgis.MessageLevel.Warning)
            return None
        self._client = client
        return client

    def server_busy(self) -> bool:
        return self.server_task is not None

    def feed_busy(self) -> bool:
        return self.feed_task is not None

    def _start_server_task(self, task: ServerTask, done: Callable[[ServerTask, bool], None], progress: bool):
        self.server_task = task
        self.server_refresh_button.setEnabled(False)
        self.server_download_button.setEnabled(False)
        self.server_cancel_button.setEnabled(True)
        self.server_progress.setVisible(progress)
        self.server_progress.setValue(0)
        self.server_progress_label.clear()
        if progress:
            task.progressChanged.connect(lambda _value: self._show_download_progress(task))

        def finish(task: ServerTask, ok: bool):
            if sip.isdeleted(self.server_tree):
                return
            self.server_task = None
            self.server_refresh_button.setEnabled(True)
            self.server_download_button.setEnabled(True)
            self.server_cancel_button.setEnabled(False)
            self.server_progress.setVisible(False)
            done(task, ok)

        start_server_task(self, task, finish)

    def _show_download_progress(self, task: ServerTask):
        if sip.isdeleted(self) or sip.isdeleted(self.server_progress) or task.total_bytes <= 0:
            return
        from huijiao_plugin.gui.layer_tasks import format_progress

        self.server_progress.setValue(int(1000 * task.done_bytes / task.total_bytes))
        elapsed = time.monotonic() - task.started
        self.server_progress_label.setText(
            format_progress(task.done_bytes, task.total_bytes, elapsed, task.first_offset or 0)
        )

    def cancel_server(self):
        """Cancel the running list or download (a partial download is discarded)."""
        if self.server_task is not None:
            self.server_task.cancel()

    # -- listing
    def refresh_server(self) -> ServerTask | None:
        """List the newest versions per dataset visible to the account, in a background task."""
        if self.server_busy():
            return None
        client = self._make_client()
        if client is None:
            return None
        settings = self._settings()
        self.server_info_label.setText(
            tr("Server {url}, region {region}").format(url=client.server_url, region=settings.region_code)
        )
        task = ServerTask(
            tr("Listing the shared data on the server"), lambda _t: client.versions(latest=True)
        )
        self.server_status_label.setText(tr("Asking the server…"))
        self._start_server_task(task, self._listed, progress=False)
        return task

    def _listed(self, task: ServerTask, ok: bool):
        if not ok:
            self.server_status_label.setText(task.error)
            if task.error and not task.canceled_by_user:
                self._server_message(task.error, Qgis.MessageLevel.Warning)
            return
        self.server_versions = newest_per_dataset(list(task.result or []))
        self._fill_server_tree()

    def visible_versions(self) -> list[dict[str, Any]]:
        """The listed versions, without the user's own department unless asked for."""
        if self.own_department_check.isChecked():
            return list(self.server_versions)
        own = self._settings().department
        return [v for v in self.server_versions if v.get("department") != own]

    def _version_state(self, version: dict[str, Any]) -> str:
        sha = str(version.get("package_sha256", "")).lower()
        for layer in QgsProject.instance().mapLayers().values():
            if layer.customProperty(PACKAGE_PROPERTY) == sha:
                return tr("loaded")
        if self._client is not None and self._client.cached_path(sha).exists():
            return tr("downloaded")
        return tr("on the server")

    def _fill_server_tree(self):
        if sip.isdeleted(self) or sip.isdeleted(self.server_tree):
            return
        self.server_tree.clear()
        versions = self.visible_versions()
        for version in versions:
            dataset_id = str(version.get("dataset_id", ""))
            spec = self.catalog.datasets.get(dataset_id)
            name = spec.name_zh if spec is not None else str(version.get("dataset_name_zh") or dataset_id)
            department = str(version.get("department", ""))
            item = QTreeWidgetItem(
                [
                    name,
                    region_display(str(version.get("region_code", ""))),
                    str(version.get("period", "")),
                    str(version.get("version", "")),
                    DEPARTMENT_GROUPS.get(department, department),
                    _size_text(int(version.get("size") or 0)),
                    local_time(version.get("created_at")),
                    self._version_state(version),
                ]
            )
            item.setData(SRV_DATASET, ROLE_VERSION, version)
            item.setToolTip(
                SRV_DATASET,
                "{} ({})\nsha256 {}".format(
                    dataset_id, version.get("submission_id", ""), version.get("package_sha256")
                ),
            )
            self.server_tree.addTopLevelItem(item)
        if versions:
            self.server_tree.setCurrentItem(self.server_tree.topLevelItem(0))
        self.server_status_label.setText(
            tr("{count} shared datasets on the server.").format(count=len(versions))
        )

    def _refresh_server_states(self):
        if sip.isdeleted(self.server_tree):
            return
        for i in range(self.server_tree.topLevelItemCount()):
            item = self.server_tree.topLevelItem(i)
            item.setText(SRV_STATE, self._version_state(item.data(SRV_DATASET, ROLE_VERSION)))

    def server_item(self, version_id: str) -> QTreeWidgetItem | None:
        for i in range(self.server_tree.topLevelItemCount()):
            item = self.server_tree.topLevelItem(i)
            if item.data(SRV_DATASET, ROLE_VERSION).get("version_id") == version_id:
                return item
        return None

    # -- download and load
    def download_and_load(self, target: QTreeWidgetItem | dict[str, Any] | None = None) -> ServerTask | None:
        """Download a version (default: the selected row) into the cache in a task, verify and extract it,
        then load its layers styled into the 一张图."""
        if self.server_busy():
            return None
        if target is None:
            target = self.server_tree.currentItem()
        version = target.data(SRV_DATASET, ROLE_VERSION) if isinstance(target, QTreeWidgetItem) else target
        if not version:
            self._server_message(tr("Choose a dataset in the list first."), Qgis.MessageLevel.Info)
            return None
        client = self._make_client()
        if client is None:
            return None
        shared_root = (self.state_dir or client.state_dir or default_state_dir()) / "shared"

        def work(task: ServerTask) -> tuple[bool, ImportedPackage]:
            result = client.download(version, progress=task.report, control=task.control)
            if task.control.canceled:
                raise TransferCanceledError(tr("The download was canceled."), "CANCELED")
            return result.from_cache, open_package(result.path, shared_root)

        name = str(version.get("dataset_name_zh") or version.get("dataset_id"))
        task = ServerTask(tr("Downloading {name}").format(name=name), work)
        self.server_status_label.setText(tr("Downloading {name}…").format(name=name))
        self._start_server_task(task, lambda t, ok: self._downloaded(t, ok, version), progress=True)
        return task

    def _downloaded(self, task: ServerTask, ok: bool, version: dict[str, Any]):
        if not ok:
            text = tr("The download was canceled.") if task.canceled_by_user else task.error
            self.server_status_label.setText(text)
            if not task.canceled_by_user:
                self._server_message(text, Qgis.MessageLevel.Critical)
            self._refresh_server_states()
            return
        from_cache, imported = task.result
        project = QgsProject.instance()
        try:
            layers = load_imported_layers(imported, project, self.catalog)
        except PackageError as error:
            self._server_message(str(error), Qgis.MessageLevel.Critical)
            return
        self.last_loaded = layers
        if layers and (not project.crs().isValid() or len(project.mapLayers()) == len(layers)):
            set_project_crs(project, layers)
        self._zoom_to(layers)
        self.refresh_tree()
        self._refresh_server_states()
        text = tr("{name} {region} {period} (version {version}) loaded: {count} layers.").format(
            name=layers[0].name().rsplit(" ", 1)[0] if layers else version.get("dataset_id"),
            region=version.get("region_code"),
            period=version.get("period"),
            version=version.get("version"),
            count=len(layers),
        )
        if from_cache:
            text += " " + tr("(from the local cache)")
        self.server_status_label.setText(text)
        self._server_message(text, Qgis.MessageLevel.Success)

    def _zoom_to(self, layers: list[QgsVectorLayer]):
        canvas = self.iface.mapCanvas() if self.iface is not None else None
        if canvas is None or not layers:
            return
        extent = None
        for layer in layers:
            ext = canvas.mapSettings().layerExtentToOutputExtent(layer, layer.extent())
            if extent is None:
                extent = ext
            else:
                extent.combineExtentWith(ext)
        if extent is not None and not extent.isEmpty():
            canvas.setExtent(extent)
            canvas.refresh()

    # -- feed
    def poll_feed(self, wait: float = 0.0, quiet: bool = False) -> ServerTask | None:
        """Ask the server's feed for new versions (long-polling ``wait`` seconds in a task); a notification
        per new dataset, then the list is refreshed. ``quiet``: a timed poll, no message when it fails."""
        if self.feed_busy() or sip.isdeleted(self):
            return None
        client = self._make_client(quiet)
        if client is None:
            return None

        def work(task: ServerTask) -> list[dict[str, Any]]:
            # the long poll in steps, so that a cancel (QGIS closing) ends it within FEED_STEP_SECONDS
            deadline = time.monotonic() + wait
            while True:
                step = min(FEED_STEP_SECONDS, max(0.0, deadline - time.monotonic()))
                items = client.poll_feed(step)
                if items or task.control.canceled or time.monotonic() >= deadline:
                    return items

        task = ServerTask(tr("Checking the server for new shared data"), work, background=True)
        self.feed_task = task

        def finish(task: ServerTask, ok: bool):
            if sip.isdeleted(self.server_tree):
                return
            self.feed_task = None
            self._feed_done(task, ok, quiet)

        return start_server_task(self, task, finish)

    def _timed_poll(self):
        self.poll_feed(FEED_WAIT_SECONDS, quiet=True)

    def feed_message(self, item: dict[str, Any]) -> str:
        """E.g. "新的高标准农田数据已到达（杨陵区（610431），2025）": the region by name, code in brackets."""
        dataset_id = str(item.get("dataset_id", ""))
        spec = self.catalog.datasets.get(dataset_id)
        name = spec.name_zh if spec is not None else str(item.get("dataset_name_zh") or dataset_id)
        return tr("New {name} data has arrived ({region}, {period})").format(
            name=name, region=region_display(str(item.get("region_code", ""))), period=item.get("period", "")
        )

    def _feed_done(self, task: ServerTask, ok: bool, quiet: bool):
        if not ok:
            self.server_status_label.setText(task.error)
            if not quiet and task.error:
                self._server_message(task.error, Qgis.MessageLevel.Warning)
            return
        # news are other departments' versions, never what this user's department sent itself
        items = self.session.news(task.result or [])
        self.last_feed_items = items
        if not items:
            if not quiet:
                self.server_status_label.setText(tr("No new shared data."))
            return
        messages = [self.feed_message(item) for item in items]
        if len(messages) > FEED_MAX_MESSAGES:
            head = tr("{count} new shared datasets have arrived.").format(count=len(messages))
            messages = [head + " " + messages[-1]]
        for text in messages:
            self._server_message(text, Qgis.MessageLevel.Info, duration=15)
        self.server_status_label.setText(messages[-1])
        if not self.server_busy():
            self.refresh_server()

    def _server_message(self, text: str, level=Qgis.MessageLevel.Info, duration: int = 5):
        if self.iface is not None:
            self.iface.messageBar().pushMessage(
                tr("Shared data from the server"), text, level=level, duration=duration
            )
