"""Province runs: a county preset over every county of a province, county by county in worker processes
(Dask distributed when installed, else a local process pool), streamed into one resumable GeoPackage."""

from __future__ import annotations
