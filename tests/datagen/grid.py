"""Raster-of-cells machinery: a jittered quadrilateral lattice, smooth noise fields, connected components and
vectorised ring tracing.

Every polygon layer of the synthetic county is a set of lattice cells. Neighbouring cells share their corner
vertices, so any labelling of the cells traces to polygons that form a perfect planar partition (no gaps, no
overlaps, identical shared vertices). Rings are traced with numpy only (no GEOS overlay), which keeps the
generator fast at 500k polygons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


@dataclass
class Lattice:
    """(ny+1) x (nx+1) jittered vertices; cell (j, i) has corners v(i,j), v(i+1,j), v(i+1,j+1), v(i,j+1)."""

    nx: int
    ny: int
    x: np.ndarray  # float64, flat, length (nx+1)*(ny+1)
    y: np.ndarray

    @property
    def n_vertices(self) -> int:
        return (self.nx + 1) * (self.ny + 1)


def make_lattice(rng: np.random.Generator, wx: np.ndarray, wy: np.ndarray, x0: float, y0: float) -> Lattice:
    """Rectilinear lattice (column widths wx, row heights wy, metres) with jittered vertices.

    Each vertex moves by up to 0.3 × the smaller adjacent spacing per axis, so the vertex boxes of adjacent
    rows/columns stay 0.4 spacing apart and every cell stays a simple, positively oriented quad.
    """
    nx, ny = wx.size, wy.size
    gx = x0 + np.concatenate([[0.0], np.cumsum(wx)])
    gy = y0 + np.concatenate([[0.0], np.cumsum(wy)])
    bx = 0.3 * np.minimum(np.concatenate([wx[:1], wx]), np.concatenate([wx, wx[-1:]]))
    by = 0.3 * np.minimum(np.concatenate([wy[:1], wy]), np.concatenate([wy, wy[-1:]]))
    jx = rng.uniform(-1.0, 1.0, size=(ny + 1, nx + 1)) * bx[None, :]
    jy = rng.uniform(-1.0, 1.0, size=(ny + 1, nx + 1)) * by[:, None]
    # coordinates are rounded to 1 mm so that every format stores identical numbers
    x = np.round(gx[None, :] + jx, 3).ravel()
    y = np.round(gy[:, None] + jy, 3).ravel()
    return Lattice(nx, ny, x, y)


def smooth_field(rng: np.random.Generator, ny: int, nx: int, scale: float, octaves: int = 2) -> np.ndarray:
    """Smooth noise in [0, 1]-ish with features of about `scale` cells (coarse random grid, cubic zoom)."""
    out = np.zeros((ny, nx), dtype=np.float64)
    amp = 1.0
    for _ in range(octaves):
        cy = max(2, int(np.ceil(ny / scale)) + 3)
        cx = max(2, int(np.ceil(nx / scale)) + 3)
        coarse = rng.standard_normal((cy, cx))
        zoomed = ndimage.zoom(coarse, (ny / (cy - 3), nx / (cx - 3)), order=3, mode="nearest")
        out += amp * zoomed[:ny, :nx]
        amp *= 0.5
        scale /= 2.5
    lo, hi = np.percentile(out, [0.5, 99.5])
    return np.clip((out - lo) / max(hi - lo, 1e-9), 0.0, 1.0)


def components(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of equal non-negative keys; returns (component grid, -1 outside; count).

    Component ids are numbered in raster order of their first cell (deterministic).
    """
    ny, nx = keys.shape
    flat = keys.ravel()
    idx = np.arange(flat.size, dtype=np.int64).reshape(ny, nx)
    inside = flat >= 0
    h = (keys[:, :-1] == keys[:, 1:]) & (keys[:, :-1] >= 0)
    v = (keys[:-1, :] == keys[1:, :]) & (keys[:-1, :] >= 0)
    a = np.concatenate([idx[:, :-1][h], idx[:-1, :][v]])
    b = np.concatenate([idx[:, 1:][h], idx[1:, :][v]])
    n = flat.size
    graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    _, lab = connected_components(graph, directed=False)
    lab = lab.astype(np.int64)
    lab[~inside] = -1
    # renumber in raster order of first appearance
    valid = lab[inside]
    uniq, first = np.unique(valid, return_index=True)
    order = np.argsort(first, kind="stable")
    remap = np.empty(uniq.size, dtype=np.int64)
    remap[order] = np.arange(uniq.size)
    out = np.full(flat.size, -1, dtype=np.int64)
    out[inside] = remap[np.searchsorted(uniq, valid)]
    return out.reshape(ny, nx), int(uniq.size)


