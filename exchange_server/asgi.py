"""The server as an ASGI application factory, for several worker processes on one PostgreSQL database:

    HUIJIAO_SERVER_DATA=/var/lib/huijiao HUIJIAO_SERVER_DB=postgresql+psycopg://... \\
    HUIJIAO_SERVER_OPTIONS="--max-upload-size 8589934592 --login-trusted-networks 10.20.0.0/16" \\
        python -m exchange_server.asgi --workers 4 --host 127.0.0.1 --port 8765

``HUIJIAO_SERVER_OPTIONS`` takes the limits of ``python -m exchange_server serve`` (same names, same
defaults), the read time-outs ``--header-timeout`` and ``--body-idle-timeout`` included: this launcher runs
``uvicorn.run`` with the server's own HTTP protocol class (exchange_server/http_guard.py), which uvicorn's
command line cannot take (its ``--http`` is one of three names), so plain ``uvicorn --factory
exchange_server.asgi:app --workers N`` serves the same application without those time-outs. Every worker opens
the same data directory and database; what must be shared or exclusive across workers lives in the database
(login failures: table login_failures; the lock of an upload and the numbering of versions: advisory locks,
exchange_server/locks.py). Workers starting together on an empty database create its tables one after the
other (exchange_server/db.py, init_schema).
"""

from __future__ import annotations

import argparse
import os
import shlex

from exchange_server.http_guard import GuardedProtocol


class WorkerProtocol(GuardedProtocol):
    """Importable by name in every worker (uvicorn pickles its configuration to them); the time-outs are
    set from ``HUIJIAO_SERVER_OPTIONS`` by the factory, which each worker runs before it serves."""


def _serve_args() -> argparse.Namespace:
    from exchange_server.__main__ import build_parser

    argv = ["serve", "--data", os.environ["HUIJIAO_SERVER_DATA"]]
    if os.environ.get("HUIJIAO_SERVER_DB"):
        argv += ["--db", os.environ["HUIJIAO_SERVER_DB"]]
    argv += shlex.split(os.environ.get("HUIJIAO_SERVER_OPTIONS", ""))
    return build_parser().parse_args(argv)


def app() -> object:
    from exchange_server.__main__ import _config
    from exchange_server.app import create_app
    from exchange_server.services import Exchange

    args = _serve_args()
    WorkerProtocol.header_timeout = args.header_timeout
    WorkerProtocol.body_idle_timeout = args.body_idle_timeout
    return create_app(Exchange.open(_config(args)))


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m exchange_server.asgi")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    # the class of this module, not of ``__main__``: the workers import it by this name
    import exchange_server.asgi as this

    uvicorn.run(
        "exchange_server.asgi:app",
        factory=True,
        workers=args.workers,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_keep_alive=30,
        http=this.WorkerProtocol,
    )


if __name__ == "__main__":
    main()
