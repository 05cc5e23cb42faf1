"""The authorisation matrix over real HTTP: department × region relation × role × action, every cell."""

from __future__ import annotations

import hashlib

import pytest

from tests.server.helpers import Client, build_package

TARGET = "610102"
RELATIONS = {"same": "610102", "ancestor": "6101", "sibling": "610103", "descendant": "610102001"}
ROLES = ("submitter", "reader", "reviewer", "admin")
DEPTS = ("zrzy", "nync")
SUBMIT_DEPTS = {"dltb_biangeng": {"zrzy"}, "gbznt": {"nync"}, "bghtb": {"zrzy", "nync"}, "xzq": {"zrzy"}}
OWN = {"zrzy": "dltb_biangeng", "nync": "gbznt"}
OTHER = {"zrzy": "gbznt", "nync": "dltb_biangeng"}
# version fixtures at TARGET: (department, shared)
VERSIONS = {"read_zrzy": ("zrzy", True), "read_nync": ("nync", True), "read_unshared": ("nync", False)}
ACTIONS = (
    "submit_own",
    "submit_other",
    "submit_bghtb",
    "submit_base",
    "read_zrzy",
    "read_nync",
    "read_unshared",
    "list_submissions",
    "deadlines",
    "evaluation",
    "admin_create_account",
)


def expected(dept: str, role: str, rel: str, action: str) -> str:
    """The documented policy, written out independently of the server: 'allow', 'deny' or 'empty'."""
    inside = TARGET.startswith(RELATIONS[rel])
    admin = role == "admin"
    if action.startswith("submit_"):
        ds = {"own": OWN[dept], "other": OTHER[dept], "bghtb": "bghtb", "base": "xzq"}[action[7:]]
        ok = admin or (role == "submitter" and inside and dept in SUBMIT_DEPTS[ds])
        return "allow" if ok else "deny"
    if action in VERSIONS:
        vdept, shared = VERSIONS[action]
        if admin:
            return "allow"
        if not inside:
            return "deny"
        if role == "reader":
            return "allow" if (vdept == dept or shared) else "deny"
        return "allow" if vdept == dept else "deny"
    if action == "list_submissions":
        if admin:
            return "allow"
        if role == "reader" or not inside:
            return "deny"
        return "allow" if role == "reviewer" else "empty"  # a submitter sees only its own submissions
    if action == "deadlines":
        return "allow" if admin or inside else "deny"
    if action == "evaluation":
        return "allow" if admin or (role == "reviewer" and inside) else "deny"
    if action == "admin_create_account":
        return "allow" if admin else "deny"
    raise AssertionError(action)


@pytest.fixture(scope="module")
def world(make_account):
    """Versions at TARGET for each dataset kind, made by dedicated submitters; the matrix accounts, lazily."""
    zrzy = make_account("zrzy", TARGET, "submitter", prefix="w")
    nync = make_account("nync", TARGET, "submitter", prefix="w")
    versions = {}
    for action, (client, ds) in {
        "read_zrzy": (zrzy, "dltb_biangeng"),
        "read_nync": (nync, "gbznt"),
        "read_unshared": (nync, "nync_internal"),
    }.items():
        package, manifest = build_package(ds, TARGET, period="2020")
        receipt = client.submit(package, manifest).json()["receipt"]
        assert receipt["status"] == "accepted", receipt
        latest = client.get(f"/datasets/{ds}/regions/{TARGET}/latest", params={"period": "2020"}).json()
        versions[action] = latest["version_id"]
    cache: dict = {}

    def account(dept: str, role: str, rel: str):
        key = (dept, role, rel)
        if key not in cache:
            cache[key] = make_account(dept, RELATIONS[rel], role, prefix="m")
        return cache[key]

    return {"versions": versions, "account": account}


