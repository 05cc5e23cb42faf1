"""Small widgets the docks are built from, one job each."""

from __future__ import annotations
