"""Region codes (GB/T 2260, 9/12-digit 统计用区划代码): normalisation and prefix containment."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"^[0-9]+$")


class RegionCodeError(ValueError):
    """A region code that is not a GB/T 2260 (2/4/6 digits) or township/village (9/12 digits) code."""


def normalise(code: object) -> str:
    """Return the shortest prefix form: 610000 -> 61, 610100 -> 6101, 610102000000 -> 610102.

    Accepted lengths: 2, 4, 6 (GB/T 2260), 9 (乡级), 12 (村级); trailing zero groups are stripped.
    """
    text = str(code).strip() if code is not None else ""
    if not text or not _DIGITS.match(text) or len(text) not in (2, 4, 6, 9, 12):
        raise RegionCodeError(text)
    if len(text) == 12 and text.endswith("000"):
        text = text[:9]
    if len(text) == 9 and text.endswith("000"):
        text = text[:6]
    if len(text) == 6 and text.endswith("00"):
        text = text[:4]
    if len(text) == 4 and text.endswith("00"):
        text = text[:2]
    if text in ("00",) or text.startswith("00"):
        raise RegionCodeError(text)
    return text


def try_normalise(code: object) -> str | None:
    try:
        return normalise(code)
    except RegionCodeError:
        return None


def contains(outer: str, inner: str) -> bool:
    """True when region ``outer`` contains (or equals) region ``inner`` (both normalised)."""
    return inner.startswith(outer)


def level(code: str) -> str:
    return {2: "province", 4: "city", 6: "county", 9: "township", 12: "village"}.get(len(code), "unknown")
