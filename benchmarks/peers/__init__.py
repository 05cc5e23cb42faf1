"""What an analyst would write instead of the plugin: the same questions in GeoPandas and in DuckDB spatial,
each a script run as its own process (``python -m benchmarks.peers.NAME PRESET COUNTY.gpkg OUT.gpkg``)."""
