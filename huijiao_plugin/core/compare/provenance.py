"""The provenance of a comparison output, written once per output (not on every piece): as the layer's
metadata (QgsLayerMetadata: abstract + a ``huijiao:provenance`` keyword holding the JSON) and, in a
GeoPackage, as a row of the table ``huijiao_provenance`` (output layer, rule id, time, JSON).

It records, per input: its layer name, source file, layer in the file, subset filter, feature count, CRS,
dataset id and year/version when known; the preset, the rule profile (its files and the resolved values the
preset read), the tolerances and how they were applied, the plugin version, the geometry engine (QGIS's GEOS
or shapely's) and the time.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from typing import Any

from qgis.core import Qgis, QgsLayerMetadata, QgsMapLayer, QgsProviderRegistry

from huijiao_plugin.core.compare import vectorized
from huijiao_plugin.toolbelt.resources import plugin_version

TABLE = "huijiao_provenance"
KEYWORD = "huijiao:provenance"

# how the tolerances are applied (partition.py), recorded with every output
TOLERANCE_POLICY = (
    "exact pieces; overlaps inside a category counted once; MIN_AREA / MIN_WIDTH / NOISE_WIDTH judge each "
    "connected part of a category's union; what they reject is category within_tolerance"
)


def build(
    preset_id: str,
    rule_id: str,
    params: dict[str, Any],
    profile_sources: list[str],
    inputs: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    tolerances = {k: params[k] for k in ("min_area_m2", "min_width_m", "noise_width_m") if k in params}
    out = {
        "preset": preset_id,
        "rule_id": rule_id,
        "rule_profile": {"sources": list(profile_sources), "values": params},
        "tolerances": tolerances,
        "tolerance_policy": TOLERANCE_POLICY,
        "inputs": inputs,
        "plugin_version": plugin_version(),
        "engine": f"{vectorized.describe()}; QGIS {Qgis.version()}, GEOS {Qgis.geosVersion()}",
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out.update(extra or {})
    return out


def to_json(provenance: dict[str, Any]) -> str:
    return json.dumps(provenance, ensure_ascii=False, sort_keys=True, default=str)


def metadata(provenance: dict[str, Any], title: str) -> QgsLayerMetadata:
    md = QgsLayerMetadata()
    md.setTitle(title)
    inputs = ", ".join(
        f"{role}: {i.get('layer', '')} ({i.get('file', '')}, {i.get('feature_count', '')})"
        for role, i in provenance.get("inputs", {}).items()
    )
    md.setAbstract(
        f"{provenance['rule_id']} {provenance['time']} plugin {provenance['plugin_version']}; "
        f"tolerances {provenance['tolerances']}; inputs {inputs}"
    )
    md.addKeywords(KEYWORD, [to_json(provenance)])
    return md


def read_metadata(layer: QgsMapLayer) -> dict[str, Any] | None:
    values = layer.metadata().keywords(KEYWORD)
    return json.loads(values[0]) if values else None


def apply_to_layer(layer: QgsMapLayer, provenance: dict[str, Any], title: str) -> None:
    layer.setMetadata(metadata(provenance, title))


def write_gpkg(path: str, layer_name: str, provenance: dict[str, Any], title: str) -> None:
    """The provenance row in ``path`` (a GeoPackage) and the layer's metadata in the file."""
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "output_layer TEXT, rule_id TEXT, created TEXT, provenance TEXT)"
        )
        db.execute(
            "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier) "
            "VALUES (?, 'attributes', ?)",
            (TABLE, TABLE),
        )
        db.execute(
            f"INSERT INTO {TABLE} (output_layer, rule_id, created, provenance) VALUES (?, ?, ?, ?)",
            (layer_name, provenance["rule_id"], provenance["time"], to_json(provenance)),
        )
    uri = f"{path}|layername={layer_name}"
    QgsProviderRegistry.instance().providerMetadata("ogr").saveLayerMetadata(uri, metadata(provenance, title))


def read_gpkg(path: str, layer_name: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute(f"SELECT provenance FROM {TABLE} WHERE output_layer = ? ORDER BY id", (layer_name,))
        return [json.loads(r[0]) for r in rows]
