"""Area units used in the UI and in statistics tables (domain.md §6).

TBMJ and every stored area are square metres with 2 decimals; statistics show 亩 (2 decimals) or 公顷
(4 decimals). 1 亩 = 2000/3 m², 1 公顷 = 10 000 m².
"""

from __future__ import annotations

import math

import numpy as np

from huijiao_plugin.core.settings import AREA_UNIT_HECTARE, AREA_UNIT_M2, AREA_UNIT_MU, AREA_UNITS

M2_PER_MU = 2000.0 / 3.0
M2_PER_HA = 10000.0

# decimals shown per unit
UNIT_DECIMALS = {AREA_UNIT_MU: 2, AREA_UNIT_HECTARE: 4, AREA_UNIT_M2: 2}
# unit symbols (Chinese, as printed in statistics tables)
UNIT_SYMBOLS = {AREA_UNIT_MU: "亩", AREA_UNIT_HECTARE: "公顷", AREA_UNIT_M2: "m²"}


def round_half_up(value: float, decimals: int = 2) -> float:
    """Round half away from zero, as 三调 software does (``Round(x, 2)`` of TDDC3D), not banker's rounding.

    The scaled value is first rounded to 6 decimals so that binary noise (1.005 → 100.49999999999999 after
    scaling) does not turn a decimal tie into a round-down.
    """
    if value != value or value in (math.inf, -math.inf):
        return value
    scale = 10.0**decimals
    scaled = round(abs(value) * scale, 6)
    result = math.floor(scaled + 0.5) / scale
    return -result if value < 0 else result


def round_half_up_array(values: np.ndarray, decimals: int = 2) -> np.ndarray:
    """``round_half_up`` for a numpy array (same rule; NaN stays NaN)."""
    values = np.asarray(values, dtype=float)
    scale = 10.0**decimals
    scaled = np.round(np.abs(values) * scale, 6)
    return np.copysign(np.floor(scaled + 0.5) / scale, values)


def m2_to_mu(m2: float) -> float:
    """Square metres → 亩 (unrounded)."""
    return m2 / M2_PER_MU


def m2_to_ha(m2: float) -> float:
    """Square metres → 公顷 (unrounded)."""
    return m2 / M2_PER_HA


def mu_to_m2(mu: float) -> float:
    """亩 → square metres (unrounded)."""
    return mu * M2_PER_MU


def ha_to_m2(ha: float) -> float:
    """公顷 → square metres (unrounded)."""
    return ha * M2_PER_HA


def convert_area(m2: float, unit: str) -> float:
    """Square metres → ``unit`` (one of ``settings.AREA_UNITS``), unrounded."""
    if unit == AREA_UNIT_MU:
        return m2_to_mu(m2)
    if unit == AREA_UNIT_HECTARE:
        return m2_to_ha(m2)
    if unit == AREA_UNIT_M2:
        return float(m2)
    raise ValueError(f"unknown area unit {unit!r}; expected one of {AREA_UNITS}")


def rounded_area(m2: float, unit: str) -> float:
    """Square metres → ``unit``, rounded half-up to the unit's decimals (亩 2, 公顷 4, m² 2)."""
    return round_half_up(convert_area(m2, unit), UNIT_DECIMALS[unit])


def format_area(m2: float, unit: str, with_symbol: bool = True) -> str:
    """Text for the UI: ``format_area(1000, "mu") == "1.50 亩"``; thousands are not grouped."""
    decimals = UNIT_DECIMALS.get(unit)
    if decimals is None:
        raise ValueError(f"unknown area unit {unit!r}; expected one of {AREA_UNITS}")
    text = f"{rounded_area(m2, unit):.{decimals}f}"
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    return f"{text} {UNIT_SYMBOLS[unit]}" if with_symbol else text


# Chinese unit names as written in headers: 面积（亩）
UNIT_NAMES = {AREA_UNIT_MU: "亩", AREA_UNIT_HECTARE: "公顷", AREA_UNIT_M2: "平方米"}
# Excel number formats per unit (thousands separators, the unit's decimals)
UNIT_EXCEL_FORMATS = {AREA_UNIT_MU: "#,##0.00", AREA_UNIT_HECTARE: "#,##0.0000", AREA_UNIT_M2: "#,##0.00"}


def area_header(unit: str) -> str:
    """The header of an area column in ``unit``: ``面积（亩）``."""
    return f"面积（{UNIT_NAMES[unit]}）"


def area_text(m2: float | None, unit: str) -> str:
    """An area for tables: in ``unit``, the unit's decimals, thousands grouped (``1,234.57``); "" for None."""
    if m2 is None:
        return ""
    decimals = UNIT_DECIMALS[unit]
    text = f"{rounded_area(m2, unit):,.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text.replace(",", "")) == 0.0 else text
