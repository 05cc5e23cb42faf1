"""The server as an ASGI application factory, for several worker processes on one PostgreSQL database:

    HUIJIAO_SERVER_DATA=/var/lib/huijiao HUIJIAO_SERVER_DB=postgresql+psycopg://... \\
    HUIJIAO_SERVER_OPTIONS="--max-upload-size 8589934592 --login-trusted-networks 10.20.0.0/16" \\
        uvicorn --factory exchange_server.asgi:app --workers 4 --host 127.0.0.1 --port 8765

``HUIJIAO_SERVER_OPTIONS`` takes the limits of ``python -m exchange_server serve`` (same names, same
defaults). Every worker opens the same data directory and database; what must be shared or exclusive
across workers lives in the database (login failures: table login_failures; the lock of an upload and the
numbering of versions: advisory locks, exchange_server/locks.py). Workers starting together on an empty
database create its tables one after the other (exchange_server/db.py, init_schema).
"""

from __future__ import annotations

import os
import shlex


def app() -> object:
    from exchange_server.__main__ import _config, build_parser
    from exchange_server.app import create_app
    from exchange_server.services import Exchange

    argv = ["serve", "--data", os.environ["HUIJIAO_SERVER_DATA"]]
    if os.environ.get("HUIJIAO_SERVER_DB"):
        argv += ["--db", os.environ["HUIJIAO_SERVER_DB"]]
    argv += shlex.split(os.environ.get("HUIJIAO_SERVER_OPTIONS", ""))
    return create_app(Exchange.open(_config(build_parser().parse_args(argv))))
