"""Session: what every panel of one QGIS session shares, made once in ``plugin.py`` and handed to each dock.

It holds the user's settings, builds the exchange client, knows the change-patch store and the project
GeoPackage, and decides which server news is worth a notification. Docks read all of this from here instead
of reading QgsSettings or module globals themselves, so tests can hand a dock a session of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from qgis.core import QgsProject
from qgis.PyQt.QtCore import QObject, pyqtSignal

from huijiao_plugin.core.catalog import Catalog, get_catalog
from huijiao_plugin.core.exchange.client import ExchangeClient
from huijiao_plugin.core.settings import HuijiaoSettings

log = logging.getLogger(__name__)

PROJECT_GPKG_NAME = "huijiao_results.gpkg"


class Session(QObject):
    """Settings, exchange client, patch store path, project GeoPackage and notification policy."""

    #: the settings were replaced (the new HuijiaoSettings)
    settingsChanged = pyqtSignal(object)  # noqa: N815 (Qt signal naming)
    #: the change-patch store GeoPackage path changed (a str, "" for none)
    patchStoreChanged = pyqtSignal(str)  # noqa: N815
    #: patches were added or changed in the store by another panel (e.g. from a comparison)
    patchesChanged = pyqtSignal()  # noqa: N815

    def __init__(
        self,
        settings: HuijiaoSettings | None = None,
        state_dir: str | Path | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings: HuijiaoSettings = settings if settings is not None else HuijiaoSettings()
        #: receipts, pinned keys, upload states, feed cursor (default: the QGIS profile's huijiao folder)
        self.state_dir: Path | None = Path(state_dir) if state_dir else None
        #: builds the exchange client; tests point it at a local server
        self.client_factory: Callable[[], ExchangeClient] = self._default_client
        self.patch_store_path: str = ""
        #: where comparison results are written; "" means next to the project file
        self.results_folder: str = ""
        #: sha256 of packages this user submitted in this session (the feed must not announce them)
        self.own_packages: set[str] = set()

    @classmethod
    def load(cls, parent: QObject | None = None) -> Session:
        """A session over the settings saved in QGIS."""
        return cls(HuijiaoSettings.load(), parent=parent)

    # ---- settings and client -------------------------------------------------------------------------
    def apply_settings(self, settings: HuijiaoSettings) -> None:
        self.settings = settings
        self.settingsChanged.emit(settings)

    def _default_client(self) -> ExchangeClient:
        return ExchangeClient.from_settings(self.settings, state_dir=self.state_dir)

    def client(self) -> ExchangeClient:
        """A new client for the configured server and account (raises ExchangeError when not set up)."""
        return self.client_factory()

    def catalog(self) -> Catalog:
        """The shared-data catalog (with the user's override file from the settings)."""
        return get_catalog(self.settings.catalog_override_path or None)

    def dataset_name(self, dataset_id: str) -> str:
        """The Chinese name of a catalog dataset, else the id."""
        try:
            spec = self.catalog().datasets.get(dataset_id)
        except Exception:  # a broken override file: ids rather than no panel
            log.exception("catalog unavailable")
            spec = None
        return spec.name_zh if spec is not None else dataset_id

    # ---- stores --------------------------------------------------------------------------------------
    def set_patch_store(self, path: str | Path) -> None:
        path = str(path or "")
        if path != self.patch_store_path:
            self.patch_store_path = path
            self.patchStoreChanged.emit(path)

    def project_geopackage(self) -> Path:
        """The GeoPackage results are saved into: in the folder set by the user, else next to the
        project file, else in the state folder (an unsaved project)."""
        if self.results_folder:
            return Path(self.results_folder) / PROJECT_GPKG_NAME
        project_file = QgsProject.instance().fileName()
        if project_file:
            return Path(project_file).parent / PROJECT_GPKG_NAME
        from huijiao_plugin.core.package import default_state_dir

        return (self.state_dir or default_state_dir()) / PROJECT_GPKG_NAME

    # ---- notifications -------------------------------------------------------------------------------
    def remember_own_package(self, sha256: str) -> None:
        if sha256:
            self.own_packages.add(sha256)

    def is_news(self, item: dict[str, Any]) -> bool:
        """A feed item worth a notification: a version of another department, never one this user sent."""
        if str(item.get("package_sha256") or "") in self.own_packages:
            return False
        department = str(item.get("department") or "")
        return not department or department != self.settings.department

    def news(self, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [item for item in items if self.is_news(item)]