def pinch_cells(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cells to relabel so that no label touches itself only diagonally at a vertex (a "pinch").

    Returns (rows, cols, source_rows, source_cols): cell (rows, cols) should take the source cell's value.
    -1 (outside) counts as a label, so the outline is pinch-free too.
    """
    a = grid[:-1, :-1]
    b = grid[:-1, 1:]
    c = grid[1:, :-1]
    d = grid[1:, 1:]
    p1 = (a == d) & (b != a) & (c != a)
    p2 = (b == c) & (a != b) & (d != b) & ~p1
    j1, i1 = np.nonzero(p1)
    j2, i2 = np.nonzero(p2)
    rows = np.concatenate([j1, j2])
    cols = np.concatenate([i1 + 1, i2])
    srows = np.concatenate([j1, j2])
    scols = np.concatenate([i1, i2 + 1])
    return rows, cols, srows, scols


def fix_pinches(grid: np.ndarray, max_iter: int = 50) -> np.ndarray:
    """Relabel cells until `grid` has no diagonal-only contacts (every traced ring is then simple)."""
    g = grid.copy()
    for _ in range(max_iter):
        r, c, sr, sc = pinch_cells(g)
        if r.size == 0:
            return g
        g[r, c] = g[sr, sc]
    raise RuntimeError("pinch removal did not converge")


def adjacency_pairs(comp: np.ndarray) -> np.ndarray:
    """Unique (a, b) pairs (a < b) of 4-adjacent different non-negative labels, with shared edge count.

    Returns an int64 array of shape (k, 3): a, b, number of shared cell edges.
    """
    pairs = []
    for p, q in ((comp[:, :-1], comp[:, 1:]), (comp[:-1, :], comp[1:, :])):
        m = (p != q) & (p >= 0) & (q >= 0)
        a = p[m]
        b = q[m]
        pairs.append(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1))
    allp = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)
    if allp.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    uniq, counts = np.unique(allp, axis=0, return_counts=True)
    return np.concatenate([uniq, counts[:, None]], axis=1)


@dataclass
class Rings:
    """Traced rings of a labelled grid. Vertex ids refer to the lattice; rings are closed (first == last)."""

    vertex_ids: np.ndarray  # concatenated, each ring closed
    offsets: np.ndarray  # ring r = vertex_ids[offsets[r]:offsets[r+1]]
    label: np.ndarray  # component label per ring
    is_outer: np.ndarray  # bool per ring
    # per label: rings label_offsets[c]:label_offsets[c+1] (outer first, then holes)
    label_offsets: np.ndarray


def trace_rings(comp: np.ndarray, n_labels: int) -> Rings:
    """Trace the boundary rings of every label of `comp` (labels 0..n_labels-1, each 4-connected, -1 = none).

    `comp` must be pinch-free (see fix_pinches): then every vertex has at most one outgoing boundary edge per
    label and all rings are simple, holes never touch shells. Edges are oriented with the label on the left,
    so outer rings are counter-clockwise and holes clockwise. Each ring starts at its smallest vertex id.
    """
    ny, nx = comp.shape
    nvx = nx + 1
    nv = nvx * (ny + 1)
    starts, ends, dirs, labs = [], [], [], []

    # vertical cell edges: between cell (j, i-1) and (j, i), i = 0..nx
    lp = np.pad(comp, ((0, 0), (1, 1)), constant_values=-1)
    left, right = lp[:, :-1], lp[:, 1:]
    jj, ii = np.nonzero((left != right) & (right >= 0))
    starts.append((jj + 1) * nvx + ii)  # right cell: downward edge on its left side
    ends.append(jj * nvx + ii)
    dirs.append(np.full(jj.size, 3, dtype=np.int8))
    labs.append(right[jj, ii])
    jj, ii = np.nonzero((left != right) & (left >= 0))
    starts.append(jj * nvx + ii)  # left cell: upward edge on its right side
    ends.append((jj + 1) * nvx + ii)
    dirs.append(np.full(jj.size, 1, dtype=np.int8))
    labs.append(left[jj, ii])
    # horizontal cell edges: between cell (j-1, i) and (j, i), j = 0..ny
    lq = np.pad(comp, ((1, 1), (0, 0)), constant_values=-1)
    below, above = lq[:-1, :], lq[1:, :]
    jj, ii = np.nonzero((below != above) & (above >= 0))
    starts.append(jj * nvx + ii)  # above cell: eastward edge on its bottom side
    ends.append(jj * nvx + ii + 1)
    dirs.append(np.full(jj.size, 0, dtype=np.int8))
    labs.append(above[jj, ii])
    jj, ii = np.nonzero((below != above) & (below >= 0))
    starts.append(jj * nvx + ii + 1)  # below cell: westward edge on its top side
    ends.append(jj * nvx + ii)
    dirs.append(np.full(jj.size, 2, dtype=np.int8))
    labs.append(below[jj, ii])

    start = np.concatenate(starts).astype(np.int64)
    end = np.concatenate(ends).astype(np.int64)
    d = np.concatenate(dirs)
    lab = np.concatenate(labs).astype(np.int64)
    ne = start.size
    if ne == 0:
        z = np.zeros(0, dtype=np.int64)
        return Rings(z, np.zeros(1, dtype=np.int64), z, np.zeros(0, bool), np.zeros(n_labels + 1, np.int64))

    key_s = lab * nv + start
    key_e = lab * nv + end
    order = np.argsort(key_s, kind="stable")
    sk = key_s[order]
    lo = np.searchsorted(sk, key_e, side="left")
    hi = np.searchsorted(sk, key_e, side="right")
    c0 = order[lo]
    nxt = c0.copy()
    two = (hi - lo) == 2
    if two.any():
        c1 = order[np.minimum(lo + 1, ne - 1)]
        # relative turn (0 straight, 1 left, 2 u-turn, 3 right) -> preference rank
        pref = np.array([1, 0, 3, 2], dtype=np.int8)
        r0 = pref[(d[c0] - d) % 4]
        r1 = pref[(d[c1] - d) % 4]
        pick1 = two & (r1 < r0)
        nxt[pick1] = c1[pick1]

    # cycles of the permutation nxt
    g = coo_matrix((np.ones(ne, dtype=np.int8), (np.arange(ne), nxt)), shape=(ne, ne)).tocsr()
    n_rings, ring = connected_components(g, directed=True, connection="weak")
    ring = ring.astype(np.int64)
    # head of each ring = edge with the smallest start vertex
    o = np.lexsort((start, ring))
    first = np.ones(ne, dtype=bool)
    first[1:] = ring[o][1:] != ring[o][:-1]
    head = np.zeros(n_rings, dtype=np.int64)
    head[ring[o][first]] = o[first]
    is_head = np.zeros(ne, dtype=bool)
    is_head[head] = True
    # list ranking by pointer jumping: dist = number of steps from an edge forward to its ring head
    dist = np.where(is_head, 0, 1).astype(np.int64)
    ptr = np.where(is_head, np.arange(ne), nxt)
    while True:
        pp = ptr[ptr]
        if np.array_equal(pp, ptr):
            break
        dist = dist + dist[ptr]
        ptr = pp
    ring_len = np.bincount(ring, minlength=n_rings)
    pos = (ring_len[ring] - dist) % ring_len[ring]
    # ring ordering: by label, outer first, then by head vertex; compute signed area to know outer/holes
    seq = np.lexsort((pos, ring))
    # ring offsets in seq
    rstart = np.zeros(n_rings + 1, dtype=np.int64)
    rstart[1:] = np.cumsum(ring_len)
    ring_label = lab[head]
    return _assemble(start, seq, rstart, ring_label, head_vertex=start[head], n_labels=n_labels, nvx=nvx)


def _assemble(
    start: np.ndarray,
    seq: np.ndarray,
    rstart: np.ndarray,
    ring_label: np.ndarray,
    head_vertex: np.ndarray,
    n_labels: int,
    nvx: int,
) -> Rings:
    n_rings = ring_label.size
    verts = start[seq]  # ring r occupies verts[rstart[r]:rstart[r+1]] (not closed yet)
    # orientation in lattice index space equals orientation in map space (the lattice is never folded)
    vi = (verts % nvx).astype(np.float64)
    vj = (verts // nvx).astype(np.float64)
    nxt_idx = np.arange(verts.size) + 1
    last = rstart[1:] - 1
    nxt_idx[last] = rstart[:-1]
    cross = vi * vj[nxt_idx] - vi[nxt_idx] * vj
    area2 = np.add.reduceat(cross, rstart[:-1]) if verts.size else np.zeros(0)
    is_outer = area2 > 0
    order = np.lexsort((head_vertex, ~is_outer, ring_label))
    # build closed rings in the final order
    lens = rstart[1:] - rstart[:-1]
    new_lens = lens[order] + 1
    offsets = np.zeros(n_rings + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(new_lens)
    out = np.empty(offsets[-1], dtype=np.int64)
    # gather: for each output position, source index
    ring_of_pos = np.repeat(np.arange(n_rings), new_lens)
    k = np.arange(offsets[-1]) - offsets[ring_of_pos]
    src_ring = order[ring_of_pos]
    k = np.where(k == lens[src_ring], 0, k)  # closing vertex = first
    out[:] = verts[rstart[src_ring] + k]
    labels = ring_label[order]
    label_offsets = np.searchsorted(labels, np.arange(n_labels + 1), side="left").astype(np.int64)
    return Rings(out, offsets, labels, is_outer[order], label_offsets)


def ring_signed_areas(rings: Rings, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Planar signed area per ring (shoelace on closed rings); coordinates shifted for precision."""
    vx = x[rings.vertex_ids]
    vy = y[rings.vertex_ids]
    if vx.size == 0:
        return np.zeros(0)
    ox, oy = float(vx.mean()), float(vy.mean())
    vx = vx - ox
    vy = vy - oy
    cross = np.zeros(vx.size)
    cross[:-1] = vx[:-1] * vy[1:] - vx[1:] * vy[:-1]
    # zero the term that would connect one ring to the next
    cross[rings.offsets[1:] - 1] = 0.0
    return 0.5 * np.add.reduceat(cross, rings.offsets[:-1])


def label_areas(rings: Rings, ring_values: np.ndarray, n_labels: int) -> np.ndarray:
    """Sum per label of per-ring signed values (outer positive, holes negative)."""
    return np.bincount(rings.label, weights=ring_values, minlength=n_labels)
