"""pbfnongrain and hsfnotinpbf as a user runs them, each a whole process on one generated county: ours
through ``qgis_process.bin run huijiao:PRESET`` (the plugin installed in a throw-away QGIS profile), against
the tools an analyst would pick instead, GeoPandas (``overlay``, pyogrio) and DuckDB spatial
(``benchmarks/peers``). Same county, same questions with tolerances off, a GeoPackage out each time.

Ours runs twice: on QGIS's own Python as it is (Debian 12: no shapely, the per-feature QgsGeometry path)
and with the ``make ext-libs`` folder in the installed plugin (the vectorised path). With
``HUIJIAO_BENCH_BEFORE=/path/to/an/older/checkout`` that checkout's plugin runs too, as is and with the
same shapely on PYTHONPATH. Printed: wall seconds and peak RSS (the child's own, from wait4) of each
process, the output's piece count and area (ours: 三调 ellipsoidal m²; the peers: planar m²), and each
peer's time over ours.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_compare import county_path

ROOT = Path(__file__).resolve().parent.parent
EXT_LIBS = ROOT / "build" / "ext-libs"
PRESETS = {
    "pbfnongrain": {"PBF": "YJJBNTBHTB", "DLTB": "DLTB", "XZQ": "XZQ", "CJDCQ": "CJDCQ"},
    "hsfnotinpbf": {"DLTB": "DLTB", "HSF": "GBZNT", "PBF": "YJJBNTBHTB", "XZQ": "XZQ", "CJDCQ": "CJDCQ"},
}


def timed_process(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one whole process; the peak is GNU time's maximum resident
    set size of that process."""
    pipe = subprocess.PIPE
    started = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", f"{PEAK} %M", *args], env=env, cwd=ROOT, stdout=pipe,
                          stderr=pipe, text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{args[:4]} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    peak = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith(PEAK)]
    return wall, int(peak[-1]) / 1024.0 if peak else 0.0, proc.stdout


PEAK = "HUIJIAO_PEAK_KB"


def install(plugin_root: Path, config: Path, ext_libs: bool) -> dict[str, str]:
    """The plugin of ``plugin_root`` in a throw-away QGIS profile (with the ext-libs folder or without)."""
    plugin_dir = config / "profiles" / "default" / "python" / "plugins" / "huijiao_plugin"
    shutil.copytree(
        plugin_root / "huijiao_plugin", plugin_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    shutil.copy(plugin_root / "metadata.txt", plugin_dir / "metadata.txt")
    if ext_libs:
        shutil.copytree(EXT_LIBS, plugin_dir / "ext-libs")
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(config), QT_QPA_PLATFORM="offscreen")
    env.pop("PYTHONPATH", None)
    subprocess.run(["qgis_process.bin", "plugins", "enable", "huijiao_plugin"], env=env, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    return env


def ours(env: dict[str, str], preset: str, county: Path, out: Path) -> tuple[float, float, str]:
    params = [f"{role}={county}|layername={name}" for role, name in PRESETS[preset].items()]
    args = ["qgis_process.bin", "--json", "run", f"huijiao:{preset}", "--", *params, f"OUTPUT={out}"]
    wall, peak, stdout = timed_process(args, env)
    results = json.loads(stdout)["results"]
    return wall, peak, f"{results['COUNT']} pieces, {results['AREA_M2']:,.1f} m²"


def peer(name: str, preset: str, county: Path, out: Path) -> tuple[float, float, str]:
    args = [sys.executable, "-m", f"benchmarks.peers.{name}_peer", preset, str(county), str(out)]
    wall, peak, stdout = timed_process(args)
    count, area = stdout.split()[-2:]
    return wall, peak, f"{count} pieces, {float(area):,.1f} m² planar"


def run(args):
    county = county_path(args)
    rows = []
    work = Path(tempfile.mkdtemp(prefix="huijiao_peers_"))
    variants: list[tuple[str, Path, bool, bool]] = []  # label, plugin root, ext-libs in plugin, on PYTHONPATH
    before = os.environ.get("HUIJIAO_BENCH_BEFORE")
    if before:
        variants += [("before, QGIS Python as is", Path(before), False, False)]
        if EXT_LIBS.is_dir():
            variants += [("before, shapely 2 on PYTHONPATH", Path(before), False, True)]
    variants += [("ours, QGIS Python as is", ROOT, False, False)]
    if EXT_LIBS.is_dir():
        variants += [("ours, make ext-libs", ROOT, True, False)]
    envs = {}
    for n, (label, root, ext, on_path) in enumerate(variants):
        env = install(root, work / f"config{n}", ext)
        if on_path:
            env["PYTHONPATH"] = str(EXT_LIBS)
        envs[label] = env
    try:
        for preset in PRESETS:
            best_ours = None
            for label, env in envs.items():
                out = work / f"{preset}-{len(rows)}.gpkg"
                wall, peak, what = ours(env, preset, county, out)
                rows.append(_row(preset, label, wall, peak, what))
                if label.startswith("ours"):
                    best_ours = wall if best_ours is None else min(best_ours, wall)
            for name in ("geopandas", "duckdb"):
                out = work / f"{preset}-{name}.gpkg"
                wall, peak, what = peer(name, preset, county, out)
                rows.append(_row(preset, name, wall, peak, what))
                rows.append({"metric": f"{preset}: {name} / ours (target > 1)", "value": wall / best_ours})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _row(preset: str, label: str, wall: float, peak: float, what: str) -> dict:
    print(f"  peers: {preset}: {label}: {wall:.2f} s, {peak:.0f} MB, {what}", file=sys.stderr, flush=True)
    return {"metric": f"{preset}: {label} ({what}; peak {peak:.0f} MB)", "value": wall, "unit": "s"}
