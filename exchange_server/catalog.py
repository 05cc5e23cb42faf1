"""The dataset catalog (共享清单), read as plain JSON files from the plugin's ``huijiao_plugin/data/catalog``.

One file per dataset: ``{"id", "name_zh", "name_en", "department": "zrzy"|"nync"|"base"|"any", "geometry",
"layer_names": [...], "fields": [{"name", "type", "required", "aliases"}], "frequency", "shared", ...}``.
This module is the only place the server reads the catalog; it never imports QGIS.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

LOG = logging.getLogger(__name__)

DEFAULT_CATALOG_DIR = Path(__file__).resolve().parent.parent / "huijiao_plugin" / "data" / "catalog"
DEPARTMENTS = ("zrzy", "nync")
DEPARTMENT_NAMES_ZH = {"zrzy": "自然资源", "nync": "农业农村", "base": "基础数据", "any": "任一部门"}
ANNUAL_FREQUENCIES = {"yearly", "annual", "annually", "year"}
MONITORING_FREQUENCIES = {"half-yearly", "semiannual", "quarterly", "monthly", "monitoring", "seasonal"}
# Datasets that either department may submit (change patches / 变化图斑), in addition to department "any".
DEFAULT_BOTH_DEPARTMENT_DATASETS = frozenset({"bghtb"})
# Used only when the catalog directory has no file for them.
BUILTIN_DATASETS = (
    {
        "id": "bghtb",
        "name_zh": "变化图斑",
        "name_en": "Change patches",
        "department": "any",
        "geometry": "polygon",
        "layer_names": ["BGHTB", "BHTB"],
        "fields": [],
        "frequency": "irregular",
        "shared": True,
    },
)


@dataclass(frozen=True)
class CatalogField:
    name: str
    type: str = ""
    required: bool = False
    aliases: tuple[str, ...] = ()

    def names(self) -> set[str]:
        return {self.name.lower(), *(a.lower() for a in self.aliases)}


@dataclass(frozen=True)
class Dataset:
    id: str
    name_zh: str
    name_en: str
    department: str
    geometry: str = ""
    layer_names: tuple[str, ...] = ()
    fields: tuple[CatalogField, ...] = ()
    frequency: str = ""
    shared: bool = True
    min_per_year: int | None = None
    due_days: int | None = None
    raw: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_annual(self) -> bool:
        return self.frequency.lower() in ANNUAL_FREQUENCIES

    @property
    def is_monitoring(self) -> bool:
        return self.frequency.lower() in MONITORING_FREQUENCIES or self.id == "jctb"

    def required_fields(self) -> list[CatalogField]:
        return [f for f in self.fields if f.required]

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "department": self.department,
            "geometry": self.geometry,
            "layer_names": list(self.layer_names),
            "required_fields": [f.name for f in self.required_fields()],
            "frequency": self.frequency,
            "shared": self.shared,
        }


class Catalog:
    """Datasets by id plus the submit rule for 'base' and both-department datasets."""

    def __init__(
        self,
        datasets: dict[str, Dataset],
        base_submitters: tuple[str, ...] = ("zrzy",),
        both_department_ids: frozenset[str] = DEFAULT_BOTH_DEPARTMENT_DATASETS,
    ) -> None:
        self.datasets = datasets
        self.base_submitters = base_submitters
        self.both_department_ids = both_department_ids

    def get(self, dataset_id: str) -> Dataset | None:
        return self.datasets.get(dataset_id)

    def submit_departments(self, dataset_id: str) -> tuple[str, ...]:
        """Departments whose submitters may submit this dataset."""
        ds = self.datasets.get(dataset_id)
        if dataset_id in self.both_department_ids or (ds is not None and ds.department == "any"):
            return DEPARTMENTS
        if ds is None:
            return ()
        if ds.department == "base":
            return self.base_submitters
        return (ds.department,) if ds.department in DEPARTMENTS else ()

    def name_zh(self, dataset_id: str) -> str:
        ds = self.datasets.get(dataset_id)
        return ds.name_zh if ds else dataset_id


def _dataset_from_json(data: dict) -> Dataset:
    fields = []
    for f in data.get("fields") or []:
        if isinstance(f, dict) and f.get("name"):
            fields.append(
                CatalogField(
                    name=str(f["name"]),
                    type=str(f.get("type", "")),
                    required=bool(f.get("required", False)),
                    aliases=tuple(str(a) for a in (f.get("aliases") or [])),
                )
            )
    mpy = data.get("min_per_year")
    due = data.get("deadline_days_after_release")
    return Dataset(
        id=str(data["id"]),
        name_zh=str(data.get("name_zh") or data["id"]),
        name_en=str(data.get("name_en") or data["id"]),
        department=str(data.get("department") or "base"),
        geometry=str(data.get("geometry") or ""),
        layer_names=tuple(str(n) for n in (data.get("layer_names") or [])),
        fields=tuple(fields),
        frequency=str(data.get("frequency") or ""),
        shared=bool(data.get("shared", True)),
        min_per_year=int(mpy) if isinstance(mpy, int) else None,
        due_days=int(due) if isinstance(due, int) else None,
        raw=data,
    )


def load_catalog(
    directory: Path | str | None = None, base_submitters: tuple[str, ...] = ("zrzy",)
) -> Catalog:
    """Read every ``*.json`` file in ``directory`` (default: the plugin's catalog); skip bad files."""
    path = Path(directory) if directory else DEFAULT_CATALOG_DIR
    datasets: dict[str, Dataset] = {}
    if not path.is_dir():
        LOG.warning("catalog directory %s not found: no datasets known", path)
        for entry in BUILTIN_DATASETS:
            datasets.setdefault(entry["id"], _dataset_from_json(entry))
        return Catalog(datasets, base_submitters)
    for file in sorted(path.glob("*.json")):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            LOG.warning("catalog file %s unreadable: %s", file, exc)
            continue
        entries = data if isinstance(data, list) else [data]
        for entry in entries:
            if isinstance(entry, dict) and entry.get("id"):
                ds = _dataset_from_json(entry)
                datasets[ds.id] = ds
    for entry in BUILTIN_DATASETS:
        datasets.setdefault(entry["id"], _dataset_from_json(entry))
    LOG.info("catalog: %d datasets from %s", len(datasets), path)
    return Catalog(datasets, base_submitters)
