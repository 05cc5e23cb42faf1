"""The synthetic county as a grid of lattice cells: outline, villages, townships, land classes, patches.

All steps are vectorised numpy/scipy; randomness comes only from the numpy Generator passed in, so the same
seed gives the same county.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from tests.datagen import codes
from tests.datagen.grid import (
    Lattice,
    adjacency_pairs,
    components,
    make_lattice,
    pinch_cells,
    smooth_field,
)

CELL_M = 30.0
FARM_ROAD_M = 9.0  # width of the lattice rows/columns that carry the farm-road grid (1006)
FARM_ROAD_EVERY = (20, 30)  # every 20th row and 30th column
CELLS_PER_PATCH = 9.0
MASK_SHARE = 0.72

# land classes used by the generator (index = value in the class grid)
CLASSES: tuple[str, ...] = (
    "0101",
    "0102",
    "0103",
    "0201",
    "0201K",
    "0204",
    "0301",
    "0301K",
    "0305",
    "0307",
    "0401",
    "0403",
    "0404",
    "05H1",
    "0508",
    "0601",
    "0602",
    "0701",
    "0702",
    "08H1",
    "08H2",
    "0809",
    "0810",
    "09",
    "1001",
    "1003",
    "1004",
    "1005",
    "1006",
    "1101",
    "1103",
    "1104",
    "1104A",
    "1106",
    "1107",
    "1109",
    "1201",
    "1202",
    "1205",
    "1206",
    "1207",
)
CI = {c: i for i, c in enumerate(CLASSES)}
FARMLAND_IDX = np.array([CI[c] for c in codes.FARMLAND])

# average patch size (cells) per class, used for the density of patch seeds
_PATCH_CELLS = {
    "0101": 10,
    "0102": 10,
    "0103": 10,
    "0201": 8,
    "0301": 22,
    "0305": 18,
    "0307": 12,
    "0404": 12,
    "0401": 20,
    "1101": 14,
    "1003": 12,
    "1001": 16,
    "1006": 9,
    "1107": 10,
    "1004": 6,
}


@dataclass
class County:
    """Cell grids of the county. Grids are (ny, nx); -1 = outside the county."""

    rng_seed: int
    lat: Lattice
    cell: float
    elev: np.ndarray
    mountain: np.ndarray  # bool
    settle: np.ndarray  # 0 none, 1 village, 2 town, 3 county seat, 4 industrial park
    river_dist: np.ndarray  # distance in cells to the main river
    vill: np.ndarray  # village id per cell
    town_of_vill: np.ndarray  # township id per village
    village_names: list[str]
    village_codes: list[str]  # 12 digits
    town_names: list[str]
    town_codes: list[str]  # 9 digits
    cls: np.ndarray  # class index per cell (CLASSES)
    farm_road: tuple[int, int] = (0, 0)  # first narrow row and column of the farm-road lattice
    comp: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))  # DLTB patch id per cell
    n_patches: int = 0

    @property
    def mask(self) -> np.ndarray:
        return self.vill >= 0


# ----------------------------------------------------------------------------------------------------
# helpers


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def _quantile_bands(values: np.ndarray, shares: list[float]) -> np.ndarray:
    """Band index per value so that band k holds about shares[k] of the values (low values → band 0)."""
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    cum = np.cumsum(shares) / float(np.sum(shares))
    cuts = np.quantile(values, cum[:-1])
    return np.searchsorted(cuts, values, side="right")


def _draw_line(
    shape: tuple[int, int], p0: tuple[float, float], p1: tuple[float, float], width: int
) -> np.ndarray:
    """Boolean grid of cells on the segment p0→p1 (cell coordinates (i, j)), `width` cells wide."""
    ny, nx = shape
    length = math.hypot(p1[0] - p0[0], p1[1] - p0[1])
    n = max(2, int(length * 3))
    t = np.linspace(0.0, 1.0, n)
    ii = np.floor(p0[0] + (p1[0] - p0[0]) * t).astype(np.int64)
    jj = np.floor(p0[1] + (p1[1] - p0[1]) * t).astype(np.int64)
    # make the strip 4-connected: for every diagonal step also take the cell (j_prev, i_next)
    ii = np.concatenate([ii, ii[1:]])
    jj = np.concatenate([jj, jj[:-1]])
    out = np.zeros(shape, dtype=bool)
    ok = (ii >= 0) & (ii < nx) & (jj >= 0) & (jj < ny)
    out[jj[ok], ii[ok]] = True
    if width > 1:
        out = ndimage.binary_dilation(out, iterations=width // 2)
    return out


def _nearest_seed(
    shape: tuple[int, int], seed_j: np.ndarray, seed_i: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest seed and the distance (cells) for every cell (discrete Voronoi)."""
    grid = np.ones(shape, dtype=bool)
    grid[seed_j, seed_i] = False
    dist, (ij, ii) = ndimage.distance_transform_edt(grid, return_indices=True)
    ids = np.full(shape, -1, dtype=np.int64)
    ids[seed_j, seed_i] = np.arange(seed_j.size)
    return ids[ij, ii], dist


