"""The server as an ASGI application factory, for several worker processes on one PostgreSQL database:

    HUIJIAO_SERVER_DATA=/var/lib/huijiao HUIJIAO_SERVER_DB=postgresql+psycopg://... \\
        uvicorn --factory exchange_server.asgi:app --workers 4 --host 127.0.0.1 --port 8765

Every worker opens the same data directory and database; what must be exclusive across workers is
locked in the database (exchange_server/locks.py). Initialise the database once before (any
``python -m exchange_server admin ...`` command does) so that the workers do not race creating it.
"""

from __future__ import annotations

import os
from pathlib import Path

from exchange_server.config import ServerConfig


def app() -> object:
    from exchange_server.app import create_app
    from exchange_server.services import Exchange

    config = ServerConfig(
        data_dir=Path(os.environ["HUIJIAO_SERVER_DATA"]).resolve(), db_url=os.environ.get("HUIJIAO_SERVER_DB")
    )
    return create_app(Exchange.open(config))
