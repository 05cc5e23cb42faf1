"""Property-based testing of the whole OpenAPI description (schemathesis, bounded and derandomized): no
generated request, authenticated as an admin, gets a 5xx. Routes that would end the session (revoking the
test's own token, changing accounts) are left out."""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from tests.server.conftest import ADMIN_PASSWORD, start_server
from tests.server.helpers import API, login

schemathesis.experimental.OPEN_API_3_1.enable()  # FastAPI describes its API as OpenAPI 3.1
LEFT_OUT = ("/api/v1/auth/revoke", "/api/v1/admin/tokens/revoke", "/api/v1/admin/accounts/{username}")


@pytest.fixture(scope="module")
def st_server(tmp_path_factory, catalog_dir, db_factory):
    # random logins would soon throttle the address: a high limit here (throttling has its own tests)
    extra = ["--login-max-failures-address", "100000", "--login-max-failures-account", "100000"]
    extra += ["--feed-max-wait", "1"]  # long polls end after a second
    srv = start_server(tmp_path_factory, catalog_dir, db_factory, extra)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def st_token(st_server):
    return login(st_server.url, "admin", ADMIN_PASSWORD).token


@pytest.fixture(scope="module")
def st_schema(st_server):
    spec = requests.get(st_server.url + API + "/openapi.json", timeout=10).json()
    schema = schemathesis.from_dict(spec, base_url=st_server.url)
    return schema.exclude(path=list(LEFT_OUT))


schema = schemathesis.from_pytest_fixture("st_schema")


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_server_error(case, st_server, st_token):
    response = case.call(headers={"Authorization": "Bearer " + st_token}, timeout=30)
    assert response.status_code < 500, (
        case.method,
        case.formatted_path,
        response.status_code,
        response.text[:300],
    )