def _unique_names(rng: np.random.Generator, n: int, suffix: str, taken: set[str]) -> list[str]:
    out = []
    heads, tails = codes.NAME_HEAD, codes.NAME_TAIL
    while len(out) < n:
        name = heads[rng.integers(len(heads))] + tails[rng.integers(len(tails))]
        if rng.random() < 0.3:
            name = heads[rng.integers(len(heads))] + name
        name += suffix
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


# ----------------------------------------------------------------------------------------------------
# steps


def build_county(seed: int, size: int) -> County:
    """The whole cell model of a county with about `size` DLTB patches (exactly `size` after make_patches)."""
    rng = np.random.default_rng(seed)
    cells_needed = size * CELLS_PER_PATCH / MASK_SHARE
    nx = max(48, int(math.ceil(math.sqrt(cells_needed * 1.2))))
    ny = max(40, int(math.ceil(cells_needed / nx)))
    # farm roads run along narrow lattice rows and columns
    road_j0 = int(rng.integers(0, FARM_ROAD_EVERY[0]))
    road_i0 = int(rng.integers(0, FARM_ROAD_EVERY[1]))
    wy = np.full(ny, CELL_M)
    wy[road_j0 :: FARM_ROAD_EVERY[0]] = FARM_ROAD_M
    wx = np.full(nx, CELL_M)
    wx[road_i0 :: FARM_ROAD_EVERY[1]] = FARM_ROAD_M
    x0 = codes.CENTER_E - wx.sum() / 2.0
    y0 = codes.CENTER_N - wy.sum() / 2.0
    lat = make_lattice(rng, wx, wy, round(x0), round(y0))
    mask = _outline(rng, ny, nx)
    elev = smooth_field(rng, ny, nx, max(nx, ny) / 3.0, octaves=3)
    mountain = mask & (elev > np.quantile(elev[mask], 0.72))
    vill, town_of_vill = _admin(rng, mask, size)
    county = County(
        rng_seed=seed,
        lat=lat,
        cell=CELL_M,
        elev=elev,
        mountain=mountain,
        settle=np.zeros((ny, nx), np.int8),
        river_dist=np.zeros((ny, nx)),
        vill=vill,
        town_of_vill=town_of_vill,
        village_names=[],
        village_codes=[],
        town_names=[],
        town_codes=[],
        cls=np.full((ny, nx), -1, np.int64),
        farm_road=(road_j0, road_i0),
    )
    _names(rng, county)
    _classes(rng, county)
    make_patches(rng, county, size)
    return county


def _outline(rng: np.random.Generator, ny: int, nx: int) -> np.ndarray:
    jj, ii = np.mgrid[0:ny, 0:nx]
    u = (ii + 0.5) / nx * 2.0 - 1.0
    v = (jj + 0.5) / ny * 2.0 - 1.0
    noise = smooth_field(rng, ny, nx, max(nx, ny) / 4.0, octaves=2)
    score = -(u * u + v * v) + 0.9 * (noise - 0.5)
    score[0, :] = score[-1, :] = score[:, 0] = score[:, -1] = -1e9
    mask = score > np.quantile(score, 1.0 - MASK_SHARE)
    for _ in range(20):
        mask = ndimage.binary_fill_holes(_largest_component(mask))
        g = np.where(mask, 0, -1)
        r, c, sr, sc = pinch_cells(g)
        if r.size == 0:
            break
        mask[r, c] = g[sr, sc] == 0
    return mask


