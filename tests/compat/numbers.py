"""Numbers that must not depend on the QGIS version: ellipsoidal areas and the outputs of the compare presets
on one small generated county.

The county is generated once on the host (GEOS versions may shape generated data differently, so every
root reads the same file); each root writes its numbers, and the host compares them with its own:

    python -m tests.compat.numbers write COUNTY.gpkg OUT.json
    python -m tests.compat.numbers compare REFERENCE.json OTHER.json...   (exit 1 on a difference)
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

REL_TOL = 1e-9  # relative; areas below 1 m² compared to 1e-9 m² absolute


def county_numbers(gpkg: Path) -> dict:
    """{"qgis": version, "areas": {layer: [m² per feature by fid]}, "presets": {id: [[category, m²]...]}}."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import Qgis, QgsApplication, QgsVectorLayer

    app = QgsApplication([], False)
    app.initQgis()
    from huijiao_plugin.core.compare.engine import CountyOverlay
    from huijiao_plugin.core.compare.presets import run_suite
    from huijiao_plugin.core.ellipsoidal_area import EllipsoidalAreaCalculator
    from tests.datagen import COMPARE_ROLES

    layers = {
        role: QgsVectorLayer(f"{gpkg}|layername={name}", name, "ogr") for role, name in COMPARE_ROLES.items()
    }
    missing = [role for role, layer in layers.items() if not layer.isValid()]
    if missing:
        raise SystemExit(f"{gpkg}: layers not readable: {missing}")
    areas = {}
    for role in ("DLTB", "PBF", "HSF"):
        layer = layers[role]
        calc = EllipsoidalAreaCalculator(layer.crs())
        features = sorted(layer.getFeatures(), key=lambda f: f.id())
        areas[role] = calc.areas(f.geometry() for f in features)
    presets = {}
    for preset_id, result in run_suite(CountyOverlay(layers)).items():
        presets[preset_id] = sorted([p.category, p.area_m2] for p in result.pieces)
    return {"qgis": Qgis.version().split("-")[0], "areas": areas, "presets": presets}


def differences(reference: dict, other: dict) -> list[str]:
    """Human-readable differences of ``other`` from ``reference`` (empty when equal to REL_TOL)."""
    out = []

    def close(a: float, b: float) -> bool:
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-9)

    for section in ("areas", "presets"):
        ref, oth = reference[section], other[section]
        if sorted(ref) != sorted(oth):
            out.append(f"{section}: keys {sorted(ref)} != {sorted(oth)}")
            continue
        for key in sorted(ref):
            a, b = ref[key], oth[key]
            if len(a) != len(b):
                out.append(f"{section}/{key}: {len(a)} values != {len(b)}")
                continue
            for i, (x, y) in enumerate(zip(a, b)):
                if section == "presets":
                    if x[0] != y[0] or not close(x[1], y[1]):
                        out.append(f"presets/{key}[{i}]: {x} != {y}")
                elif not close(x, y):
                    out.append(f"areas/{key}[{i}]: {x!r} != {y!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 3 and args[0] == "write":
        numbers = county_numbers(Path(args[1]))
        Path(args[2]).write_text(json.dumps(numbers, indent=1), encoding="utf-8")
        return 0
    if len(args) >= 3 and args[0] == "compare":
        reference = json.loads(Path(args[1]).read_text(encoding="utf-8"))
        status = 0
        for path in args[2:]:
            other = json.loads(Path(path).read_text(encoding="utf-8"))
            diff = differences(reference, other)
            count = sum(len(v) for section in ("areas", "presets") for v in other[section].values())
            verdict = "equal" if not diff else f"{len(diff)} DIFFERENCES"
            versions = f"QGIS {other['qgis']} vs {reference['qgis']}"
            print(f"numbers {versions}: {count} values, {verdict} (relative tolerance {REL_TOL})")
            for line in diff[:20]:
                print("  " + line)
            status = status or (1 if diff else 0)
        return status
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
