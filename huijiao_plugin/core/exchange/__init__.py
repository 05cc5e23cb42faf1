"""The exchange with the server and offline: transport, tus upload, receipts, client, offline packages."""

from __future__ import annotations
