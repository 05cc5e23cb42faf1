"""Small widgets, one job each, that the docks are made of."""

from __future__ import annotations
