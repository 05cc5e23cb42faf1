"""What an atlas page says in words about a change patch: its regions by name (code in brackets), the rule
(the preset's name, what it finds and its parameters as a sentence) and the source datasets by their
Chinese names with their versions — never ids, codes alone or raw JSON.

The store keeps codes and JSON; the words are made once per distinct value and handed to the layout as
expressions (CASE on the stored value), so that every page shows them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from qgis.core import QgsVectorLayer

from huijiao_plugin.core.catalog import DATASET_ROLES, Catalog, get_catalog
from huijiao_plugin.toolbelt.i18n import tr

#: standard fields (catalog names) of the region datasets: code, name
REGION_FIELDS = {"xzq": ("XZQDM", "XZQMC"), "cjdcq": ("ZLDWDM", "ZLDWMC")}
# a comparison role → the dataset it is read from (the newer land-use survey for both DLTB years)
ROLE_DATASETS = {role: dataset for dataset, role in reversed(DATASET_ROLES.items())} | {
    "DLTB": "dltb_biangeng",
    "DLTB_N1": "dltb_biangeng",
    "YJJBNTBHTB": "yjjbnt",
}
# "(e.g. FLS,WG)" / "（如 FLS,WG）" at the end of a parameter label: an input hint, not part of its name
_EXAMPLE = re.compile(r"\s*[（(](e\.g\.|如|例如)[^）)]*[）)]\s*$")


def region_text(name: str, code: str) -> str:
    return f"{name}（{code}）" if name and code else name or code


def region_names(layers: Iterable[QgsVectorLayer] = ()) -> dict[str, str]:
    """{code: name} from the township and village layers among ``layers`` and the project (found by their
    recognised dataset, never by layer name)."""
    from huijiao_plugin.core.one_map import dataset_layers

    names: dict[str, str] = {}
    for dataset_id, layer, fields in dataset_layers(REGION_FIELDS, layers):
        code_field, name_field = (fields.get(f, "") for f in REGION_FIELDS[dataset_id])
        if not code_field or not name_field:
            continue
        for feature in layer.getFeatures():
            code, name = str(feature[code_field] or "").strip(), str(feature[name_field] or "").strip()
            if code and name and name != "NULL":
                # a 19-digit 坐落单位代码 names its 12-digit village
                names.setdefault(code[:12] if dataset_id == "cjdcq" else code[:9], name)
    return names


def region_label(code: str, names: dict[str, str], catalog: Catalog | None = None) -> str:
    """新城区（610102）; the code alone when no name is known."""
    code = (code or "").strip()
    if not code:
        return ""
    name = names.get(code)
    if name is None and len(code) == 6:
        name = (catalog or get_catalog()).region_name(code)
    return region_text(name or "", code)


def _value_words(value: Any) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, (list, tuple)):
        return "、".join(_value_words(v) for v in value) if value else "（全部）"
    if isinstance(value, dict):
        return "；".join(f"{k}：{_value_words(v)}" for k, v in value.items())
    return "" if value is None else str(value)


def _loads(text: Any) -> Any:
    if isinstance(text, (dict, list)):
        return text
    try:
        return json.loads(str(text)) if text not in (None, "") else {}
    except ValueError:
        return str(text)


def rule_description(rule_id: str, params_json: Any) -> str:
    """What the rule finds, then its parameters: "<what it finds> 参数：<label>：<value>；…"."""
    from huijiao_plugin.core.compare.presets import PRESETS

    spec = PRESETS.get((rule_id or "").split(":")[-1])
    if spec is None:
        return ""
    params = _loads(params_json)
    parts = []
    if isinstance(params, dict):
        for param in spec.all_params:
            if param.profile_key and param.profile_key in params:
                label = _EXAMPLE.sub("", tr(param.label))
                parts.append(f"{label}：{_value_words(params[param.profile_key])}")
    text = tr(spec.help) if spec.help else ""
    if parts:
        text += ("　" if text else "") + "参数：" + "；".join(parts)
    return text


def inputs_description(inputs_json: Any, catalog: Catalog | None = None) -> str:
    """The datasets the comparison read, by Chinese name, with their version: 永久基本农田 2022；…"""
    catalog = catalog or get_catalog()
    inputs = _loads(inputs_json)
    if not isinstance(inputs, dict):
        return str(inputs or "")
    parts = []
    for role, value in sorted(inputs.items()):
        info = value if isinstance(value, dict) else {"version": value}
        dataset_id = str(info.get("dataset_id") or ROLE_DATASETS.get(role, ""))
        spec = catalog.datasets.get(dataset_id)
        name = spec.name_zh if spec is not None else str(info.get("name") or role)
        version = str(info.get("version") or info.get("year") or "").strip()
        parts.append(f"{name} {version}".strip())
    return "；".join(parts)
