"""Values out of range are request errors (422/400), never an OverflowError or 'year out of range' 500: the
cases property-based testing of the OpenAPI found."""

from __future__ import annotations

import pytest

from tests.server.conftest import ADMIN_PASSWORD

HUGE = 2**70
CASES = [
    ("GET", f"/feed?cursor={HUGE}", None, 422),
    ("GET", "/feed?cursor=-1", None, 422),
    ("GET", f"/versions/{HUGE}", None, 422),
    ("GET", f"/versions/{HUGE}/manifest", None, 422),
    ("GET", f"/versions/{HUGE}/download", None, 422),
    ("GET", "/deadlines?year=99999", None, 422),
    ("GET", "/evaluation?year=99999", None, 422),
    ("GET", "/releases?year=99999", None, 422),
    ("GET", "/deadlines?as_of=9999-12-31", None, 400),
    ("GET", "/evaluation?as_of=0001-01-01", None, 400),
    ("GET", f"/admin/audit?after_id={HUGE}", None, 422),
    ("POST", "/admin/tokens", {"username": "admin", "ttl_seconds": HUGE}, 422),
    ("POST", "/auth/token", {"username": "admin", "password": ADMIN_PASSWORD, "ttl_seconds": HUGE}, 422),
    ("POST", "/auth/token", {"username": "admin", "password": ADMIN_PASSWORD, "ttl_seconds": 0}, 422),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), CASES)
def test_out_of_range_is_a_request_error(admin, method, path, body, status):
    r = admin.request(method, path, json=body) if body is not None else admin.request(method, path)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == "REQUEST_INVALID"


def test_in_range_still_served(admin):
    assert admin.get("/feed?cursor=0").status_code == 200
    assert admin.get("/deadlines?year=2025").status_code == 200
    assert admin.get(f"/versions/{2**31 - 1}").status_code == 404
    assert admin.get(f"/versions/{2**31}").status_code == 422
    r = admin.post("/admin/tokens", json={"username": "admin", "ttl_seconds": 3600})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_nul_byte_in_an_id_is_a_request_error(admin, method):
    """PostgreSQL cannot hold a NUL in a text: found by property-based testing as a 500."""
    r = admin.request(method, "/uploads/ab%00cd")
    assert r.status_code in (400, 404), r.status_code
    r = admin.get("/submissions/x%00y")
    assert r.status_code in (400, 404), r.text
