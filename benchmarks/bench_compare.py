"""耕地比对: every preset and the whole suite against the equivalent chains of QGIS native algorithms.

On a generated county (``python -m tests.datagen``, default 250 000 DLTB polygons, cached in the temp
directory; or ``--gpkg`` pointing to such a county.gpkg) each preset runs on a fresh ``CountyOverlay``
(reading included), the suite runs all presets on one overlay, and the native chains
(native:extractbyexpression, intersection, difference, dissolve, buffer, multiparttosingleparts,
detectvectorchanges; memory outputs, no geometry checks) answer the same questions in the same process.
Like the presets, each chain ends with the sliver rule of domain.md §6 (as native:extractbyexpression on the
single parts), so both sides report the same pieces; the piece counts are printed side by side (except
pbfexitcandidates, whose rows are one multipart piece per PBF patch and reason, where the chain has parts).
The native chains run in a child process (same run, same machine), so each side's peak RSS
(VmHWM) is its own. Printed: seconds, ratios native/ours, both peaks.
Targets (issue 4): each preset ≥ 5×, suite ≥ 10×, peak < 2 GB.

To iterate on some presets only (with their native chains), set ``HUIJIAO_BENCH_PRESETS`` to a comma-separated
list, e.g. ``HUIJIAO_BENCH_PRESETS=hsfnotinpbf .venv/bin/python -m benchmarks --only compare``; the "suite"
rows then cover those presets only.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qgis.core import QgsFeatureRequest, QgsProcessingContext, QgsProcessingFeedback, QgsVectorLayer

from huijiao_plugin.core.compare.engine import CountyOverlay
from huijiao_plugin.core.compare.presets import SUITE_ORDER, run_preset
from tests.datagen import COMPARE_ROLES

DEFAULT_SIZE = 250_000
ROOT = Path(__file__).resolve().parent.parent
QGIS_PLUGINS = "/usr/share/qgis/python/plugins"
LAYERS = {**COMPARE_ROLES, "A": "YJJBNTBHTB", "B": "GDBHMB"}
FARM = "DLBM IN ('0101','0102','0103')"
CONSTRUCTION = (
    "left(DLBM,2) IN ('05','06','07','08','09','10') AND left(DLBM,4) <> '1006' AND left(DLBM,4) <> '1202'"
)
FRAGILE = "TBXHDM IN ('HDGD','HQGD','LQGD','MQGD','SHGD','SMGD','YJGD') OR (GDPDJB = '5' AND GDLX = 'PD')"
TBLX = "TBLX IN ('20','YH','DL1','DL2','DL3','TL','SJ','CK','GF','JC')"


def sliver_rule_expression() -> str:
    """``passes_sliver_rule`` (compare/engine/noise.py) as a QGIS expression, with the profile defaults."""
    from huijiao_plugin.core.compare.rules import RuleProfile

    profile = RuleProfile.default()
    min_area, min_width = float(profile.get("min_area_m2")), float(profile.get("min_width_m"))
    half = float(profile.get("noise_width_m")) / 2.0
    width = "area($geometry) / perimeter($geometry)"
    return (
        f"CASE WHEN area($geometry) < {min_area} THEN false WHEN {width} < {min_width} THEN false "
        f"WHEN {half} <= 0 OR {width} > {half} THEN true "
        f"ELSE area(buffer($geometry, -{half}, 4)) > 0.01 END"
    )


SLIVER_RULE = sliver_rule_expression()


def peak_mb() -> float:
    """Peak resident memory of this process. Linux keeps ``ru_maxrss`` across execve (a child started by
    us would report our peak), so the address space's own high-water mark VmHWM is read where it exists."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def county_path(args) -> Path:
    if getattr(args, "gpkg", None):
        return Path(args.gpkg)
    size = args.size or DEFAULT_SIZE
    out = Path(tempfile.gettempdir()) / f"huijiao_bench_county_{size}_{args.seed}"
    path = out / "county.gpkg"
    if not path.exists():
        from tests.datagen.__main__ import main

        main(
            ["--out", str(out), "--size", str(size), "--seed", str(args.seed), "--formats", "gpkg", "--quiet"]
        )
    return path


def open_layers(path: Path) -> dict[str, QgsVectorLayer]:
    layers = {}
    for role, name in LAYERS.items():
        layer = QgsVectorLayer(f"{path}|layername={name}", name, "ogr")
        if layer.isValid():
            layers[role] = layer
    return layers


