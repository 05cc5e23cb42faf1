"""Year N+1 of DLTB: 1–3 % of the patches change (class changes, splits, merges, planting attributes).

Changes are applied to a copy of the patch grid, so DLTB_N1 is again a perfect partition and every unchanged
patch keeps its exact geometry and attribute row. The ground truth is returned as change records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from tests.datagen import codes
from tests.datagen.grid import adjacency_pairs, pinch_cells
from tests.datagen.landscape import CI, CLASSES, County

FARM_IDX = {CI[c] for c in codes.FARMLAND}
TO_CONSTRUCTION = (("0702", 0.4), ("0601", 0.2), ("1003", 0.1), ("05H1", 0.1), ("1202", 0.1), ("0508", 0.05))
TO_CONSTRUCTION_ALL = (*TO_CONSTRUCTION, ("08H2", 0.05))
TO_FARMLAND_FROM = ("0404", "1206", "0307", "0201K", "1201", "0403")
KIND_WEIGHTS = (
    ("farm_to_construction", 0.30),
    ("farm_to_orchard", 0.05),
    ("to_farmland", 0.10),
    ("reclaim", 0.04),
    ("attribute_change", 0.18),
    ("split", 0.13),
    ("partial_class_change", 0.10),
    ("merge", 0.10),
)


@dataclass
class Change:
    kind: str  # class_change | attribute_change | split | partial_class_change | merge
    detail: str  # finer kind (farm_to_construction, to_farmland, …)
    old: list[int]  # year-N patch ids
    new_labels: list[int]  # labels in the year-N+1 working grid
    new_classes: list[str] = field(default_factory=list)
    new_zzsx: str | None = None


@dataclass
class YearN1:
    comp: np.ndarray  # working grid: unchanged/class-changed patches keep their year-N id, new parts ≥ n
    cls: np.ndarray  # class index per cell
    changes: list[Change]


def _pick(u: float, table: tuple[tuple[str, float], ...]) -> str:
    total = sum(w for _, w in table)
    acc = 0.0
    for code, w in table:
        acc += w / total
        if u < acc:
            return code
    return table[-1][0]


def make_year_n1(
    rng: np.random.Generator, county: County, zzsx_n: list[str], share: float | None = None
) -> YearN1:
    comp0 = county.comp
    n = county.n_patches
    ny, nx = comp0.shape
    comp = comp0.copy()
    cls = county.cls.copy()
    flat = comp0.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.arange(n + 1))
    jj0, ii0 = np.nonzero(comp0 >= 0)
    first = np.full(n, -1, np.int64)
    lab0 = comp0[jj0, ii0]
    first[lab0[::-1]] = np.arange(lab0.size)[::-1]
    cls_of = county.cls[jj0[first], ii0[first]]
    vill_of = county.vill[jj0[first], ii0[first]]
    settle_of = county.settle[jj0[first], ii0[first]]
    sizes = np.diff(bounds)
    pairs = adjacency_pairs(comp0)
    neighbours: dict[int, list[int]] = {}
    for a, b, _ in pairs.tolist():
        if cls_of[a] == cls_of[b] and vill_of[a] == vill_of[b]:
            neighbours.setdefault(a, []).append(b)
            neighbours.setdefault(b, []).append(a)

    if share is None:
        share = float(rng.uniform(0.016, 0.024))
    target = max(4, round(n * share))
    used = np.zeros(n, bool)
    is_farm = np.isin(cls_of, list(FARM_IDX))
    pools = {
        "farm": rng.permutation(np.nonzero(is_farm)[0]).tolist(),
        "farm_big": rng.permutation(np.nonzero(is_farm & (sizes >= 6))[0]).tolist(),
        "to_farm": rng.permutation(
            np.nonzero(np.isin(cls_of, [CI[c] for c in TO_FARMLAND_FROM]))[0]
        ).tolist(),
        "reclaim": rng.permutation(np.nonzero((cls_of == CI["0702"]) & (settle_of == 1))[0]).tolist(),
        "split": rng.permutation(
            np.nonzero(
                (sizes >= 6) & np.isin(cls_of, [*FARM_IDX, CI["0301"], CI["0201"], CI["0404"], CI["0305"]])
            )[0]
        ).tolist(),
        "merge": rng.permutation(np.array(sorted(neighbours), dtype=np.int64)).tolist(),
    }

    def take(pool: str) -> int | None:
        lst = pools[pool]
        while lst:
            k = int(lst.pop())
            if not used[k]:
                return k
        return None

    def cells(k: int) -> tuple[np.ndarray, np.ndarray]:
        idx = order[bounds[k] : bounds[k + 1]]
        return idx // nx, idx % nx

    next_label = n
    changes: list[Change] = []
    involved = 0
    attempts = 0
    while involved < target and attempts < target * 20:
        attempts += 1
        detail = _pick(float(rng.random()), KIND_WEIGHTS)
        u = float(rng.random())
        if detail in ("farm_to_construction", "farm_to_orchard", "to_farmland", "reclaim"):
            pool = {"farm_to_construction": "farm", "farm_to_orchard": "farm", "to_farmland": "to_farm"}.get(
                detail, "reclaim"
            )
            k = take(pool)
            if k is None:
                continue
            if detail == "farm_to_construction":
                new = _pick(u, TO_CONSTRUCTION_ALL)
            elif detail == "farm_to_orchard":
                new = "0201" if u < 0.8 else "0201K"
            else:
                new = "0103" if u < 0.7 else "0102"
            j, i = cells(k)
            cls[j, i] = CI[new]
            used[k] = True
            changes.append(Change("class_change", detail, [k], [k], [new]))
            involved += 1
        elif detail == "attribute_change":
            k = take("farm")
            if k is None:
                continue
            old = zzsx_n[k]
            new = ("FLS" if u < 0.6 else "WG") if old == "LS" else "LS"
            used[k] = True
            changes.append(Change("attribute_change", detail, [k], [k], [CLASSES[cls_of[k]]], new))
            involved += 1
        elif detail in ("split", "partial_class_change"):
            k = take("split" if detail == "split" else "farm_big")
            if k is None:
                continue
            j, i = cells(k)
            la, lb = next_label, next_label + 1
            half_b = _try_split(comp, j, i, la, lb, float(rng.uniform(0.35, 0.65)))
            if half_b is None:
                continue
            next_label += 2
            used[k] = True
            old_code = CLASSES[cls_of[k]]
            if detail == "split":
                changes.append(Change("split", detail, [k], [la, lb], [old_code, old_code]))
            else:
                new = _pick(u, TO_CONSTRUCTION)
                cls[half_b] = CI[new]
                changes.append(Change("partial_class_change", detail, [k], [la, lb], [old_code, new]))
            involved += 1
        else:  # merge
            k = take("merge")
            if k is None:
                continue
            cand = [b for b in neighbours.get(k, []) if not used[b]]
            if not cand:
                continue
            b = cand[int(u * len(cand)) % len(cand)]
            ja, ia = cells(k)
            jb, ib = cells(b)
            if not _try_merge(comp, np.concatenate([ja, jb]), np.concatenate([ia, ib]), next_label):
                continue
            used[k] = used[b] = True
            keep = k if sizes[k] >= sizes[b] else b
            changes.append(Change("merge", detail, sorted([k, b]), [next_label], [CLASSES[cls_of[keep]]]))
            next_label += 1
            involved += 2
    return YearN1(comp, cls, changes)


def _crop(j: np.ndarray, i: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    return (
        max(int(j.min()) - 1, 0),
        min(int(j.max()) + 2, shape[0]),
        max(int(i.min()) - 1, 0),
        min(int(i.max()) + 2, shape[1]),
    )


def _try_split(
    comp: np.ndarray, j: np.ndarray, i: np.ndarray, la: int, lb: int, frac: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Split the cells (j, i) of one patch into two 4-connected halves along its longer axis.

    Returns the cells of the second half (label lb), or None when the split would not give two simple parts.
    """
    by_i = (i.max() - i.min()) >= (j.max() - j.min())
    coord, other = (i, j) if by_i else (j, i)
    o = np.lexsort((other, coord))
    cut = int(round(j.size * frac))
    if cut < 2 or j.size - cut < 2:
        return None
    j0, j1, i0, i1 = _crop(j, i, comp.shape)
    sub = comp[j0:j1, i0:i1].copy()
    sub[j[o[:cut]] - j0, i[o[:cut]] - i0] = la
    sub[j[o[cut:]] - j0, i[o[cut:]] - i0] = lb
    for lab in (la, lb):
        if ndimage.label(sub == lab)[1] != 1:
            return None
    if pinch_cells(sub)[0].size:
        return None
    comp[j0:j1, i0:i1] = sub
    return j[o[cut:]], i[o[cut:]]


def _try_merge(comp: np.ndarray, j: np.ndarray, i: np.ndarray, label: int) -> bool:
    j0, j1, i0, i1 = _crop(j, i, comp.shape)
    sub = comp[j0:j1, i0:i1].copy()
    sub[j - j0, i - i0] = label
    if pinch_cells(sub)[0].size:
        return False
    comp[j0:j1, i0:i1] = sub
    return True
