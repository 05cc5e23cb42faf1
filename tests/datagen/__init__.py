"""Synthetic county generator for tests and demos (dev tooling, not part of the plugin).

``generate_county(out_dir, size, seed, formats, year)`` writes ``out_dir/county.gpkg`` (EPSG:4545, a synthetic
county under the real code 610431 武功县), ``out_dir/shp/DLTB.shp`` (DBF in GBK + ``.cpg``) and
``out_dir/DLTB.gdb`` (OpenFileGDB) and returns a :class:`DemoCounty` with the paths. Same seed → same bytes.

See tests/datagen/README.md for the layers, fields and invariants.
"""

from __future__ import annotations

from tests.datagen.generator import COMPARE_ROLES, LAYERS, DemoCounty, generate_county

__all__ = ["COMPARE_ROLES", "LAYERS", "DemoCounty", "generate_county"]