class Native:
    """The native chains; every step writes a memory layer, geometry checks off (the data is valid)."""

    def __init__(self, layers):
        self.layers = layers
        self.context = QgsProcessingContext()
        self.context.setInvalidGeometryCheck(QgsFeatureRequest.InvalidGeometryCheck.GeometryNoCheck)
        self.feedback = QgsProcessingFeedback()
        self.count: int | None = None  # pieces reported by the current chain (None: no piece output)

    def run(self, alg, **params):
        import processing

        params.setdefault("OUTPUT", "TEMPORARY_OUTPUT")
        out = processing.run(alg, params, context=self.context, feedback=self.feedback)
        return out.get("OUTPUT", out)

    def layer(self, value):
        if isinstance(value, str):
            return self.context.getMapLayer(value) or QgsVectorLayer(value)
        return value

    def extract(self, role, expression):
        return self.run("native:extractbyexpression", INPUT=self.layers[role], EXPRESSION=expression)

    def intersection(self, a, b):
        return self.run("native:intersection", INPUT=a, OVERLAY=b)

    def difference(self, a, b):
        return self.run("native:difference", INPUT=a, OVERLAY=b)

    def dissolve(self, a):
        return self.run("native:dissolve", INPUT=a)

    def singles(self, a):
        return self.run("native:multiparttosingleparts", INPUT=a)

    def pieces(self, a):
        """Single parts that pass the sliver rule (domain.md §6, the profile's thresholds): the pieces the
        preset reports. Without this step a chain answers a different question (thousands of slivers from
        digitising noise)."""
        kept = self.run("native:extractbyexpression", INPUT=self.singles(a), EXPRESSION=SLIVER_RULE)
        self.count = (self.count or 0) + self.layer(kept).featureCount()
        return kept

    # --- one chain per preset -------------------------------------------------------------------------------
    def hsfnotinpbf(self):
        farm = self.extract("DLTB", FARM)
        return self.pieces(self.difference(self.intersection(self.layers["HSF"], farm), self.layers["PBF"]))

    def pbfnongrain(self):
        sel = self.extract("DLTB", f"({FARM} AND ZZSXDM IN ('FLS','WG')) OR NOT ({FARM})")
        return self.pieces(self.intersection(self.layers["PBF"], sel))

    def pbfexitcandidates(self):
        pbf = self.layers["PBF"]
        for zone in (
            self.layers["STBHHX"],
            self.layers["YZGHQ"],
            self.extract("TRHJZL", "LB = '严格管控类'"),
            self.extract("DLTB", FRAGILE),
            self.extract("DLTB", "FRDBS = '1'"),
        ):
            self.pieces(self.intersection(pbf, self.dissolve(zone)))
        # 插花 outside the own township: the PBF parts in another township's XZQ polygon
        parts = self.intersection(pbf, self.layers["XZQ"])
        self.run("native:extractbyexpression", INPUT=parts, EXPRESSION="left(ZLDWDM, 9) <> left(XZQDM_2, 9)")
        return self.contiguity()

    def farmlandnonagri(self):
        farm = self.extract("DLTB", FARM)
        self.pieces(self.intersection(farm, self.extract("DLTB_N1", CONSTRUCTION)))
        return self.pieces(self.intersection(farm, self.extract("JCTB", TBLX)))

    def hsfcoverage(self):
        pbf, hsf = self.layers["PBF"], self.layers["HSF"]
        self.pieces(self.intersection(pbf, self.dissolve(hsf)))
        self.pieces(self.difference(pbf, hsf))
        return self.pieces(self.intersection(hsf, self.extract("DLTB", f"NOT ({FARM})")))

    def contiguity(self):
        buffered = self.run("native:buffer", INPUT=self.layers["PBF"], DISTANCE=0.25)
        return self.singles(self.dissolve(buffered))

    def versiondiff(self):
        fields = ["DLBM", "ZZSXDM", "TBXHDM", "GDLX", "GDPDJB", "FRDBS", "CZCSXM", "QSXZ", "QSDWDM", "ZLDWDM"]
        return self.run(
            "native:detectvectorchanges",
            ORIGINAL=self.layers["DLTB"],
            REVISED=self.layers["DLTB_N1"],
            COMPARE_ATTRIBUTES=fields,
            MATCH_TYPE=1,
            UNCHANGED="TEMPORARY_OUTPUT",
            ADDED="TEMPORARY_OUTPUT",
            DELETED="TEMPORARY_OUTPUT",
        )

    def boundarycompare(self):
        a, b = self.layers["A"], self.layers["B"]
        self.pieces(self.difference(a, b))
        self.pieces(self.difference(b, a))
        return self.pieces(self.intersection(a, b))


class _Rows(list):
    """Rows for the runner's table, also echoed to stderr as they come (a 250k run takes a while)."""

    def append(self, row):
        print(
            f"  compare: {row['metric']}: {row['value']:.3f} {row.get('unit', '')}",
            file=sys.stderr,
            flush=True,
        )
        super().append(row)


def timed(func):
    gc.collect()
    started = time.perf_counter()
    value = func()
    return time.perf_counter() - started, value


