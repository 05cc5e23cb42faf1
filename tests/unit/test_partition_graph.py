"""The graph steps of the partition (partition.py) on hand-made graphs: connected components, and which row
reports each kept sliver. Expected values are worked out by hand or by a plain breadth-first search here."""

from __future__ import annotations

import random

import numpy as np
import pytest

from huijiao_plugin.core.compare.partition import _components, _hosts


def bfs_components(n, edges):  # noqa: ANN001, ANN201
    near = {u: set() for u in range(n)}
    for a, b in edges:
        near[a].add(b)
        near[b].add(a)
    label = [-1] * n
    for start in range(n):
        if label[start] < 0:
            queue, label[start] = [start], start
            while queue:
                u = queue.pop()
                for v in near[u]:
                    if label[v] < 0:
                        label[v] = start
                        queue.append(v)
    return label


@pytest.mark.parametrize("seed", range(20))
def test_components_are_those_of_a_breadth_first_search(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 300)
    edges = [(rng.randrange(n), rng.randrange(n)) for _ in range(rng.randint(0, 2 * n))]
    a = np.asarray([e[0] for e in edges], dtype=np.int64)
    b = np.asarray([e[1] for e in edges], dtype=np.int64)
    # the label of a node is the smallest node of its component, as the search above starts from it
    assert _components(n, a, b).tolist() == bfs_components(n, edges)


def test_a_chain_is_one_component_whatever_the_order_of_its_edges():
    n = 1000
    order = list(range(n - 1))
    random.Random(1).shuffle(order)
    a = np.asarray(order, dtype=np.int64)
    assert _components(n, a, a + 1).tolist() == [0] * n


def test_kept_slivers_join_the_first_real_piece_they_touch():
    # units 0..7 of pieces 10..17; 0 and 3 pass the sliver rule alone, 1-2 are slivers kept between them,
    # 4 is noise, 5-6 are slivers kept together with no real piece beside them, 7 a sliver touching only 3
    piece = np.arange(10, 18)
    passes = np.array([True, False, False, True, False, False, False, False])
    verdict = np.array([True, True, True, True, False, True, True, True])
    edges = [(1, 0), (1, 2), (2, 3), (3, 4), (5, 6), (7, 3)]
    ju = np.asarray([e[0] for e in edges])
    jv = np.asarray([e[1] for e in edges])
    host = _hosts(piece, passes, verdict, ju, jv)
    assert host.tolist() == [10, 10, 10, 13, -1, 15, 15, 13]
