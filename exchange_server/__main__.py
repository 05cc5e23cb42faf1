"""Command line: ``serve``, ``admin …`` and ``demo-accounts``.

    python -m exchange_server serve --data DIR --host 127.0.0.1 --port 8765 [--db URL] [--catalog DIR]
    python -m exchange_server admin --data DIR create-account --username u --password p --department zrzy \\
        --region 610102 --role submitter
    python -m exchange_server demo-accounts --data DIR [--region 610102]
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import logging
import os
import socket
import sys
from pathlib import Path

from exchange_server import platform
from exchange_server.catalog import DEFAULT_CATALOG_DIR
from exchange_server.config import ServerConfig
from exchange_server.errors import ApiError

DEMO_PASSWORD = "huijiao-demo-2025"
DEMO_REGION = "610431"


def _config(args: argparse.Namespace) -> ServerConfig:
    cfg = ServerConfig(
        data_dir=Path(args.data).resolve(), db_url=args.db or os.environ.get("HUIJIAO_SERVER_DB")
    )
    cfg.catalog_dir = Path(args.catalog) if args.catalog else DEFAULT_CATALOG_DIR
    for name in (
        "max_upload_size",
        "max_concurrent_uploads",
        "upload_expiry_seconds",
        "token_ttl_seconds",
        "cleanup_interval_seconds",
        "due_days",
        "monitoring_min_per_year",
        "zip_max_files",
        "zip_max_uncompressed",
        "zip_max_ratio",
        "sync_every_bytes",
        "max_json_body",
        "max_chunk_size",
        "account_quota_bytes",
        "feed_max_wait",
        "login_max_failures_account",
        "login_max_failures_address",
        "login_window_seconds",
        "unauthenticated_audit_per_minute",
        "unauthenticated_audit_retention_days",
    ):
        value = getattr(args, name, None)
        if value is not None:
            setattr(cfg, name, value)
    if getattr(args, "db_busy_timeout", None) is not None:
        cfg.db_busy_timeout = args.db_busy_timeout
    if getattr(args, "no_direct_io", False):
        cfg.direct_io = False
    if getattr(args, "base_submitters", None):
        cfg.base_submitters = tuple(args.base_submitters.split(","))
    if getattr(args, "login_trusted_networks", None):
        cfg.login_trusted_networks = args.login_trusted_networks
    return cfg


def _networks(value: str) -> tuple[str, ...]:
    networks = tuple(n.strip() for n in value.split(",") if n.strip())
    try:
        for network in networks:
            ipaddress.ip_network(network, strict=False)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err))
    return networks


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="data directory (database, uploads, packages, keys)")
    p.add_argument(
        "--db", help="database URL (default: SQLite in DATA); e.g. postgresql+psycopg://u:p@host/db"
    )
    p.add_argument("--catalog", help=f"catalog directory (default: {DEFAULT_CATALOG_DIR})")
    p.add_argument("--base-submitters", help="departments that may submit 'base' datasets (default: zrzy)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m exchange_server", description="汇交联动 exchange server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server")
    _common(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 = any free port (see --port-file)")
    serve.add_argument("--port-file", help="write the bound port to this file once listening")
    serve.add_argument("--log-level", default="info")
    for opt in (
        "max-upload-size",
        "max-concurrent-uploads",
        "upload-expiry-seconds",
        "token-ttl-seconds",
        "cleanup-interval-seconds",
        "due-days",
        "monitoring-min-per-year",
        "zip-max-files",
        "zip-max-uncompressed",
        "zip-max-ratio",
        "sync-every-bytes",
        "max-json-body",
        "max-chunk-size",
        "account-quota-bytes",
        "feed-max-wait",
        "login-max-failures-account",
        "login-max-failures-address",
        "login-window-seconds",
        "unauthenticated-audit-per-minute",
        "unauthenticated-audit-retention-days",
    ):
        serve.add_argument("--" + opt, type=int)
    serve.add_argument(
        "--login-trusted-networks",
        type=_networks,
        help="comma-separated CIDR networks throttled per account only (a department NAT), default none",
    )
    serve.add_argument(
        "--db-busy-timeout",
        type=float,
        help="seconds a SQLite statement waits for a lock before answering 503 (default 30)",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a client has to send a request's headers (slowloris), default 10",
    )
    serve.add_argument(
        "--body-idle-timeout",
        type=float,
        default=120.0,
        help="seconds a request body may stall without a byte, default 120",
    )
    serve.add_argument(
        "--no-direct-io",
        action="store_true",
        help="write uploads through the page cache (default: O_DIRECT where the OS and filesystem allow it)",
    )

    adm = sub.add_parser("admin", help="accounts, tokens and release dates")
    _common(adm)
    asub = adm.add_subparsers(dest="action", required=True)
    ca = asub.add_parser("create-account")
    ca.add_argument("--username", required=True)
    ca.add_argument("--password", required=True)
    ca.add_argument("--department", required=True, choices=("zrzy", "nync"))
    ca.add_argument("--region", required=True)
    ca.add_argument("--role", required=True, choices=("submitter", "reader", "reviewer", "admin"))
    ca.add_argument("--display-name", default="")
    ca.add_argument("--unit", default="")
    asub.add_parser("list-accounts")
    for name in ("disable-account", "enable-account"):
        p = asub.add_parser(name)
        p.add_argument("--username", required=True)
    sp = asub.add_parser("set-password")
    sp.add_argument("--username", required=True)
    sp.add_argument("--password", required=True)
    it = asub.add_parser("issue-token")
    it.add_argument("--username", required=True)
    it.add_argument("--ttl-seconds", type=int)
    rt = asub.add_parser("revoke-token", help="revoke every token of an account")
    rt.add_argument("--username", required=True)
    sr = asub.add_parser("set-release")
    sr.add_argument("--dataset", required=True)
    sr.add_argument("--year", type=int, required=True)
    sr.add_argument("--date", required=True, help="YYYY-MM-DD")
    lr = asub.add_parser("list-releases")
    lr.add_argument("--year", type=int)
    asub.add_parser("server-key")
    for name in ("backup", "restore"):  # exchange_server/backup.py
        asub.add_parser(name).add_argument("dir", type=Path, help="backup directory")

    demo = sub.add_parser("demo-accounts", help="create demo accounts for both departments and print tokens")
    _common(demo)
    demo.add_argument("--region", default=DEMO_REGION, help=f"demo county code (default {DEMO_REGION})")
    demo.add_argument("--password", default=DEMO_PASSWORD)
    demo.add_argument("--ttl-seconds", type=int, default=30 * 24 * 3600)

    sc = sub.add_parser(
        "scenario", help="end-to-end check against a running server (accounts, cut upload, …)"
    )
    sc.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8765")
    sc.add_argument("--admin-user", required=True)
    sc.add_argument("--admin-password", required=True)
    sc.add_argument("--size-mb", type=float, default=200)
    sc.add_argument("--region", default=DEMO_REGION)
    sc.add_argument("--dataset", default="dltb_biangeng")
    return parser


def _scenario(args: argparse.Namespace) -> int:
    from exchange_server.scenario import ScenarioError, run_scenario

    try:
        run_scenario(args.url, args.admin_user, args.admin_password, args.size_mb, args.region, args.dataset)
    except ScenarioError as err:
        print(f"失败 / FAILED: {err}", file=sys.stderr)
        return 1
    print("全部通过 / all steps passed")
    return 0


def _raise_descriptor_limit() -> None:
    """Each connection holds a descriptor: use the hard limit, not the default soft 1,024 (where the OS has
    them), so that many idle or slow connections cannot lock everybody else out before they time out."""
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from exchange_server.app import create_app
    from exchange_server.http_guard import guarded_protocol
    from exchange_server.services import Exchange

    cfg = _config(args)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    ex = Exchange.open(cfg)
    platform.keep_freed_memory()
    app = create_app(ex)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)
    _raise_descriptor_limit()
    port = sock.getsockname()[1]
    if args.port_file:
        tmp = Path(args.port_file + ".tmp")
        tmp.write_text(str(port), encoding="ascii")
        os.replace(tmp, args.port_file)
    print(f"exchange_server listening on http://{args.host}:{port}/api/v1", flush=True)
    # loop "auto": uvloop when it is installed (pinned in the dev dependencies; uploads measured 4-8 %
    # faster), else asyncio
    protocol = guarded_protocol(args.header_timeout, args.body_idle_timeout)
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        access_log=False,
        timeout_keep_alive=30,
        http=protocol,
        # a stop (systemd, Ctrl+C) waits this long for requests in flight, then closes them: an interrupted
        # upload resumes from its last stored offset, and no client can hold up a restart
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


GRACEFUL_SHUTDOWN_S = 10


def _admin(args: argparse.Namespace) -> int:
    from exchange_server.services import Exchange

    if args.action in ("backup", "restore"):  # before Exchange.open: a restore needs an empty server
        from exchange_server import backup

        result = getattr(backup, args.action)(_config(args), args.dir)
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    ex = Exchange.open(_config(args))
    if args.action == "create-account":
        out = ex.create_account(
            args.username,
            args.password,
            args.department,
            args.region,
            args.role,
            args.display_name,
            args.unit,
        )
    elif args.action == "list-accounts":
        out = ex.list_accounts()
    elif args.action in ("disable-account", "enable-account"):
        out = ex.update_account(args.username, disabled=args.action == "disable-account")
    elif args.action == "set-password":
        out = ex.update_account(args.username, password=args.password)
    elif args.action == "issue-token":
        out = ex.issue_token(args.username, args.ttl_seconds, "cli")
    elif args.action == "revoke-token":
        out = {"revoked": ex.revoke_tokens(args.username)}
    elif args.action == "set-release":
        out = ex.set_release(args.dataset, args.year, dt.date.fromisoformat(args.date))
    elif args.action == "list-releases":
        out = ex.list_releases(args.year)
    else:
        out = {"public_key": ex.signer.public_b64, "fingerprint": ex.signer.fingerprint}
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from exchange_server.regions import normalise
    from exchange_server.services import Exchange

    ex = Exchange.open(_config(args))
    county = normalise(args.region)
    city = county[:4]
    specs = [
        ("demo_zrzy_submitter", "zrzy", county, "submitter", "自然资源 提交员"),
        ("demo_zrzy_reader", "zrzy", county, "reader", "自然资源 查阅员"),
        ("demo_zrzy_reviewer", "zrzy", city, "reviewer", "自然资源 审核员（市级）"),
        ("demo_nync_submitter", "nync", county, "submitter", "农业农村 提交员"),
        ("demo_nync_reader", "nync", county, "reader", "农业农村 查阅员"),
        ("demo_nync_reviewer", "nync", city, "reviewer", "农业农村 审核员（市级）"),
        ("demo_admin", "zrzy", "61", "admin", "管理员"),
    ]
    existing = {a["username"] for a in ex.list_accounts()}
    accounts = []
    for username, dept, region, role, name in specs:
        if username not in existing:
            ex.create_account(username, args.password, dept, region, role, name, "演示单位")
        token = ex.issue_token(username, args.ttl_seconds, "demo")
        accounts.append(
            {
                "username": username,
                "password": args.password,
                "department": dept,
                "region_code": region,
                "role": role,
                "token": token["access_token"],
                "expires_at": token["expires_at"],
            }
        )
    print(
        json.dumps({"accounts": accounts, "server_key": ex.signer.fingerprint}, ensure_ascii=False, indent=2)
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # the data directory holds accounts, packages and the signing key: readable by the server's user only
    os.umask(0o077)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "admin":
            return _admin(args)
        if args.command == "scenario":
            return _scenario(args)
        return _demo(args)
    except ApiError as err:
        print(f"错误 {err.code}: {err.message_zh} ({err.message})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
