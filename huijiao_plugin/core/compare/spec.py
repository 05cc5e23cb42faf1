"""The declaration of a 耕地比对 preset (:class:`PresetSpec`): its id, title, input roles, categories, run
parameters with their defaults from the rule profile, and statistics. The presets are declared once
(``presets.PRESETS``); the Processing algorithms and the dock's parameter widgets are generated from these
declarations, so no other module needs to know a preset by its id.

A run parameter either overrides one key of the rule profile for this run (``profile_key``; empty or None =
the profile's value) or sets a run option (``option``, a field of :class:`CompareOptions`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qgis.core import QgsGeometry
from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP

from huijiao_plugin.core.compare.rules import RuleProfile
from huijiao_plugin.core.units import M2_PER_MU
from huijiao_plugin.toolbelt.i18n import tr

NUMBER = "number"  # a float (spin box / QgsProcessingParameterNumber)
CODES = "codes"  # a list of codes or a single value typed as text (line edit / QgsProcessingParameterString)
CHOICE = "choice"  # one of ``choices`` (combo box / QgsProcessingParameterEnum)

LEVELS = ("county", "township", "village")
CODE_LENGTH = {"county": 6, "township": 9, "village": 12}


@dataclass
class Piece:
    geom: QgsGeometry
    category: str
    attrs: dict[str, Any] = field(default_factory=dict)
    zldwdm: str = ""
    area_m2: float = 0.0
    codes: tuple[str, str, str] = ("", "", "")


@dataclass
class PresetResult:
    rule_id: str
    title: str
    pieces: list[Piece]
    extra_fields: list[tuple[str, Any]]
    rule_params: dict[str, Any]
    inputs: dict[str, Any]
    repaired: dict[str, list[int]] = field(default_factory=dict)
    region_names: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)  # once per output (provenance.py)

    def total_area_m2(self, category: str | None = None) -> float:
        return sum(p.area_m2 for p in self.pieces if category is None or p.category == category)

    def count(self, category: str | None = None) -> int:
        return sum(1 for p in self.pieces if category is None or p.category == category)

    def summary(self) -> str:
        """One line: "<title> 1,234 块，5,678.9 亩"."""
        mu = self.total_area_m2() / M2_PER_MU
        return tr("{title}: {count} pieces, {mu} mu").format(
            title=self.title, count=f"{len(self.pieces):,}", mu=f"{mu:,.1f}"
        )


@dataclass
class CompareOptions:
    """Run options; ``None`` takes the rule profile's value."""

    min_area: float | None = None
    min_width: float | None = None
    noise_width: float | None = None
    base: str | None = None  # "pbf" or "farmland"; default: the preset's BASE parameter default
    tolerance: float | None = None  # contiguity tolerance (m)


@dataclass(frozen=True)
class RoleSpec:
    """An input layer of a preset, with the rule-profile filter applied to it (documentation)."""

    role: str
    optional: bool = False
    filter: str = ""  # English, e.g. "DLBM in farmland_codes"


@dataclass(frozen=True)
class ParamSpec:
    """One run parameter, the same in the dock and in Processing."""

    name: str  # Processing parameter name (upper case)
    label: str  # English, QT_TRANSLATE_NOOP; translated at use
    kind: str  # NUMBER, CODES or CHOICE
    profile_key: str = ""  # the rule-profile key it overrides
    option: str = ""  # or the CompareOptions field it sets
    choices: tuple[tuple[str, str], ...] = ()  # CHOICE: (value, English label)
    default: Any = None  # CHOICE: the default value (the others default to the profile's value)
    help: str = ""  # English tooltip

    def profile_default(self, profile: RuleProfile) -> Any:
        """The value used when the run leaves this parameter empty."""
        if self.profile_key:
            return profile.get(self.profile_key)
        return self.default


@dataclass(frozen=True)
class CategorySpec:
    value: str  # the value of the output's category field
    label: str  # English, QT_TRANSLATE_NOOP


# what the tolerances judge noise: a value of the category field like the others, counted in the statistics
WITHIN_TOLERANCE = CategorySpec("within_tolerance", QT_TRANSLATE_NOOP("@default", "Within tolerance"))