def run(args):
    path = county_path(args)
    layers = open_layers(path)
    dltb_count = layers["DLTB"].featureCount()
    rows = _Rows([{"metric": "county DLTB polygons", "value": dltb_count, "unit": ""}])
    presets = list(SUITE_ORDER)
    wanted = [p.strip() for p in os.environ.get("HUIJIAO_BENCH_PRESETS", "").split(",") if p.strip()]
    if wanted:
        unknown = sorted(set(wanted) - set(presets))
        if unknown:
            raise SystemExit(f"unknown preset(s) in HUIJIAO_BENCH_PRESETS: {', '.join(unknown)}")
        presets = [p for p in presets if p in wanted]
    ours = {}
    for preset in presets:
        seconds, result = timed(lambda p=preset: run_preset(p, CountyOverlay(layers)))
        ours[preset] = seconds
        rows.append(
            {"metric": f"{preset}: ours ({len(result.pieces)} pieces)", "value": seconds, "unit": "s"}
        )
        # dropped before the next run, as the native chains drop theirs (a live result of 90 000 pieces
        # slows the next run by up to 20 %)
        result = None
    suite_s, _ = timed(lambda: [run_preset(p, ov) for ov in [CountyOverlay(layers)] for p in presets])
    rows.append({"metric": "suite: ours (one overlay)", "value": suite_s, "unit": "s"})
    rows.append({"metric": "peak RSS of our runs (target < 2048)", "value": peak_mb(), "unit": "MB"})
    native = native_chains(path, presets)
    native_total = 0.0
    for preset in presets:
        seconds, count = native["seconds"][preset], native["counts"][preset]
        native_total += seconds
        label = f"{preset}: native chain" + (f" ({count} pieces)" if count is not None else "")
        rows.append({"metric": label, "value": seconds, "unit": "s"})
        rows.append({"metric": f"{preset}: ratio native/ours (target ≥ 5)", "value": seconds / ours[preset]})
    rows.append({"metric": "suite: native chains added up", "value": native_total, "unit": "s"})
    rows.append({"metric": "suite: ratio native/ours (target ≥ 10)", "value": native_total / suite_s})
    rows.append({"metric": "peak RSS of the native chains", "value": native["peak_mb"], "unit": "MB"})
    return rows


def native_chains(path: Path, presets: list[str]) -> dict:
    """The native chains' figures: measured in a child process (same machine, same run, their memory their
    own), or, with ``HUIJIAO_BENCH_NATIVE`` naming a JSON file, read from an earlier pass of the same session
    (a before/after comparison measures the chains, which do not depend on our code, once: the pass that
    measures them writes that file when it does not exist yet)."""
    saved = Path(os.environ["HUIJIAO_BENCH_NATIVE"]) if os.environ.get("HUIJIAO_BENCH_NATIVE") else None
    if saved is not None and saved.exists():
        native = json.loads(saved.read_text(encoding="utf-8"))
        if all(p in native["seconds"] for p in presets):
            print(f"  compare: native chains read from {saved}", file=sys.stderr, flush=True)
            return native
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_compare", str(path), ",".join(presets)],
        cwd=ROOT,
        stdout=subprocess.PIPE,  # its progress lines go to our stderr
        text=True,
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"native chains failed (exit status {child.returncode})")
    native = json.loads(child.stdout.strip().splitlines()[-1])
    if saved is not None:
        saved.write_text(json.dumps(native), encoding="utf-8")
    return native


def run_natives(path: Path, presets: list[str]) -> dict:
    """The native chains of ``presets`` on the county ``path``, one after the other (child process)."""
    if QGIS_PLUGINS not in sys.path:
        sys.path.append(QGIS_PLUGINS)  # QGIS's own "processing" package
    from processing.core.Processing import Processing

    Processing.initialize()
    native = Native(open_layers(path))
    seconds: dict[str, float] = {}
    counts: dict[str, int | None] = {}
    for preset in presets:
        native.count = None
        seconds[preset], _ = timed(getattr(native, preset))
        counts[preset] = native.count
        print(f"  compare: {preset}: native chain: {seconds[preset]:.3f} s", file=sys.stderr, flush=True)
        native.context = QgsProcessingContext()  # drop the temporary layers of this chain
        native.context.setInvalidGeometryCheck(QgsFeatureRequest.InvalidGeometryCheck.GeometryNoCheck)
    return {"seconds": seconds, "counts": counts, "peak_mb": peak_mb()}


if __name__ == "__main__":  # python -m benchmarks.bench_compare COUNTY.gpkg preset,preset…
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    result = run_natives(Path(sys.argv[1]), sys.argv[2].split(","))
    print(json.dumps(result), flush=True)
    os._exit(0)  # no exitQgis: the chains' layers are still referenced by Python objects
