"""DLTB area fields (domain.md §1.3): TBMJ, KCXS (田坎系数), KCMJ, TBDLMJ.

* TBMJ = ellipsoidal area, m², 2 decimals (core.ellipsoidal_area);
* KCMJ = round(TBMJ × KCXS, 2), TBDLMJ = round(TBMJ − KCMJ, 2) (half-up, as 三调 software does);
* KCXS comes from the feature, else from a 田坎系数 table keyed by GDPDJB (1…5) and GDLX (TT/PD).

The table shipped in ``data/tkxs_default.json`` holds default values, overridable: ``load_tkxs_table(path)``
reads a JSON file of the same shape whose ``values`` replace the defaults key by key.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from huijiao_plugin.core.units import round_half_up
from huijiao_plugin.toolbelt.resources import data_path

LOG = logging.getLogger(__name__)

DEFAULT_TKXS_FILE = "tkxs_default.json"
FLAT_LEVEL = "1"  # GDPDJB 1: ≤ 2°, no 田坎 deduction


def fill_deductions(tbmj: float, kcxs: float) -> tuple[float, float]:
    """(KCMJ, TBDLMJ) for a 图斑 area ``tbmj`` (m²) and 田坎系数 ``kcxs`` (0 ≤ kcxs < 1)."""
    if not 0.0 <= kcxs < 1.0:
        raise ValueError(f"KCXS must be in [0, 1), got {kcxs}")
    kcmj = round_half_up(tbmj * kcxs, 2)
    tbdlmj = round_half_up(tbmj - kcmj, 2)
    return kcmj, tbdlmj


def tkxs_key(gdpdjb: object, gdlx: object) -> str:
    """Table key of a (GDPDJB, GDLX) pair: ``"1"`` for level 1, else level + ``TT``/``PD`` (``"3PD"``)."""
    level = _text(gdpdjb)
    if level == FLAT_LEVEL:
        return FLAT_LEVEL
    return level + _text(gdlx).upper()


def _text(value: object) -> str:
    if value is None:
        return ""
    text = str(value).strip()
    # QVariant NULL and numbers read from numeric fields (3.0 → "3")
    if text in ("NULL", "None"):
        return ""
    if text.endswith(".0") and text[:-2].isdigit():
        return text[:-2]
    return text


@dataclass
class TkxsTable:
    """田坎系数 per table key (see ``tkxs_key``)."""

    values: dict[str, float] = field(default_factory=dict)
    source: str = ""

    def lookup(self, gdpdjb: object, gdlx: object) -> float | None:
        """KCXS of a (GDPDJB, GDLX) pair, None when the pair is not in the table."""
        return self.values.get(tkxs_key(gdpdjb, gdlx))


def _read_values(path: Path) -> dict[str, float]:
    data = json.loads(path.read_text(encoding="utf-8"))
    values = data.get("values", data) if isinstance(data, dict) else None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a JSON object with a 'values' object")
    result: dict[str, float] = {}
    for key, value in values.items():
        coefficient = float(value)
        if not 0.0 <= coefficient < 1.0:
            raise ValueError(f"{path}: KCXS for {key!r} must be in [0, 1), got {coefficient}")
        result[str(key).strip().upper()] = coefficient
    return result


def load_tkxs_table(override_path: str | None = None) -> TkxsTable:
    """The default 田坎系数 table, with the values of ``override_path`` (if given) replacing defaults."""
    default = data_path(DEFAULT_TKXS_FILE)
    values = _read_values(default)
    source = str(default)
    if override_path:
        values.update(_read_values(Path(override_path)))
        source = override_path
        LOG.info("田坎系数 table overridden from %s", override_path)
    return TkxsTable(values, source)
