"""200 clients on loopback at once, each with an account of its own: it logs in through /auth/token (every
fifth mistypes its password once first: 40 failures from one address, as behind a department's NAT),
uploads, commits (every fourth twice: the idempotent replay), reads the feed and the versions. Every answer
is the exact expected one (no 5xx, no 429), and the database holds exactly one submission, one version and
one committed upload per package: none lost, none twice."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.server.conftest import ADMIN_PASSWORD, PASSWORD, start_server
from tests.server.helpers import API, Client, build_package, db_rows, login

CLIENTS = 200
COUNTIES = ["610102", "610103", "610104", "610111", "610112"]
TIME_LIMIT = 150  # seconds for the 200 clients (measured about 40 s on 2 shared cores)


@pytest.fixture(scope="module")
def load_server(tmp_path_factory, catalog_dir, db_factory):
    # the default login limits: 5 failures per account, 50 per address (successes never count)
    srv = start_server(tmp_path_factory, catalog_dir, db_factory, ["--max-concurrent-uploads", "40"])
    yield srv
    srv.stop()


def _client_plan(n: int) -> dict:
    dept = "zrzy" if n % 2 == 0 else "nync"
    county = COUNTIES[n % len(COUNTIES)]
    package, manifest = build_package("dltb_biangeng" if dept == "zrzy" else "gbznt", county)
    return {"username": f"load{n}", "dept": dept, "county": county, "package": package, "manifest": manifest}


def test_200_clients_no_5xx_no_lost_or_duplicated_submission(load_server):
    srv = load_server
    admin = login(srv.url, "admin", ADMIN_PASSWORD)
    plans = [_client_plan(n) for n in range(CLIENTS)]

    def create(plan: dict) -> int:
        body = {"username": plan["username"], "password": PASSWORD, "department": plan["dept"]}
        body.update(region_code=plan["county"], role="submitter")
        return Client(srv.url, admin.token).post("/admin/accounts", json=body).status_code

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(create, plans)) == [201] * CLIENTS

    def run(n: int) -> tuple[list[tuple[str, int, int]], str, str]:
        plan, calls = plans[n], []

        def expect(name: str, response: requests.Response, status: int) -> requests.Response:
            calls.append((name, response.status_code, status))
            return response

        def attempt(password: str) -> requests.Response:
            body = {"username": plan["username"], "password": password}
            return requests.post(srv.url + API + "/auth/token", json=body, timeout=120)

        if n % 5 == 0:
            expect("login (mistyped)", attempt("not-the-password"), 401)
        r = expect("login", attempt(PASSWORD), 200)
        if r.status_code != 200:
            return calls, "", ""
        client = Client(srv.url, r.json()["access_token"])
        package, sha = plan["package"], hashlib.sha256(plan["package"]).hexdigest()
        r = expect("create upload", client.create_upload(len(package)), 201)
        upload_id = r.headers["Location"].rsplit("/", 1)[1]
        expect("patch", client.patch(upload_id, 0, package), 204)
        body = {"upload_id": upload_id, "package_sha256": sha, "manifest": plan["manifest"]}
        first = expect("commit", client.post("/submissions", json=body), 201)
        if n % 4 == 0:  # the idempotent replay of a commit whose answer was "lost"
            again = expect("commit again", client.post("/submissions", json=body), 200)
            expect("same receipt again", again, again.status_code if again.json() == first.json() else -1)
        expect("feed", client.get("/feed", params={"cursor": 0, "limit": 5}), 200)
        expect("versions", client.get("/versions", params={"limit": 10}), 200)
        return calls, sha, first.json().get("receipt", {}).get("submission_id", "")

    t0 = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(run, range(CLIENTS)))
    elapsed = time.monotonic() - t0
    print(f"\n{CLIENTS} clients in {elapsed:.1f} s")
    calls = [call for result in results for call in result[0]]
    wrong = sorted({(name, got, want) for name, got, want in calls if got != want})
    assert not wrong, wrong  # (call, status answered, status expected): 5xx, 429, anything else
    assert len(calls) == CLIENTS * 6 + CLIENTS // 5 + 2 * (CLIENTS // 4)
    assert elapsed < TIME_LIMIT, elapsed
    shas = sorted(sha for _calls, sha, _id in results)
    assert len(set(shas)) == CLIENTS
    assert len({sub_id for _calls, _sha, sub_id in results}) == CLIENTS
    # the database: one submission, one version, one committed upload per package; one login token each
    submitted = db_rows(srv, "SELECT package_sha256, count(*) FROM submissions GROUP BY package_sha256")
    assert sorted(sha for sha, _n in submitted) == shas and {n for _sha, n in submitted} == {1}
    versions = db_rows(srv, "SELECT package_sha256 FROM versions")
    assert sorted(sha for (sha,) in versions) == shas
    uploads = db_rows(srv, "SELECT state, count(*) FROM uploads GROUP BY state")
    assert uploads == [("committed", CLIENTS)]
    tokens = db_rows(
        srv,
        "SELECT count(*) FROM tokens JOIN accounts ON accounts.id = tokens.account_id "
        "WHERE accounts.username LIKE 'load%' AND tokens.note = 'login'",
    )
    assert tokens == [(CLIENTS,)]
