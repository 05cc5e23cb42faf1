"""Authorisation policy: who may do what, by role, department and region. Pure functions, documented in the
protocol (section "Authorisation"). Raises ApiError with a Chinese message on refusal."""

from __future__ import annotations

from exchange_server.catalog import Catalog
from exchange_server.errors import ApiError
from exchange_server.regions import contains

ROLES = ("submitter", "reader", "reviewer", "admin")
DEPARTMENTS = ("zrzy", "nync")


def require_role(account: dict, *roles: str) -> None:
    if account["role"] == "admin":
        return
    if account["role"] not in roles:
        raise ApiError("FORBIDDEN_ROLE", account["role"])


def require_region(account: dict, region: str) -> None:
    if account["role"] == "admin":
        return
    if not contains(account["region_code"], region):
        raise ApiError("FORBIDDEN_REGION", region)


def check_submit(account: dict, catalog: Catalog, dataset_id: str, region: str, department: str) -> None:
    """A submitter submits datasets its department may submit, for regions inside its own."""
    require_role(account, "submitter")
    if catalog.get(dataset_id) is None:
        raise ApiError("DATASET_UNKNOWN", dataset_id)
    if account["role"] == "admin":
        return
    if department != account["department"] or account["department"] not in catalog.submit_departments(
        dataset_id
    ):
        raise ApiError("FORBIDDEN_DEPARTMENT", dataset_id)
    require_region(account, region)


def can_read_version(
    account: dict, catalog: Catalog, dataset_id: str, version_department: str, region: str
) -> bool:
    """Readers: every shared dataset (both departments) in their region and below; non-shared only their own.
    Submitters and reviewers: their own department's versions in their region and below. Admin: everything."""
    role = account["role"]
    if role == "admin":
        return True
    if not contains(account["region_code"], region):
        return False
    own = version_department == account["department"]
    if role == "reader":
        ds = catalog.get(dataset_id)
        return own or ds is None or ds.shared
    if role in ("submitter", "reviewer"):
        return own
    return False


def check_read_version(
    account: dict, catalog: Catalog, dataset_id: str, version_department: str, region: str
) -> None:
    if account["role"] != "admin" and not contains(account["region_code"], region):
        raise ApiError("FORBIDDEN_REGION", region)
    if not can_read_version(account, catalog, dataset_id, version_department, region):
        raise ApiError("FORBIDDEN_DATASET", dataset_id)


def can_read_submission(account: dict, submission: dict) -> bool:
    """Reviewers: their department's submissions in their region and below; submitters: their own."""
    role = account["role"]
    if role == "admin":
        return True
    if role == "reviewer":
        return submission["department"] == account["department"] and contains(
            account["region_code"], submission["region_code"]
        )
    if role == "submitter":
        return submission["account_id"] == account["id"]
    return False
