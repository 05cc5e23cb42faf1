"""Helpers shared by the services: times, public views, region checks."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from exchange_server import db
from exchange_server.errors import ApiError
from exchange_server.regions import RegionCodeError, normalise

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from exchange_server.catalog import Catalog
    from exchange_server.config import ServerConfig
    from exchange_server.security import ReceiptSigner
    from exchange_server.services.guard import AuditBudget, LoginThrottle

RECEIPT_VERSION = 1
CHINA_TZ = dt.timezone(dt.timedelta(hours=8))


def iso(value: dt.datetime | None) -> str | None:
    value = db.as_utc(value)
    return value.astimezone(dt.timezone.utc).isoformat(timespec="seconds") if value else None


def account_public(row: dict) -> dict:
    return {
        "id": row["id"],
        "username": row["username"],
        "department": row["department"],
        "region_code": row["region_code"],
        "role": row["role"],
        "display_name": row["display_name"],
        "unit": row["unit"],
        "disabled": bool(row["disabled"]),
    }


class ServiceBase:
    """What every service part shares (filled in by ``Exchange``)."""

    config: ServerConfig
    engine: Engine
    catalog: Catalog
    signer: ReceiptSigner
    login_guard: tuple[LoginThrottle, LoginThrottle]  # per account name, per client address
    audit_budget: AuditBudget


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _norm(region: str) -> str:
    try:
        return normalise(region)
    except RegionCodeError:
        raise ApiError("REGION_INVALID", str(region))
