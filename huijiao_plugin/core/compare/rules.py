"""The configurable rule profile of the 耕地比对 presets (domain.md §10, confidence L).

The defaults ship in ``huijiao_plugin/data/rules_default.json``. A provincial profile (a JSON file with any
subset of
the same keys, path in ``HuijiaoSettings.rules_profile_path``) overrides them key by key; a Processing run can
override single keys again (``RuleProfile.with_overrides``).
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)

DEFAULT_PROFILE_PATH = Path(__file__).resolve().parents[2] / "data" / "rules_default.json"


class RuleProfileError(ValueError):
    """A rules profile file that cannot be read or has values of the wrong type."""


def _load_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise RuleProfileError(f"规则配置文件无法读取: {path} ({exc})") from exc
    if not isinstance(data, dict):
        raise RuleProfileError(f"规则配置文件必须是 JSON 对象: {path}")
    return data


def parse_code_list(text: str) -> list[str]:
    """``"FLS, WG；LYFL"`` -> ``["FLS", "WG", "LYFL"]`` (comma, Chinese comma, semicolon or blank
    separated)."""
    for sep in ("，", "；", ";", " ", "\t", "、"):
        text = text.replace(sep, ",")
    return [part.strip() for part in text.split(",") if part.strip()]


class RuleProfile:
    """A merged rule profile: ``profile.get("nongrain_codes")`` or attribute-style helpers below."""

    def __init__(self, values: dict[str, Any], sources: list[str] | None = None) -> None:
        self.values = values
        self.sources = sources or []
        self._farmland: set[str] | None = None  # cached code set (a profile is never changed in place)
        self._construction: dict[Any, bool] = {}

    # --- loading --------------------------------------------------------------------------------
    @classmethod
    def default(cls) -> RuleProfile:
        return cls(_load_json(DEFAULT_PROFILE_PATH), [str(DEFAULT_PROFILE_PATH)])

    @classmethod
    def load(cls, override_path: str = "") -> RuleProfile:
        """Defaults merged with the JSON at ``override_path`` (if given)."""
        profile = cls.default()
        if override_path:
            path = Path(override_path)
            profile = profile.with_overrides(_load_json(path))
            profile.sources.append(str(path))
        return profile

    @classmethod
    def from_settings(cls) -> RuleProfile:
        from huijiao_plugin.core.settings import HuijiaoSettings

        return cls.load(HuijiaoSettings.load().rules_profile_path)

    def with_overrides(self, overrides: dict[str, Any]) -> RuleProfile:
        """A copy with the keys of ``overrides`` replaced (type-checked against the defaults)."""
        values = copy.deepcopy(self.values)
        for key, value in overrides.items():
            if value is None:
                continue
            if key in values and values[key] is not None:
                expected = values[key]
                if isinstance(expected, list) and isinstance(value, str):
                    value = parse_code_list(value)
                    if expected and all(isinstance(v, (int, float)) for v in expected):
                        try:
                            value = [float(v) for v in value]
                        except ValueError as exc:
                            raise RuleProfileError(f"规则参数 {key} 应为数值列表，实际为 {value!r}") from exc
                elif isinstance(expected, bool) and not isinstance(value, bool):
                    raise RuleProfileError(f"规则参数 {key} 应为 true/false，实际为 {value!r}")
                elif isinstance(expected, (int, float)) and not isinstance(expected, bool):
                    try:
                        value = float(value)
                    except (TypeError, ValueError) as exc:
                        raise RuleProfileError(f"规则参数 {key} 应为数值，实际为 {value!r}") from exc
                elif isinstance(expected, dict) and isinstance(value, dict):
                    merged = dict(expected)
                    merged.update(value)
                    value = merged
            values[key] = value
        return RuleProfile(values, list(self.sources))

    # --- access ---------------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        return self.values[key]

    def subset(self, keys: list[str]) -> dict[str, Any]:
        """The parameters a rule used (stored with every output feature as JSON)."""
        return {key: self.values[key] for key in keys if key in self.values}

    def field_candidates(self, role: str) -> list[str]:
        return list(self.values.get("field_aliases", {}).get(role, [role]))

    def farmland_codes(self) -> set[str]:
        if self._farmland is None:
            codes = set(self.values["farmland_codes"])
            if self.values.get("farmland_include_adjustable"):
                codes.update(self.values.get("adjustable_codes", []))
            self._farmland = codes
        return self._farmland

    def is_farmland(self, dlbm: Any) -> bool:
        return _text(dlbm) in self.farmland_codes()

    def nongrain_codes(self) -> set[str]:
        codes = set(self.values["nongrain_codes"])
        if self.values.get("nongrain_include_lyfl"):
            codes.add("LYFL")
        if self.values.get("nongrain_include_lljz"):
            codes.add("LLJZ")
        return codes

    def is_occupied(self, dlbm: Any) -> bool:
        """PBF on land that is no longer farmland (园/林/坑塘 occupation) — any non-farmland class by
        default."""
        if not self.values.get("nongrain_occupation", True):
            return False
        code = _text(dlbm)
        if not code or self.is_farmland(code):
            return False
        prefixes = self.values.get("nongrain_occupation_prefixes") or []
        return not prefixes or any(code.startswith(p) for p in prefixes)

    def is_construction(self, dlbm: Any) -> bool:
        try:
            return self._construction[dlbm]  # few distinct codes: each is decided once
        except (KeyError, TypeError):
            pass
        result = self._is_construction(dlbm)
        try:
            self._construction[dlbm] = result
        except TypeError:  # unhashable value
            pass
        return result

    def _is_construction(self, dlbm: Any) -> bool:
        code = _text(dlbm)
        if not code:
            return False
        if code.startswith("1006"):
            return bool(self.values.get("construction_include_1006"))
        if code.startswith("1202"):
            return bool(self.values.get("construction_include_1202"))
        return any(code.startswith(p) for p in self.values["construction_prefixes"])

    def is_monitoring_construction(self, tblx: Any) -> bool:
        return _text(tblx) in set(self.values["monitoring_construction_tblx"])

    def is_fragile(self, tbxhdm: Any, gdpdjb: Any, gdlx: Any) -> bool:
        if _text(tbxhdm) in set(self.values["fragile_tbxhdm"]):
            return True
        return _text(gdpdjb) == str(self.values["steep_slope_grade"]) and _text(gdlx) == str(
            self.values["steep_slope_gdlx"]
        )

    def is_strict_soil(self, value: Any) -> bool:
        return _text(value) in {str(v) for v in self.values["soil_strict_values"]}

    def is_enclave_flag(self, frdbs: Any) -> bool:
        return _text(frdbs) in {str(v) for v in self.values["enclave_frdbs_values"]}


def _text(value: Any) -> str:
    """Attribute value as stripped text; NULL/None -> ''; 1.0 -> '1'."""
    if type(value) is str:  # the common case first (hot path of every rule)
        text = value.strip()
        return "" if text == "NULL" else text
    if value is None:
        return ""
    try:
        from qgis.PyQt.QtCore import QVariant

        if isinstance(value, QVariant) and value.isNull():
            return ""
    except ImportError:  # pragma: no cover - PyQt always present with QGIS
        pass
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return "" if text == "NULL" else text
