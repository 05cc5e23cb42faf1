"""Property: on random small layouts (overlaps, holes, multipolygons, slivers, geometry outside the county)
the categories of boundarycompare, hsfcoverage and hsfnotinpbf add up to the documented union of the inputs,
at tolerance 0 and at the default tolerances. Expected areas: shapely + pyproj in the test."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from huijiao_plugin.compat import vectorised_shapely

if vectorised_shapely()[0] is None:  # the independent expectations are computed with shapely 2
    from tests.conftest import VECTORISED_MISSING

    pytest.skip(VECTORISED_MISSING, allow_module_level=True)

import shapely  # noqa: E402
from compare_support import DLTB_FIELDS, geod_area, rect, shape, write_layer  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from qgis.core import QgsGeometry  # noqa: E402

from huijiao_plugin.compat import FieldType  # noqa: E402
from huijiao_plugin.core.compare.engine import CountyOverlay  # noqa: E402
from huijiao_plugin.core.compare.presets import CompareOptions, run_preset  # noqa: E402

FARM = ("0103", "0103", "0201", "0702")  # DLBM drawn per cell; 0103 is farmland
EXACT = CompareOptions(min_area=0.0, min_width=0.0, noise_width=0.0)

# a shape: (kind, x, y, w, h) in m on a 300 x 200 m county of 6 DLTB cells; x may run past the edge
shapes_ = st.tuples(
    st.sampled_from(["rect", "hole", "multi", "sliver"]),
    st.floats(-40, 300),
    st.floats(-20, 180),
    st.floats(5, 120),
    st.floats(5, 90),
)


def build(kind: str, x: float, y: float, w: float, h: float) -> QgsGeometry:
    if kind == "hole":  # a ring: the rectangle minus its middle
        return rect(x, y, x + w + 4, y + h + 4).difference(rect(x + 2, y + 2, x + w + 2, y + h + 2))
    if kind == "multi":
        return QgsGeometry.collectGeometry([rect(x, y, x + w / 3, y + h), rect(x + w / 2, y, x + w, y + h)])
    if kind == "sliver":  # 0.3 m wide: noise at the default tolerances
        return rect(x, y, x + w, y + 0.3)
    return rect(x, y, x + w, y + h)


def county(folder: Path, dlbm: list[str], pbf: list, hsf: list) -> dict:  # noqa: ANN001
    cells = [(rect(100 * c, 100 * r, 100 * (c + 1), 100 * (r + 1)), c, r) for r in range(2) for c in range(3)]
    dltb = [
        (g, {"BSM": f"D{k}", "DLBM": dlbm[k], "ZLDWDM": "6101020010010000000", "SJNF": 2023})
        for k, (g, _c, _r) in enumerate(cells)
    ]
    path = folder / "c.gpkg"
    fields = [("BSM", FieldType.String), ("XMBH", FieldType.String)]
    return {
        "DLTB": write_layer(path, "DLTB", DLTB_FIELDS, dltb),
        "PBF": write_layer(path, "PBF", fields, [(build(*s), {"BSM": f"P{k}"}) for k, s in enumerate(pbf)]),
        "HSF": write_layer(path, "HSF", fields, [(build(*s), {"XMBH": f"H{k}"}) for k, s in enumerate(hsf)]),
    }


def documented(layers: dict) -> dict:
    def u(layer, keep=None):  # noqa: ANN001, ANN202
        return shapely.union_all(
            [shape(f.geometry()) for f in layer.getFeatures() if keep is None or keep(f)]
        )

    pbf, hsf = u(layers["PBF"]), u(layers["HSF"])
    farm = u(layers["DLTB"], lambda f: f["DLBM"] == "0103")
    return {
        "boundarycompare": pbf.union(farm),  # B = DLTB: its farmland by default
        "hsfcoverage": pbf.union(hsf.difference(farm)),
        "hsfnotinpbf": hsf.intersection(farm).difference(pbf),
    }


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,  # no example database in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    dlbm=st.lists(st.sampled_from(FARM), min_size=6, max_size=6),
    pbf=st.lists(shapes_, min_size=1, max_size=4),
    hsf=st.lists(shapes_, min_size=1, max_size=4),
)
def test_categories_add_up_to_the_documented_union(qgis_processing, dlbm, pbf, hsf):
    with tempfile.TemporaryDirectory() as tmp:
        layers = county(Path(tmp), dlbm, pbf, hsf)
        expected = documented(layers)
        for preset_id, union in expected.items():
            roles = {"A": layers["PBF"], "B": layers["DLTB"]} if preset_id == "boundarycompare" else layers
            want = geod_area(union)
            for options in (EXACT, CompareOptions()):
                result = run_preset(preset_id, CountyOverlay(dict(roles)), options)
                got = geod_area([shape(p.geom) for p in result.pieces])
                assert abs(got - want) <= 1e-9 * want + 1e-6, (preset_id, options, got, want)
        layers.clear()
