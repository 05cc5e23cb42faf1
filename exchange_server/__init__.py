"""汇交联动 reference exchange server (FastAPI + SQLAlchemy Core). Independent of QGIS."""

from __future__ import annotations

__version__ = "0.1.0"
API_PREFIX = "/api/v1"