# the sliver / noise thresholds every preset takes (defaults: the rule profile's min_area_m2, min_width_m,
# noise_width_m; domain.md §6)
# fmt: off
THRESHOLD_PARAMS = (
    ParamSpec("MIN_AREA", QT_TRANSLATE_NOOP("@default", "Minimum piece area (m²)"), NUMBER, "min_area_m2", "min_area", help=QT_TRANSLATE_NOOP("@default", "Pieces smaller than this are not reported (domain.md §6).")),  # noqa: E501
    ParamSpec("MIN_WIDTH", QT_TRANSLATE_NOOP("@default", "Minimum mean width area/perimeter (m)"), NUMBER, "min_width_m", "min_width", help=QT_TRANSLATE_NOOP("@default", "Mean width = area / perimeter; thinner pieces are slivers (domain.md §6).")),  # noqa: E501
    ParamSpec("NOISE_WIDTH", QT_TRANSLATE_NOOP("@default", "Digitising noise width (m, 0 = off)"), NUMBER, "noise_width_m", "noise_width", help=QT_TRANSLATE_NOOP("@default", "Pieces thinner than this everywhere are digitising noise between departments; 0 = off.")),  # noqa: E501
)
# fmt: on


@dataclass
class PresetSpec:
    """A preset, declared once. ``params`` lists the preset's own parameters; ``all_params`` adds the
    thresholds every preset takes. ``func(overlay, options, resolved rule params)`` returns the pieces and
    the extra output fields. ``statistics`` names the fields the statistics group by (category first)."""

    id: str
    title: str  # English, QT_TRANSLATE_NOOP; translated at use
    roles: tuple[RoleSpec, ...]
    categories: tuple[CategorySpec, ...]
    params: tuple[ParamSpec, ...]
    param_keys: list[str]  # the rule-profile keys the preset reads (recorded in the provenance)
    func: Callable[..., Any]
    help: str = ""
    statistics: tuple[str, ...] = ("category",)
    reads: Callable[[CompareOptions], tuple[str, ...]] | None = None  # the roles read, when options decide
    partition: bool = True  # categories partition the documented union (partition.py); else as computed
    exclusive: bool = True  # categories exclude each other (False: e.g. one piece in several exit reasons)
    # the categories are differences and intersections of the same sets (A − B, B − A, A ∩ B), so two pieces
    # of different categories never share area whatever the inputs: only pieces of one category are compared
    disjoint_by_definition: bool = False
    applicable: Callable[[Callable[[str], bool]], bool] | None = None  # given ``has(role)``

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(r.role for r in self.roles if not r.optional)

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(r.role for r in self.roles if r.optional)

    @property
    def all_params(self) -> tuple[ParamSpec, ...]:
        return (*self.params, *THRESHOLD_PARAMS)

    def param(self, name: str) -> ParamSpec:
        for p in self.all_params:
            if p.name == name:
                return p
        raise KeyError(name)

    def category_values(self) -> tuple[str, ...]:
        return tuple(c.value for c in self.categories)

    @property
    def all_categories(self) -> tuple[CategorySpec, ...]:
        """The declared categories and, where the tolerances move area, ``within_tolerance``."""
        return (*self.categories, WITHIN_TOLERANCE) if self.partition else self.categories

    def options_and_overrides(self, values: Mapping[str, Any]) -> tuple[CompareOptions, dict[str, Any]]:
        """Run values by parameter name (None / "" = the profile's value) -> (options, profile
        overrides)."""
        options = CompareOptions()
        overrides: dict[str, Any] = {}
        for p in self.all_params:
            value = values.get(p.name)
            if value is None or (isinstance(value, str) and not value.strip()):
                if p.kind == CHOICE and p.option:
                    setattr(options, p.option, p.default)
                continue
            if p.option:
                setattr(options, p.option, float(value) if p.kind == NUMBER else value)
            elif p.profile_key:
                overrides[p.profile_key] = value.strip() if isinstance(value, str) else value
        return options, overrides


def default_options(spec: PresetSpec) -> CompareOptions:
    """The options of a run that leaves every parameter at its default."""
    return spec.options_and_overrides({})[0]


__all__ = [
    "CODE_LENGTH",
    "CHOICE",
    "CODES",
    "NUMBER",
    "THRESHOLD_PARAMS",
    "WITHIN_TOLERANCE",
    "CategorySpec",
    "CompareOptions",
    "ParamSpec",
    "PresetSpec",
    "RoleSpec",
    "default_options",
    "LEVELS",
    "Piece",
    "PresetResult",
]
