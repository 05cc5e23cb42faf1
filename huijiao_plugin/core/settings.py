"""Typed access to the plugin's QgsSettings (keys ``huijiao/<area>/<name>``).

Only non-secret values live here. Credentials for the exchange server are kept in the QGIS
authentication manager; settings store only the ``authcfg`` id that points to them.
"""

from __future__ import annotations

from dataclasses import dataclass

from qgis.core import QgsSettings

DEPARTMENT_NATURAL_RESOURCES = "zrzy"  # 自然资源
DEPARTMENT_AGRICULTURE = "nync"  # 农业农村
DEPARTMENTS = (DEPARTMENT_NATURAL_RESOURCES, DEPARTMENT_AGRICULTURE)

AREA_UNIT_MU = "mu"  # 亩
AREA_UNIT_HECTARE = "ha"  # 公顷
AREA_UNIT_M2 = "m2"  # 平方米
AREA_UNITS = (AREA_UNIT_MU, AREA_UNIT_HECTARE, AREA_UNIT_M2)

PREFIX = "huijiao"


@dataclass
class HuijiaoSettings:
    """A snapshot of the user's settings; ``load()`` reads, ``save()`` writes."""

    department: str = DEPARTMENT_NATURAL_RESOURCES
    region_code: str = "610000"
    unit_name: str = ""
    server_url: str = "http://127.0.0.1:8765"
    authcfg: str = ""
    area_unit: str = AREA_UNIT_MU
    catalog_override_path: str = ""
    rules_profile_path: str = ""
    #: a PEM file of extra CAs for the server certificate (besides the QGIS authentication manager's)
    ca_file: str = ""
    #: the fingerprint ("SHA256:<hex>") of the server's receipt-signing key, checked on every connection
    server_key_fingerprint: str = ""
    #: plain HTTP to a test server: only then is the receipt key trusted on first use without TLS
    allow_unencrypted: bool = False

    @classmethod
    def load(cls, settings: QgsSettings | None = None) -> HuijiaoSettings:
        s = settings or QgsSettings()
        d = cls()
        department = s.value(f"{PREFIX}/user/department", d.department, type=str)
        area_unit = s.value(f"{PREFIX}/display/area_unit", d.area_unit, type=str)
        return cls(
            department=department if department in DEPARTMENTS else d.department,
            region_code=s.value(f"{PREFIX}/user/region_code", d.region_code, type=str),
            unit_name=s.value(f"{PREFIX}/user/unit_name", d.unit_name, type=str),
            server_url=s.value(f"{PREFIX}/server/url", d.server_url, type=str),
            authcfg=s.value(f"{PREFIX}/server/authcfg", d.authcfg, type=str),
            area_unit=area_unit if area_unit in AREA_UNITS else d.area_unit,
            catalog_override_path=s.value(
                f"{PREFIX}/catalog/override_path", d.catalog_override_path, type=str
            ),
            rules_profile_path=s.value(f"{PREFIX}/rules/profile_path", d.rules_profile_path, type=str),
            ca_file=s.value(f"{PREFIX}/server/ca_file", d.ca_file, type=str),
            server_key_fingerprint=s.value(
                f"{PREFIX}/server/key_fingerprint", d.server_key_fingerprint, type=str
            ),
            allow_unencrypted=s.value(f"{PREFIX}/server/allow_unencrypted", d.allow_unencrypted, type=bool),
        )

    def save(self, settings: QgsSettings | None = None) -> None:
        s = settings or QgsSettings()
        s.setValue(f"{PREFIX}/user/department", self.department)
        s.setValue(f"{PREFIX}/user/region_code", self.region_code)
        s.setValue(f"{PREFIX}/user/unit_name", self.unit_name)
        s.setValue(f"{PREFIX}/server/url", self.server_url)
        s.setValue(f"{PREFIX}/server/authcfg", self.authcfg)
        s.setValue(f"{PREFIX}/display/area_unit", self.area_unit)
        s.setValue(f"{PREFIX}/catalog/override_path", self.catalog_override_path)
        s.setValue(f"{PREFIX}/rules/profile_path", self.rules_profile_path)
        s.setValue(f"{PREFIX}/server/ca_file", self.ca_file)
        s.setValue(f"{PREFIX}/server/key_fingerprint", self.server_key_fingerprint)
        s.setValue(f"{PREFIX}/server/allow_unencrypted", self.allow_unencrypted)


def is_valid_region_code(code: str) -> bool:
    """A GB/T 2260 region code as used for accounts: 2 (province), 4 (city) or 6 (county) digits."""
    return code.isdigit() and len(code) in (2, 4, 6)
