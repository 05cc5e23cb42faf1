"""The shared-data catalog (共享清单): datasets and code tables shipped as JSON data files.

The catalog lives in ``huijiao_plugin/data/catalog/<dataset_id>.json`` (one file per dataset) and the
code tables in ``huijiao_plugin/data/codes/<table>.json``. A province or county adds or overrides datasets,
fields and codes with its own JSON file (``HuijiaoSettings.catalog_override_path``)::

    {"datasets": [{"id": "jctb", "fields": [{"name": "JCBH", "aliases": ["监测图斑编号"]}]},
                  {"id": "my_layer", "name_zh": "...", ...}],
     "codes": {"trhjzl": {"A": "优先保护类"}, "tblx": {"QT": null}}}

Datasets are merged by ``id`` (fields by ``name``; a dataset may list ``"remove_fields"``), new datasets
are added, and codes are merged per table (``null`` removes a code). Plain Python + json: no QGIS needed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
CATALOG_DIR = DATA_DIR / "catalog"
CODES_DIR = DATA_DIR / "codes"

DEPARTMENT_ORDER = ("zrzy", "nync", "base")
DEPARTMENT_GROUPS = {"zrzy": "自然资源", "nync": "农业农村", "base": "基础"}
FIELD_TYPES = ("string", "integer", "double", "date")
GEOMETRIES = ("polygon", "point", "line")
REQUIRED_DATASET_KEYS = ("id", "name_zh", "department", "geometry", "fields")

# the comparison role a catalog dataset plays (the 耕地比对 presets read layers by role)
DATASET_ROLES = {
    "dltb_sandiao": "DLTB",
    "dltb_biangeng": "DLTB",
    "yjjbnt": "PBF",
    "gbznt": "HSF",
    "stbhhx": "STBHHX",
    "yzghq": "YZGHQ",
    "trhjzl": "TRHJZL",
    "jctb": "JCTB",
    "xzq": "XZQ",
    "cjdcq": "CJDCQ",
}


class CatalogError(Exception):
    """A catalog or override file cannot be used; ``str(error)`` is a Chinese message for the user."""


def normalize_name(name: str) -> str:
    """Field/layer names compare case-insensitively and ignore surrounding blanks."""
    return str(name).strip().upper()


@dataclass
class FieldSpec:
    name: str
    type: str = "string"
    length: int | None = None
    required: bool = False
    domain: str | None = None
    aliases: list[str] = field(default_factory=list)
    confidence: str = "M"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FieldSpec:
        return cls(
            name=str(d["name"]),
            type=str(d.get("type", "string")),
            length=d.get("length"),
            required=bool(d.get("required", False)),
            domain=d.get("domain") or None,
            aliases=[str(a) for a in d.get("aliases", [])],
            confidence=str(d.get("confidence", "M")),
        )

    def candidate_names(self) -> list[str]:
        """The standard name first, then every alias, normalised."""
        names = [normalize_name(self.name)]
        names += [normalize_name(a) for a in self.aliases if normalize_name(a) not in names]
        return names


@dataclass
class DatasetSpec:
    id: str
    name_zh: str
    name_en: str
    department: str
    geometry: str
    layer_names: list[str]
    name_hints: list[str]
    fields: list[FieldSpec]
    key_fields: list[str]
    area_semantics: dict[str, Any]
    frequency: str
    style: str
    group: str
    draw_order: int
    shared: bool
    deadline_days_after_release: int | None = None
    year_rule: dict[str, Any] | None = None
    confidence: str = "M"
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetSpec:
        missing = [k for k in REQUIRED_DATASET_KEYS if k not in d]
        if missing:
            raise CatalogError("数据集 {} 缺少必填项: {}".format(d.get("id", "?"), ", ".join(missing)))
        if d["geometry"] not in GEOMETRIES:
            raise CatalogError(
                "数据集 {} 的几何类型 {} 无效(应为 polygon/point/line)".format(d["id"], d["geometry"])
            )
        department = d["department"]
        return cls(
            id=str(d["id"]),
            name_zh=str(d["name_zh"]),
            name_en=str(d.get("name_en", d["id"])),
            department=department,
            geometry=d["geometry"],
            layer_names=[str(n) for n in d.get("layer_names", [])],
            name_hints=[str(n) for n in d.get("name_hints", [])],
            fields=[FieldSpec.from_dict(f) for f in d["fields"]],
            key_fields=[str(n) for n in d.get("key_fields", [])],
            area_semantics=dict(d.get("area_semantics", {})),
            frequency=str(d.get("frequency", "once")),
            style=str(d.get("style", "")),
            group=str(d.get("group", DEPARTMENT_GROUPS.get(department, "基础"))),
            draw_order=int(d.get("draw_order", 100)),
            shared=bool(d.get("shared", True)),
            deadline_days_after_release=d.get("deadline_days_after_release"),
            year_rule=d.get("year_rule"),
            confidence=str(d.get("confidence", "M")),
            raw=d,
        )

    def field_spec(self, name: str) -> FieldSpec | None:
        key = normalize_name(name)
        for f in self.fields:
            if normalize_name(f.name) == key:
                return f
        return None

    @property
    def geometry_area_field(self) -> str | None:
        return self.area_semantics.get("geometry_area_field")


@dataclass
class CodeTable:
    id: str
    name_zh: str
    codes: dict[str, str]
    confidence: str = "M"
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CodeTable:
        if "id" not in d or not isinstance(d.get("codes"), dict):
            raise CatalogError("代码表 {} 格式无效: 需要 id 和 codes".format(d.get("id", "?")))
        return cls(
            id=str(d["id"]),
            name_zh=str(d.get("name_zh", d["id"])),
            codes={str(k): str(v) for k, v in d["codes"].items()},
            confidence=str(d.get("confidence", "M")),
            raw=d,
        )

    @property
    def values_may_be_names(self) -> bool:
        return bool(self.raw.get("values_may_be_names", False))

    def canonical(self, value: Any) -> str | None:
        """The code for ``value`` (code, alias/legacy code, or a name when allowed); None if unknown."""
        if value is None:
            return None
        text = str(value).strip()
        if isinstance(value, float) and value.is_integer():
            text = str(int(value))
        if text in self.codes:
            return text
        for key in ("aliases", "legacy"):
            mapped = self.raw.get(key, {}).get(text)
            if mapped in self.codes:
                return mapped
        upper = text.upper()
        for code in self.codes:
            if code.upper() == upper:
                return code
        if self.values_may_be_names:
            for code, name in self.codes.items():
                if name == text:
                    return code
        return None

    def is_empty(self, value: Any) -> bool:
        """True for values that mean 'not applicable' in this table (e.g. GDDB 0 on non-耕地)."""
        text = str(value).strip()
        if isinstance(value, float) and value.is_integer():
            text = str(int(value))
        return text in {str(v) for v in self.raw.get("empty_values", [])}

    def is_valid(self, value: Any) -> bool:
        return self.canonical(value) is not None

    def name(self, value: Any) -> str | None:
        code = self.canonical(value)
        return None if code is None else self.codes[code]


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return json.load(fh)
    except OSError as exc:
        raise CatalogError(f"无法读取文件 {path}: {exc}") from exc
    except ValueError as exc:
        raise CatalogError(f"文件 {path} 不是有效的 JSON: {exc}") from exc


def _merge_dataset(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        if key == "fields":
            fields = [dict(f) for f in merged.get("fields", [])]
            index = {normalize_name(f["name"]): i for i, f in enumerate(fields)}
            for f in value:
                if "name" not in f:
                    raise CatalogError("数据集 {} 的字段覆盖缺少 name".format(base.get("id")))
                i = index.get(normalize_name(f["name"]))
                if i is None:
                    new = {"type": "string", "required": False, "aliases": [], "confidence": "L"}
                    new.update(f)
                    index[normalize_name(f["name"])] = len(fields)
                    fields.append(new)
                else:
                    fields[i] = {**fields[i], **f}
            merged["fields"] = fields
        elif key == "remove_fields":
            drop = {normalize_name(n) for n in value}
            merged["fields"] = [f for f in merged.get("fields", []) if normalize_name(f["name"]) not in drop]
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


class Catalog:
    """All datasets and code tables, with the override file (if any) applied."""

    def __init__(
        self, datasets: dict[str, DatasetSpec], codes: dict[str, CodeTable], override_path: str = ""
    ) -> None:
        self.datasets = datasets
        self.codes = codes
        self.override_path = override_path

    # ---- loading ----------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        override_path: str | os.PathLike | None = None,
        catalog_dir: str | os.PathLike | None = None,
        codes_dir: str | os.PathLike | None = None,
    ) -> Catalog:
        """Read the shipped catalog and apply ``override_path`` (raises CatalogError on a bad file)."""
        raw_datasets: dict[str, dict[str, Any]] = {}
        for path in sorted(Path(catalog_dir or CATALOG_DIR).glob("*.json")):
            d = _read_json(path)
            raw_datasets[d["id"]] = d
        raw_codes: dict[str, dict[str, Any]] = {}
        for path in sorted(Path(codes_dir or CODES_DIR).glob("*.json")):
            d = _read_json(path)
            raw_codes[d["id"]] = d
        if override_path:
            override = _read_json(Path(override_path))
            if not isinstance(override, dict):
                raise CatalogError(f"覆盖文件 {override_path} 应为 JSON 对象(含 datasets 和/或 codes)")
            for patch in override.get("datasets", []):
                if "id" not in patch:
                    raise CatalogError(f"覆盖文件 {override_path} 中有数据集缺少 id")
                base = raw_datasets.get(patch["id"])
                raw_datasets[patch["id"]] = _merge_dataset(base, patch) if base else dict(patch)
            for table_id, entries in override.get("codes", {}).items():
                if not isinstance(entries, dict):
                    raise CatalogError(f"覆盖文件 {override_path} 中代码表 {table_id} 应为 {{代码: 名称}}")
                table = raw_codes.setdefault(
                    table_id, {"id": table_id, "name_zh": table_id, "codes": {}, "confidence": "L"}
                )
                codes = dict(table["codes"])
                for code, name in entries.items():
                    if name is None:
                        codes.pop(str(code), None)
                    else:
                        codes[str(code)] = str(name)
                raw_codes[table_id] = {**table, "codes": codes}
        datasets = {i: DatasetSpec.from_dict(d) for i, d in raw_datasets.items()}
        codes = {i: CodeTable.from_dict(d) for i, d in raw_codes.items()}
        for ds in datasets.values():
            for f in ds.fields:
                if f.domain and f.domain not in codes:
                    log.warning(
                        "dataset %s field %s refers to unknown code table %s", ds.id, f.name, f.domain
                    )
        return cls(datasets, codes, str(override_path or ""))

    # ---- lookups ----------------------------------------------------------------------------------------
    def dataset(self, dataset_id: str) -> DatasetSpec:
        try:
            return self.datasets[dataset_id]
        except KeyError:
            raise CatalogError(f"共享清单中没有数据集 {dataset_id}") from None

    def code_table(self, table_id: str) -> CodeTable | None:
        return self.codes.get(table_id)

    def dataset_ids(self) -> list[str]:
        """Ids in department then draw order (the order of the panel tree)."""
        return [d.id for d in self.ordered()]

    def ordered(self) -> list[DatasetSpec]:
        def key(d: DatasetSpec) -> tuple[int, int, str]:
            dep = DEPARTMENT_ORDER.index(d.department) if d.department in DEPARTMENT_ORDER else 99
            return dep, d.draw_order, d.id

        return sorted(self.datasets.values(), key=key)

    def by_department(self) -> dict[str, list[DatasetSpec]]:
        out: dict[str, list[DatasetSpec]] = {}
        for d in self.ordered():
            out.setdefault(d.department, []).append(d)
        return out

    def dlmc_for(self, dlbm: Any) -> str | None:
        table = self.codes.get("dlbm")
        return table.name(dlbm) if table else None

    def region_name(self, code: str) -> str | None:
        table = self.codes.get("regions_shaanxi")
        return table.codes.get(str(code)) if table else None


_CACHE: dict[tuple[str, float], Catalog] = {}


def get_catalog(override_path: str | None = None) -> Catalog:
    """A cached catalog for ``override_path`` (reloaded when the override file changes)."""
    path = override_path or ""
    try:
        mtime = os.path.getmtime(path) if path else 0.0
    except OSError:
        mtime = -1.0
    key = (path, mtime)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = Catalog.load(path or None)
    return _CACHE[key]


def catalog_from_settings() -> Catalog:
    """The catalog with the user's override file (HuijiaoSettings.catalog_override_path) applied.

    A broken override file is logged and the shipped catalog is used, so the panel keeps working.
    """
    from huijiao_plugin.core.settings import HuijiaoSettings

    path = HuijiaoSettings.load().catalog_override_path
    try:
        return get_catalog(path or None)
    except CatalogError as exc:
        log.error("catalog override ignored: %s", exc)
        return get_catalog(None)
