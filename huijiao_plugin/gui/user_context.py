"""The user context every panel shows: department, region (with its name), unit and exchange server.

Region names come from the catalog's code table ``regions_shaanxi`` (GB/T 2260 codes,
``huijiao_plugin/data/codes/regions_shaanxi.json`` plus the user's override file); unknown codes are shown as
typed, never rejected.
"""

from __future__ import annotations

import logging

from huijiao_plugin.core.catalog import catalog_from_settings
from huijiao_plugin.core.settings import (
    AREA_UNIT_HECTARE,
    AREA_UNIT_M2,
    AREA_UNIT_MU,
    DEPARTMENT_AGRICULTURE,
    DEPARTMENT_NATURAL_RESOURCES,
    HuijiaoSettings,
)
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

REGIONS_TABLE = "regions_shaanxi"


def load_region_names() -> dict[str, str]:
    """``{6-digit code: name}`` from the catalog's region code table; a missing table gives ``{}``."""
    table = catalog_from_settings().code_table(REGIONS_TABLE)
    if table is None:
        log.warning("The catalog has no code table %s: region names are not shown", REGIONS_TABLE)
        return {}
    return dict(table.codes)


def region_name(code: str, names: dict[str, str] | None = None) -> str | None:
    """The name of a 2-, 4- or 6-digit GB/T 2260 code (``61`` → 陕西省, ``6101`` → 西安市), else None."""
    code = (code or "").strip()
    if not code.isdigit() or len(code) not in (2, 4, 6):
        return None
    table = load_region_names() if names is None else names
    return table.get(code.ljust(6, "0"))


def department_label(department: str) -> str:
    labels = {
        DEPARTMENT_NATURAL_RESOURCES: tr("Natural resources"),
        DEPARTMENT_AGRICULTURE: tr("Agriculture and rural affairs"),
    }
    return labels.get(department, department)


def area_unit_label(unit: str) -> str:
    labels = {
        AREA_UNIT_MU: tr("Mu"),
        AREA_UNIT_HECTARE: tr("Hectare"),
        AREA_UNIT_M2: tr("Square metre (m²)"),
    }
    return labels.get(unit, unit)


def region_label(code: str) -> str:
    """The user's region in the context lines: 陕西省（610000）; a code without a name is flagged."""
    if not (code or "").strip():
        return tr("Unknown region")
    return (
        region_display(code)
        if region_name(code)
        else tr("{name} ({code})").format(name=tr("Unknown region"), code=code)
    )


def region_display(code: str) -> str:
    """A region as people read it: its name with the code in brackets, 新城区（610102）."""
    name = region_name(code)
    return tr("{name} ({code})").format(name=name, code=code) if name else code


def context_lines(settings: HuijiaoSettings, fields: tuple[str, ...]) -> list[str]:
    """Human-readable lines for the chosen ``fields`` (department, region, unit, server, area_unit)."""
    not_set = tr("not set")
    builders = {
        "department": lambda: tr("Department: {department}").format(
            department=department_label(settings.department)
        ),
        "region": lambda: tr("Region: {region}").format(region=region_label(settings.region_code)),
        "unit": lambda: tr("Unit: {unit}").format(unit=settings.unit_name or not_set),
        "server": lambda: tr("Exchange server: {url}").format(url=settings.server_url or not_set),
        "area_unit": lambda: tr("Area unit: {unit}").format(unit=area_unit_label(settings.area_unit)),
    }
    return [builders[field]() for field in fields if field in builders]
