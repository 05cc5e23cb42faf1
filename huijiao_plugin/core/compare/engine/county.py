"""The county overlay: the layers of a run by role, loaded once, with cached overlays shared by all
presets."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeedback,
    QgsGeometry,
    QgsVectorLayer,
)

from huijiao_plugin.core.compare.engine.geometry import CompareError
from huijiao_plugin.core.compare.engine.noise import Cover, Covered
from huijiao_plugin.core.compare.engine.pairwise import pairwise_intersection
from huijiao_plugin.core.compare.engine.reading import ROLE_KEYS, FeatureSet, LayerSnapshot, load_feature_set
from huijiao_plugin.core.compare.engine.runner import Pred, _Runner
from huijiao_plugin.core.compare.engine.unions import _union_op, proximity_groups
from huijiao_plugin.core.compare.rules import RuleProfile, _text

LOG = logging.getLogger(__name__)


class CountyOverlay:
    """The county's layers by role, loaded once, with cached overlays shared by all presets.

    ``layers`` maps a role (DLTB, DLTB_N1, PBF, HSF, STBHHX, YZGHQ, TRHJZL, JCTB, XZQ, CJDCQ, A, B) to a
    layer.
    All geometry is brought into the CRS of ``crs`` (default: the DLTB layer's, else the first layer's)."""

    def __init__(
        self,
        layers: dict[str, QgsVectorLayer | LayerSnapshot],
        profile: RuleProfile | None = None,
        crs: QgsCoordinateReferenceSystem | None = None,
        workers: int = 2,
        feedback: QgsFeedback | None = None,
    ) -> None:
        self.layers = {
            role: layer if isinstance(layer, LayerSnapshot) else LayerSnapshot(layer)
            for role, layer in layers.items()
            if layer is not None
        }
        self.profile = profile or RuleProfile.default()
        if crs is None or not crs.isValid():
            base = self.layers.get("DLTB") or next(iter(self.layers.values()), None)
            crs = base.crs if base is not None else QgsCoordinateReferenceSystem()
        self.crs = crs
        if self.crs.isValid() and self.crs.isGeographic():
            raise CompareError(
                "比对需要投影坐标系（如 CGCS2000 3 度带），当前为地理坐标系: " + self.crs.authid()
            )
        self.feedback = feedback
        self.runner = _Runner(workers, feedback)
        self._sets: dict[str, FeatureSet] = {}
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._texts: dict[tuple[str, str], dict[int, str]] = {}
        self._area_calc: Any = None

    def has(self, role: str) -> bool:
        return role in self.layers

    def loaded(self, role: str) -> bool:
        return role in self._sets

    def require(self, *roles: str) -> None:
        missing = [r for r in roles if r not in self.layers]
        if missing:
            raise CompareError("缺少输入图层: " + "、".join(missing))

    def features(self, role: str) -> FeatureSet:
        if role not in self._sets:
            self.require(role)
            self._sets[role] = self._load(role)
        return self._sets[role]

    def preload(self, roles: Iterable[str]) -> None:
        """Read several layers at once (GDAL decodes with the GIL released): a preset's inputs in parallel."""
        todo = [role for role in dict.fromkeys(roles) if self.has(role) and role not in self._sets]
        if len(todo) < 2 or self.runner.workers < 2:
            for role in todo:
                self.features(role)
            return
        with ThreadPoolExecutor(min(self.runner.workers, len(todo))) as pool:
            loaded = dict(zip(todo, pool.map(self._load, todo)))
        self._sets.update(loaded)

    def _load(self, role: str) -> FeatureSet:
        keys = list(ROLE_KEYS.get(role, []))
        if role in ("DLTB", "DLTB_N1"):
            keys += [k for k in self.profile.get("versiondiff_fields") if k not in keys]
        return load_feature_set(self.layers[role], role, keys, self.profile, self.crs, self.feedback)

    def input_info(self, roles: Iterable[str]) -> dict[str, Any]:
        out = {}
        for role in roles:
            if self.has(role):
                fs = self.features(role)
                out[role] = dict(fs.info, repaired=len(fs.repaired))
        return out

    def text(self, role: str, key: str, i: int) -> str:
        """Attribute ``key`` of feature ``i`` of ``role`` as stripped text ('' for NULL or a missing field),
        made once per feature: one feature meets many pieces."""
        memo = self._texts.get((role, key))
        if memo is None:
            memo = self._texts[(role, key)] = {}
        value = memo.get(i)
        if value is None:
            attrs = self.features(role).attrs
            value = memo[i] = _text(attrs.get(i, key)) if key in attrs else ""
        return value

    def repaired_report(self) -> dict[str, list[int]]:
        return {role: sorted(fs.repaired) for role, fs in self._sets.items() if fs.repaired}

    # --- cached overlays ------------------------------------------------------------------------------------
    def pairs(
        self,
        role_a: str,
        role_b: str,
        a_pred: Pred = None,
        b_pred: Pred = None,
        key: str = "",
        noise: float = 0.0,
        b_noise: Pred = None,
        a_cover: Callable[[int], int | None] | None = None,
    ) -> list[tuple[int, int, QgsGeometry]]:
        """``a_i ∩ b_j`` pieces. The complete overlay (no filter, no noise skip) is reused when some preset
        already computed it; any other is cached under (``key``, ``noise``). Pass ``noise`` only when each
        piece is judged on its own by the sliver rule (see ``pairwise_intersection``)."""
        full = ("pairs", role_a, role_b, "", 0.0)
        if full in self._cache:
            out = self._cache[full]
            return [p for p in out if (a_pred is None or a_pred(p[0])) and (b_pred is None or b_pred(p[1]))]
        cache_key = ("pairs", role_a, role_b, key if (a_pred or b_pred) else "", float(noise))
        if cache_key not in self._cache:
            self._cache[cache_key] = pairwise_intersection(
                self.features(role_a),
                self.features(role_b),
                self.runner,
                a_pred,
                b_pred,
                noise=noise,
                b_noise=b_noise,
                a_cover=a_cover,
            )
        return self._cache[cache_key]

    def covered(self, role: str, by_role: str, noise: float, items: Sequence[int] | None = None) -> Covered:
        """``covered(i)``: feature i of ``role`` lies inside one feature of ``by_role`` up to digitising noise
        (see ``cover``). Then ``g − ∪by_role`` is noise only for every g ⊆ feature i:
        ``(g − B) ⊖ r ⊆ (f ⊖ r) − (B ⊕ r) = ∅``."""
        return Covered(self.cover(role, by_role, noise, items))

    def cover(self, role: str, by_role: str, noise: float, items: Sequence[int] | None = None) -> Cover:
        """``cover(i)``: the index k of a feature of ``by_role`` that contains feature i of ``role`` up to
        digitising noise (i eroded by noise/2 lies inside k dilated by noise/2); -1 when feature i is thinner
        than the noise everywhere; None when no feature covers it. ``items``: the features that will be
        asked, decided all at once up front (see ``Cover``)."""
        cache_key = ("cover", role, by_role, float(noise))
        if cache_key not in self._cache:
            fs, by = self.features(role), self.features(by_role)
            self._cache[cache_key] = Cover(fs, by, noise / 2.0, self.runner)
        cover = self._cache[cache_key]
        if items is not None:
            cover.decide_all(items)
        return cover

    def identical(self, role_a: str, role_b: str) -> dict[int, int]:
        """Features of ``role_a`` whose geometry is identical (same WKB) to one of ``role_b``: a → b index.
        Year N+1 of a 变更调查 keeps the exact geometry of every unchanged patch."""
        cache_key = ("identical", role_a, role_b)
        if cache_key not in self._cache:
            b_wkbs = self.features(role_b).geoms.raw_wkbs()
            # built from the end so that the first of duplicate geometries wins
            index = dict(zip(reversed(b_wkbs), range(len(b_wkbs) - 1, -1, -1)))
            found = map(index.get, self.features(role_a).geoms.raw_wkbs())
            self._cache[cache_key] = {i: j for i, j in enumerate(found) if j is not None}
        return self._cache[cache_key]

    def by_union(
        self, role_a: str, role_b: str, mode: str, b_pred: Pred = None, key: str = "", noise: float = 0.0
    ) -> list[Any]:
        """Per feature of ``role_a``: its difference from / intersection with the union of ``role_b``
        (``noise``: see ``_union_op``)."""
        cache_key = ("union", role_a, role_b, mode, key, float(noise))
        if cache_key not in self._cache:
            a = self.features(role_a)
            self._cache[cache_key] = _union_op(
                a.geoms, self.features(role_b), self.runner, b_pred, mode, noise=noise, a=a
            )
        return self._cache[cache_key]

    def groups(self, role: str, tolerance: float, pred: Pred = None, key: str = "") -> list[list[int]]:
        cache_key = ("groups", role, float(tolerance), key)
        if cache_key not in self._cache:
            fs = self.features(role)
            items = [i for i in range(len(fs)) if pred is None or pred(i)]
            self._cache[cache_key] = proximity_groups(fs, self.runner, tolerance, items)
        return self._cache[cache_key]

    # --- areas ----------------------------------------------------------------------------------------------
    def areas(self, geoms: Iterable[QgsGeometry]) -> list[float]:
        """三调 ellipsoidal areas in m² (rounded 0.01) from the foundation's calculator."""
        if self._area_calc is None:
            from huijiao_plugin.core.ellipsoidal_area import EllipsoidalAreaCalculator

            self._area_calc = EllipsoidalAreaCalculator(self.crs)
        return list(self._area_calc.areas(list(geoms)))

    def check(self) -> None:
        self.runner.check()

    def progress(self, value: float) -> None:
        if self.feedback is not None:
            self.feedback.setProgress(value)
