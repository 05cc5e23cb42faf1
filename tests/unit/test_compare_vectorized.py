"""The vectorised GEOS helpers of the comparison engine (core/compare/vectorized.py), on small hand-made
geometries whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from huijiao_plugin.core.compare import vectorized

if not vectorized.enabled():
    from tests.conftest import VECTORISED_MISSING

    pytest.skip(VECTORISED_MISSING, allow_module_level=True)

import shapely  # noqa: E402  (present: checked above)


def box(x0, y0, x1, y1):
    return shapely.box(x0, y0, x1, y1)


def geoms(*items):
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def no_cancel():
    pass


def test_cover_finder_answers():
    by = geoms(box(0, 0, 100, 100), box(100, 0, 200, 100), box(200, 0, 300, 100))
    bowtie = shapely.from_wkt("POLYGON((0 0, 10 10, 10 0, 0 10, 0 0))")
    finder = vectorized.CoverFinder(lambda: by, r=0.5, segments=2)
    answer, valid, by_valid, cores = finder.decide(
        geoms(
            box(0.4, -0.4, 100.4, 99.6),  # patch 0 moved by 0.4 m: covered up to the noise
            box(103, 0, 200, 100),  # 3 m short of patch 1 on one side: still inside patch 1
            box(95, 0, 205, 100),  # 5 m over both neighbours of patch 1: not covered
            box(10, 10, 10.8, 60),  # 0.8 m wide: thinner than the noise everywhere
            bowtie,  # invalid: left to the per-feature path, which repairs it
        )
    )
    assert answer.tolist() == [0, 1, vectorized.NOT_COVERED, vectorized.THIN, vectorized.UNDECIDED]
    assert valid.tolist() == [True, True, True, True, False]
    assert set(by_valid.tolist()) == {0, 1}
    # the erosions of the valid ones, as WKB for the engine's cache (None: nothing left)
    assert cores[3] is None and shapely.from_wkb(cores[0]).area == pytest.approx(99.0 * 99.0)


def test_cover_all_in_slices_on_two_threads_matches_one_call():
    rng = np.random.default_rng(5)
    cells = [box(x, y, x + 10, y + 10) for x in range(0, 1000, 10) for y in range(0, 500, 10)]
    shifted = [shapely.affinity.translate(c, *rng.uniform(-0.45, 0.45, 2)) for c in cells]
    by = geoms(*cells)
    one = vectorized.CoverFinder(lambda: by, 0.5, 2).decide(geoms(*shifted))[0]
    many = vectorized.cover_all(geoms(*shifted), vectorized.CoverFinder(lambda: by, 0.5, 2), 2, no_cancel)[0]
    assert len(shifted) > vectorized._SLICE  # more than one slice
    assert many.tolist() == one.tolist() == list(range(len(cells)))


def test_wkb_with_trailing_zero_bytes_survives():
    # the last coordinate is 0.0: its WKB ends in eight zero bytes, which numpy's fixed-width bytes drop
    square = shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 0)])
    wkbs = vectorized.to_wkbs(geoms(square, shapely.Polygon(), None))
    assert wkbs[0].endswith(b"\x00" * 8) and wkbs[1] is None and wkbs[2] is None
    # slices of results are joined: still whole WKB
    joined = np.concatenate([vectorized.to_wkbs(geoms(square)), vectorized.to_wkbs(geoms(square))])
    assert joined[0] == joined[1] == shapely.to_wkb(square)
    back = vectorized.read_wkb([*joined, *wkbs[1:], b"", b"not wkb"])
    assert back[0].equals(square) and back[1].equals(square)
    assert all(g is None for g in back[2:])


def test_pair_pieces_whole_noise_and_overlap():
    a = geoms(box(0, 0, 100, 100))
    b = geoms(
        box(10, 10, 20, 20),  # inside a: the piece is b itself (None)
        box(99.8, 0, 200, 100),  # overlaps a by 0.2 m: noise
        box(50, 50, 150, 150),  # a real overlap
    )
    at, bt = np.zeros(3, dtype=np.int64), np.arange(3)

    def eroded(g):
        return lambda p: shapely.buffer(g[p], -0.5, quad_segs=2)

    found = vectorized.pair_pieces(a, b, at, bt, eroded(a), eroded(b))
    assert [(p, q) for p, q, _ in found] == [(0, 0), (0, 2)]
    assert found[0][2] is None and shapely.from_wkb(found[1][2]).area == pytest.approx(2500.0)
    # without the noise test the sliver is a piece too
    found = vectorized.pair_pieces(a, b, at, bt, None, None)
    assert [(p, q) for p, q, _ in found] == [(0, 0), (0, 1), (0, 2)]
    assert shapely.from_wkb(found[1][2]).area == pytest.approx(20.0)
    # the other way round: a inside b gives a itself
    found = vectorized.pair_pieces(b, a, np.arange(3), np.zeros(3, dtype=np.int64), None, None)
    assert [w for _, _, w in found][0] == vectorized.A_WHOLE
    assert shapely.from_wkb(found[2][2]).area == pytest.approx(2500.0)


def test_near_pairs_within_tolerance():
    g = geoms(box(0, 0, 10, 10), box(10, 0, 20, 10), box(25, 0, 30, 10), box(100, 0, 110, 10))
    touching = vectorized.near_pairs(g, 0.0, 2, no_cancel)
    assert sorted(zip(*touching.tolist())) == [(0, 1)]
    near = vectorized.near_pairs(g, 5.0, 2, no_cancel)
    assert sorted(zip(*near.tolist())) == [(0, 1), (1, 2)]


def test_switching_off():
    assert vectorized.enabled()
    try:
        assert vectorized.enabled(False) is False
    finally:
        vectorized.enabled(True)
    assert vectorized.enabled()