def _admin(rng: np.random.Generator, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Village id per cell (contiguous discrete-Voronoi regions) and the township of every village."""
    ny, nx = mask.shape
    n_vill = int(np.clip(size // 300, 8, 900))
    n_town = int(np.clip(n_vill // 12, 3, 25))
    mj, mi = np.nonzero(mask)
    pick = rng.choice(mj.size, size=n_vill, replace=False)
    near, _ = _nearest_seed(mask.shape, mj[pick], mi[pick])
    keys = np.where(mask, near, -1)
    # pinch-free at village level, then each connected piece becomes a village
    for _ in range(50):
        r, c, sr, sc = pinch_cells(keys)
        if r.size == 0:
            break
        keys[r, c] = keys[sr, sc]
    vill, nv = components(keys)
    # townships: farthest-point sampling of village centroids
    counts = np.bincount(vill[vill >= 0], minlength=nv).astype(float)
    jj, ii = np.nonzero(vill >= 0)
    cj = np.bincount(vill[jj, ii], weights=jj, minlength=nv) / counts
    ci = np.bincount(vill[jj, ii], weights=ii, minlength=nv) / counts
    centers = [int(rng.integers(nv))]
    d = np.hypot(cj - cj[centers[0]], ci - ci[centers[0]])
    while len(centers) < min(n_town, nv):
        k = int(np.argmax(d))
        centers.append(k)
        d = np.minimum(d, np.hypot(cj - cj[k], ci - ci[k]))
    dc = np.stack([np.hypot(cj - cj[k], ci - ci[k]) for k in centers], axis=1)
    town_of_vill = np.argmin(dc, axis=1).astype(np.int64)
    # townships ordered by the raster position of their first village (deterministic numbering)
    # township 0 (the county seat) is the one nearest the centre of the county
    mid = int(np.argmin(np.hypot(cj - cj.mean(), ci - ci.mean())))
    first_v = np.array([np.nonzero(town_of_vill == t)[0].min() for t in range(len(centers))])
    first_v[town_of_vill[mid]] = -1
    order = np.argsort(first_v)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return vill, rank[town_of_vill]


def _names(rng: np.random.Generator, county: County) -> None:
    n_town = int(county.town_of_vill.max()) + 1
    taken: set[str] = set()
    county.town_names = []
    county.town_codes = []
    # township 0 holds the county seat: a 街道 (TTT 001–099); the others are 镇 (TTT 100–199)
    heads = _unique_names(rng, n_town, "", taken)
    for t in range(n_town):
        if t == 0:
            county.town_names.append(heads[t] + "街道")
            county.town_codes.append(codes.COUNTY_CODE + "001")
        else:
            county.town_names.append(heads[t] + "镇")
            county.town_codes.append(codes.COUNTY_CODE + f"{99 + t:03d}")
    county.village_names = [""] * county.town_of_vill.size
    county.village_codes = [""] * county.town_of_vill.size
    vnames = _unique_names(rng, county.town_of_vill.size, "", taken)
    for t in range(n_town):
        members = np.nonzero(county.town_of_vill == t)[0]
        for k, v in enumerate(members):
            if t == 0 and k < max(1, members.size // 4):
                county.village_names[v] = vnames[v] + "社区"
                county.village_codes[v] = county.town_codes[t] + f"{1 + k:03d}"  # 居委会 001–199
            else:
                county.village_names[v] = vnames[v] + "村"
                county.village_codes[v] = county.town_codes[t] + f"{200 + k:03d}"  # 村委会 200–399


def _classes(rng: np.random.Generator, county: County) -> None:
    """Land classes with spatial clustering: plain/mountain zones, settlements, rivers, roads, canals."""
    mask = county.mask
    ny, nx = mask.shape
    cls = county.cls
    mountain = county.mountain
    plain = mask & ~mountain
    area_cells = int(mask.sum())

    def put(where: np.ndarray, code: str) -> None:
        cls[where & mask] = CI[code]

    # plain: cropland with orchards/grass/forest islands
    p1 = smooth_field(rng, ny, nx, 22.0)
    p2 = smooth_field(rng, ny, nx, 30.0)
    p3 = smooth_field(rng, ny, nx, 9.0)
    thr = np.quantile(p1[plain], 0.80) if plain.any() else 1.0
    crop = plain & (p1 <= thr)
    noncrop = plain & (p1 > thr)
    band = _quantile_bands(p2[crop], [0.03, 0.47, 0.50])
    cls[crop] = np.array([CI["0101"], CI["0102"], CI["0103"]])[band]
    nb = _quantile_bands(p3[noncrop], [0.55, 0.04, 0.12, 0.12, 0.08, 0.04, 0.02, 0.03])
    cls[noncrop] = np.array(
        [CI[c] for c in ("0201", "0204", "0404", "0307", "0301", "1206", "0403", "0201K")]
    )[nb]
    # mountain: forest, shrub, grass, terraced dryland, a few orchards
    mb = _quantile_bands(p3[mountain], [0.50, 0.15, 0.08, 0.12, 0.02, 0.08, 0.03, 0.01, 0.01])
    cls[mountain] = np.array(
        [CI[c] for c in ("0301", "0305", "0307", "0404", "0401", "0103", "0201", "1207", "0301K")]
    )[mb]

    # main river (west-east meander) with 滩涂 banks; a reservoir in the mountains; 水工 at its dam
    i = np.arange(nx)
    jc = ny * (0.30 + 0.25 * rng.random()) + (ny * 0.08) * np.sin(
        2 * np.pi * i / (nx * 0.6) + rng.random() * 6
    )
    jc = jc + np.cumsum(rng.normal(0, 0.15, nx))
    width = 2 if nx < 400 else 3
    jj = np.arange(ny)[:, None]
    rd = np.abs(jj - jc[None, :])
    county.river_dist = rd
    put(rd < width / 2.0 + 0.5, "1101")
    bank = (rd >= width / 2.0 + 0.5) & (rd < width / 2.0 + 1.5) & (p3 > 0.55)
    put(bank, "1106")
    put((rd >= width / 2.0 + 0.5) & (rd < width / 2.0 + 1.5) & (p3 < 0.05), "1205")
    # paddy fields along the river
    put(plain & (rd >= 2.5) & (rd < 9) & (p2 < 0.35) & np.isin(cls, FARMLAND_IDX), "0101")
    # tributary streams in the mountains
    for _ in range(1 + nx // 300):
        i0 = rng.uniform(0.1, 0.9) * nx
        p0 = (i0, float(ny - 1))
        p1_ = (i0 + rng.uniform(-0.2, 0.2) * nx, float(np.interp(i0, i, jc)))
        put(_draw_line((ny, nx), p0, p1_, 1), "1101")
    mj, mi = np.nonzero(mountain & (cls == CI["0301"]))
    if mj.size:
        k = rng.integers(mj.size)
        rr = 2 + nx // 150
        d = np.hypot(jj - mj[k], np.arange(nx)[None, :] - mi[k])
        put(d < rr, "1103")
        put((d >= rr) & (d < rr + 1) & (np.arange(nx)[None, :] == mi[k]), "1109")

    # settlements: county seat, township seats, industrial park, hamlets (0702)
    n_town = int(county.town_of_vill.max()) + 1
    vill = county.vill
    nv = county.town_of_vill.size
    jj2, ii2 = np.nonzero(mask)
    cnt = np.bincount(vill[jj2, ii2], minlength=nv).astype(float)
    cj = np.bincount(vill[jj2, ii2], weights=jj2, minlength=nv) / cnt
    ci = np.bincount(vill[jj2, ii2], weights=ii2, minlength=nv) / cnt
    seeds_j, seeds_i, radius, kind = [], [], [], []
    for t in range(n_town):
        members = np.nonzero(county.town_of_vill == t)[0]
        if t == 0:  # the county seat: the village of township 0 nearest the centre of the county
            v = members[np.argmin(np.hypot(cj[members] - jj2.mean(), ci[members] - ii2.mean()))]
        else:
            v = members[np.argmax(cnt[members])]
        seeds_j.append(int(cj[v]))
        seeds_i.append(int(ci[v]))
        share = 0.03 if t == 0 else 0.004 * max(1.0, n_town / 10.0)
        radius.append(
            math.sqrt(area_cells * share / math.pi) if t == 0 else math.sqrt(area_cells / n_town * 0.03)
        )
        kind.append(3 if t == 0 else 2)
    # industrial park next to the county seat
    seeds_j.append(int(np.clip(seeds_j[0] + radius[0] * 1.6, 0, ny - 1)))
    seeds_i.append(int(np.clip(seeds_i[0] + radius[0] * 0.8, 0, nx - 1)))
    radius.append(radius[0] * 0.6)
    kind.append(4)
    # hamlets: about one per 0.6 km² (700 cells of 900 m²)
    n_ham = max(4, area_cells // 700)
    pj, pi = np.nonzero(plain)
    if pj.size:
        pick = rng.choice(pj.size, size=min(n_ham, pj.size), replace=False)
        for k in pick:
            seeds_j.append(int(pj[k]))
            seeds_i.append(int(pi[k]))
            radius.append(float(rng.uniform(1.5, 4.2)))
            kind.append(1)
    sj = np.array(seeds_j)
    si = np.array(seeds_i)
    sj, si = np.clip(sj, 0, ny - 1), np.clip(si, 0, nx - 1)
    uniq = np.unique(sj * nx + si, return_index=True)[1]
    sj, si = sj[np.sort(uniq)], si[np.sort(uniq)]
    radius_a = np.array(radius)[np.sort(uniq)]
    kind_a = np.array(kind)[np.sort(uniq)]
    near, dist = _nearest_seed((ny, nx), sj, si)
    wobble = 0.75 + 0.5 * smooth_field(rng, ny, nx, 6.0)
    inside = mask & (dist < radius_a[near] * wobble)
    settle = np.where(inside, kind_a[near], 0).astype(np.int8)
    county.settle = settle
    # blocks inside settlements get classes by weight
    block_seed = rng.random((ny, nx)) < 1.0 / 7.0
    bj, bi = np.nonzero(block_seed)
    bid, _ = _nearest_seed((ny, nx), bj, bi) if bj.size else (np.zeros((ny, nx), np.int64), None)
    rb = rng.random(bj.size + 1)

    def by_weight(sel: np.ndarray, table: list[tuple[str, float]]) -> None:
        w = np.cumsum([x[1] for x in table])
        w = w / w[-1]
        pick_ = np.searchsorted(w, rb[bid[sel]], side="right")
        cls[sel] = np.array([CI[c] for c, _ in table])[np.minimum(pick_, len(table) - 1)]

    town = (settle == 2) | (settle == 3)
    by_weight(
        town,
        [
            ("0701", 0.58),
            ("05H1", 0.12),
            ("08H1", 0.04),
            ("08H2", 0.07),
            ("0809", 0.03),
            ("0810", 0.04),
            ("0508", 0.03),
            ("0702", 0.06),
            ("1005", 0.01),
            ("09", 0.01),
            ("1201", 0.01),
        ],
    )
    by_weight(settle == 4, [("0601", 0.8), ("0508", 0.12), ("1201", 0.04), ("0809", 0.04)])
    by_weight(
        settle == 1,
        [("0702", 0.86), ("08H2", 0.02), ("1201", 0.04), ("1202", 0.03), ("0601", 0.03), ("0810", 0.02)],
    )
    # streets in towns
    for s in (2, 3):
        sel = settle == s
        if sel.any():
            street = np.zeros((ny, nx), bool)
            street[::6, :] = True
            street[:, ::7] = True
            cls[sel & street & mask] = CI["1004"]

    # farm roads (1006) on a loose lattice over cropland, canals (1107)
    fr = np.zeros((ny, nx), bool)
    off_j, off_i = county.farm_road
    fr[off_j :: FARM_ROAD_EVERY[0], :] = True
    fr[:, off_i :: FARM_ROAD_EVERY[1]] = True
    cropland = np.isin(cls, FARMLAND_IDX) | (cls == CI["0201"])
    gap = smooth_field(rng, ny, nx, 12.0) > 0.25
    put(fr & cropland & gap & plain, "1006")
    for _ in range(1 + nx // 250):
        a = (float(rng.uniform(0, nx)), 0.0)
        b = (float(rng.uniform(0, nx)), float(ny - 1))
        put(_draw_line((ny, nx), a, b, 1) & plain & (settle == 0), "1107")

    # railway and highways (1003) connecting township seats with the county seat
    a = (0.0, float(rng.uniform(0.2, 0.8) * ny))
    b = (float(nx - 1), float(rng.uniform(0.2, 0.8) * ny))
    put(_draw_line((ny, nx), a, b, 1), "1001")
    seats = [(float(si_), float(sj_)) for sj_, si_, k in zip(sj, si, kind_a) if k in (2, 3)]  # noqa: B905
    if seats:
        hub = seats[0]
        for s in seats[1:]:
            put(_draw_line((ny, nx), hub, s, 1), "1003")
        for edge in ((0.0, hub[1]), (float(nx - 1), hub[1]), (hub[0], 0.0), (hub[0], float(ny - 1))):
            put(_draw_line((ny, nx), hub, edge, 1), "1003")

    # scattered ponds, greenhouses, mines, special land
    rnd = rng.random((ny, nx))
    farm = np.isin(cls, FARMLAND_IDX)
    put(farm & (rnd < 0.003), "1104")
    put(farm & (rnd >= 0.003) & (rnd < 0.0035), "1104A")
    put(farm & (rnd >= 0.004) & (rnd < 0.009), "1202")
    mj, mi = np.nonzero(mountain)
    for _ in range(2 + nx // 300):
        if mj.size == 0:
            break
        k = rng.integers(mj.size)
        d = np.hypot(jj - mj[k], np.arange(nx)[None, :] - mi[k])
        put(mountain & (d < rng.uniform(1.5, 3.5)), "0602")
    cls[~mask] = -1


def _split_largest(rng: np.random.Generator, comp: np.ndarray, n: int, k: int) -> np.ndarray:
    """Give the second half (along the longer axis) of the k largest components a new label."""
    sizes = np.bincount(comp[comp >= 0], minlength=n)
    chosen = np.argsort(-sizes, kind="stable")[:k]
    sel = np.isin(comp, chosen)
    jj, ii = np.nonzero(sel)
    lab = comp[jj, ii]
    jmin = np.full(n, 1 << 40)
    jmax = np.full(n, -1)
    imin = np.full(n, 1 << 40)
    imax = np.full(n, -1)
    np.minimum.at(jmin, lab, jj)
    np.maximum.at(jmax, lab, jj)
    np.minimum.at(imin, lab, ii)
    np.maximum.at(imax, lab, ii)
    by_i = (imax - imin) >= (jmax - jmin)
    coord = np.where(by_i[lab], ii, jj)
    other = np.where(by_i[lab], jj, ii)
    o = np.lexsort((other, coord, lab))
    lab_o = lab[o]
    first = np.searchsorted(lab_o, lab_o, side="left")
    rank = np.arange(lab_o.size) - first
    half = rank >= (sizes[lab_o] // 2)
    new_label = np.full(n, -1)
    new_label[chosen] = n + np.arange(chosen.size)
    out = comp.copy()
    oj, oi = jj[o][half], ii[o][half]
    out[oj, oi] = new_label[lab_o[half]]
    return out


def _merge_smallest(comp: np.ndarray, n: int, k: int, vill_of: np.ndarray) -> np.ndarray:
    """Merge the k smallest components into a neighbour (same village preferred, longest shared edge)."""
    sizes = np.bincount(comp[comp >= 0], minlength=n)
    order = np.lexsort((np.arange(n), sizes))
    remove = np.zeros(n, bool)
    remove[order[:k]] = True
    pairs = adjacency_pairs(comp)
    a, b, cnt = pairs[:, 0], pairs[:, 1], pairs[:, 2]
    src = np.concatenate([a, b])
    dst = np.concatenate([b, a])
    cc = np.concatenate([cnt, cnt])
    ok = remove[src] & ~remove[dst]
    src, dst, cc = src[ok], dst[ok], cc[ok]
    same = (vill_of[src] == vill_of[dst]).astype(np.int64)
    o = np.lexsort((dst, -cc, -same, src))
    src, dst = src[o], dst[o]
    first = np.ones(src.size, bool)
    first[1:] = src[1:] != src[:-1]
    target = np.arange(n)
    target[src[first]] = dst[first]
    out = comp.copy()
    inside = comp >= 0
    out[inside] = target[comp[inside]]
    return out


def make_patches(rng: np.random.Generator, county: County, size: int) -> None:
    """DLTB patches: discrete Voronoi parcels cut by class and village, then exactly `size` patches."""
    mask = county.mask
    ny, nx = mask.shape
    cls = county.cls
    dens = np.full(len(CLASSES), 1.0 / 6.0)
    for c, k in _PATCH_CELLS.items():
        dens[CI[c]] = 1.0 / k
    base = dens[np.where(mask, cls, 0)]
    n_cls = len(CLASSES)
    nvill = county.town_of_vill.size
    factor = 1.0
    rnd = rng.random((ny, nx))
    comp = np.zeros((ny, nx), np.int64)
    n = 0
    for _ in range(4):
        seeds = mask & (rnd < base * factor * 0.55)
        sj, si = np.nonzero(seeds)
        parcel, _ = _nearest_seed((ny, nx), sj, si)
        keys = np.where(mask, (parcel * n_cls + cls) * nvill + county.vill, -1)
        comp, n = components(keys)
        if abs(n - size) <= 0.03 * size:
            break
        factor *= (size / max(n, 1)) ** 1.1
    county.comp = comp
    _finalize(rng, county, size)


def _finalize(rng: np.random.Generator, county: County, size: int) -> None:
    """Exact patch count and no pinches at patch, village, township or outline level."""
    comp = county.comp
    cls = county.cls
    vill = county.vill
    for _ in range(60):
        # pinch removal (cells take the patch, class and village of a diagonal neighbour's side)
        changed = False
        for level in ("patch", "village", "town"):
            for _ in range(30):
                if level == "patch":
                    g = comp
                elif level == "village":
                    g = vill
                else:
                    g = np.where(vill >= 0, county.town_of_vill[np.maximum(vill, 0)], -1)
                r, c, sr, sc = pinch_cells(g)
                if r.size == 0:
                    break
                changed = True
                comp[r, c] = comp[sr, sc]
                cls[r, c] = cls[sr, sc]
                vill[r, c] = vill[sr, sc]
        comp, n = components(comp)
        if n == size and not changed:
            break
        if n == size:
            continue
        vill_of = np.zeros(n, np.int64)
        cls_of = np.zeros(n, np.int64)
        jj, ii = np.nonzero(comp >= 0)
        vill_of[comp[jj, ii]] = vill[jj, ii]
        cls_of[comp[jj, ii]] = cls[jj, ii]
        if n > size:
            new = _merge_smallest(comp, n, n - size, vill_of)
            inside = new >= 0
            cls[inside] = cls_of[new[inside]]
            vill[inside] = vill_of[new[inside]]
            comp = new
        else:
            comp = _split_largest(rng, comp, n, size - n)
    else:
        raise RuntimeError(f"could not reach exactly {size} patches")
    cls[comp < 0] = -1
    vill[comp < 0] = -1
    county.comp = comp
    county.cls = cls
    county.vill = vill
    county.n_patches = n