def perform(world, client, dept: str, action: str):
    """Run the action; return (outcome, response)."""
    if action.startswith("submit_"):
        ds = {"own": OWN[dept], "other": OTHER[dept], "bghtb": "bghtb", "base": "xzq"}[action[7:]]
        package, manifest = build_package(ds, TARGET, department=dept)
        r = client.create_upload(len(package))
        if r.status_code == 403:
            return "deny", r
        assert r.status_code == 201, r.text
        upload_id = r.headers["Location"].rsplit("/", 1)[1]
        assert client.patch(upload_id, 0, package).status_code == 204
        sha = hashlib.sha256(package).hexdigest()
        r = client.post(
            "/submissions", json={"upload_id": upload_id, "package_sha256": sha, "manifest": manifest}
        )
        if r.status_code == 403:
            # a refused commit leaves the upload held (it counts against the account's uploads): free it
            assert client.request("DELETE", "/uploads/" + upload_id).status_code == 204
            return "deny", r
        assert r.status_code == 201, r.text
        assert r.json()["receipt"]["status"] == "accepted", r.json()
        return "allow", r
    if action in VERSIONS:
        r = client.get("/versions/{}/download".format(world["versions"][action]))
        if r.status_code == 403:
            return "deny", r
        assert r.status_code == 200 and r.content[:2] == b"PK", r.status_code
        return "allow", r
    if action == "list_submissions":
        r = client.get("/submissions", params={"region": TARGET})
        if r.status_code == 403:
            return "deny", r
        assert r.status_code == 200
        depts = {s["department"] for s in r.json()["items"] if s["period"] == "2020"}
        return ("allow" if dept in depts else "empty"), r
    if action in ("deadlines", "evaluation"):
        r = client.get("/" + action, params={"region": TARGET, "year": 2025})
        if r.status_code == 403:
            return "deny", r
        assert r.status_code == 200 and r.json()["region_code"] == TARGET, r.text
        return "allow", r
    if action == "admin_create_account":
        r = client.post(
            "/admin/accounts",
            json={
                "username": "new_" + client.username,
                "password": "new-pass-1234",
                "department": dept,
                "region_code": TARGET,
                "role": "reader",
            },
        )
        if r.status_code == 403:
            return "deny", r
        assert r.status_code == 201 and r.json()["username"] == "new_" + client.username, r.text
        return "allow", r
    raise AssertionError(action)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("rel", sorted(RELATIONS))
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("dept", DEPTS)
def test_matrix_cell(world, dept, role, rel, action):
    client = world["account"](dept, role, rel)
    outcome, response = perform(world, client, dept, action)
    want = expected(dept, role, rel, action)
    assert outcome == want, (dept, role, rel, action, response.text if response is not None else "")
    if outcome == "deny" and response is not None:
        assert response.status_code == 403, response.text
        err = response.json()["error"]
        assert err["code"].startswith("FORBIDDEN_") and err["message_zh"]


def test_matrix_is_complete():
    cells = {(d, r, rel, a) for d in DEPTS for r in ROLES for rel in RELATIONS for a in ACTIONS}
    assert len(cells) == 2 * 4 * 4 * 11
    outcomes = {expected(*c) for c in cells}
    assert outcomes == {"allow", "deny", "empty"}


# every route that needs a token, with a path that exists
AUTHENTICATED = [
    ("GET", "/auth/me"),
    ("POST", "/auth/revoke"),
    ("GET", "/catalog"),
    ("POST", "/uploads"),
    ("HEAD", "/uploads/0123456789abcdef0123456789abcdef"),
    ("GET", "/uploads/0123456789abcdef0123456789abcdef"),
    ("PATCH", "/uploads/0123456789abcdef0123456789abcdef"),
    ("DELETE", "/uploads/0123456789abcdef0123456789abcdef"),
    ("POST", "/submissions"),
    ("POST", "/submissions/offline"),
    ("GET", "/submissions"),
    ("GET", "/submissions/x"),
    ("GET", "/submissions/x/receipt"),
    ("GET", "/versions"),
    ("GET", "/versions/1"),
    ("GET", "/versions/1/manifest"),
    ("GET", "/versions/1/download"),
    ("GET", "/datasets/dltb_biangeng/regions/610102/versions"),
    ("GET", "/datasets/dltb_biangeng/regions/610102/latest"),
    ("GET", "/feed"),
    ("GET", "/releases"),
    ("GET", "/deadlines"),
    ("GET", "/evaluation"),
    ("POST", "/admin/accounts"),
    ("GET", "/admin/accounts"),
    ("PATCH", "/admin/accounts/admin"),
    ("POST", "/admin/tokens"),
    ("POST", "/admin/tokens/revoke"),
    ("PUT", "/admin/releases"),
    ("GET", "/admin/audit"),
]


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED)
@pytest.mark.parametrize("token", [None, "hj_not_a_token"])
def test_no_valid_token_is_401(server, method, path, token):
    client = Client(server.url, token)
    r = client.request(method, path, json={} if method in ("POST", "PUT", "PATCH") else None)
    assert r.status_code == 401, (method, path, r.status_code, r.text)
    if method != "HEAD":
        assert r.json()["error"]["code"] == ("AUTH_REQUIRED" if token is None else "TOKEN_INVALID")
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_every_authenticated_route_listed(server):
    """The 401 list covers the whole API (so a new route cannot miss it)."""
    import re

    import requests

    public = {"/health", "/server-key", "/errors", "/openapi.json", "/docs", "/auth/token"}
    spec = requests.get(server.url + "/api/v1/openapi.json", timeout=10).json()["paths"]
    listed = {(m, re.sub(r"/[^/]+", "/{}", p)) for m, p in AUTHENTICATED}
    for path, ops in spec.items():
        short = path[len("/api/v1") :]
        if short in public:
            continue
        for method in ops:
            if method.upper() == "OPTIONS":
                continue
            assert (method.upper(), re.sub(r"/[^/]+", "/{}", short)) in listed, (method, path)
