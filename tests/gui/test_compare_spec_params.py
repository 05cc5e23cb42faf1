"""The dock and the Processing algorithms show the same parameters for each preset, as declared once in its
PresetSpec (roles, run parameters, defaults from the rule profile, choices)."""

from __future__ import annotations

import pytest
from qgis.core import QgsApplication, QgsProcessingParameterEnum, QgsProcessingParameterNumber

from huijiao_plugin.core.compare.presets import PRESETS
from huijiao_plugin.core.compare.rules import RuleProfile
from huijiao_plugin.gui.docks.dock_compare import HuijiaoCompareDock

# parameters every compare algorithm has besides the preset's roles and run parameters
FIXED = {"REGION_LEVEL", "RULES_PROFILE", "OUTPUT", "OUTPUT_STATS", "XLSX"}
DEFAULTS = RuleProfile.default()


@pytest.fixture(scope="module")
def dock(qgis_iface, huijiao_provider):
    dock = HuijiaoCompareDock(qgis_iface)
    yield dock
    dock.deleteLater()


@pytest.mark.parametrize("preset_id", sorted(PRESETS))
def test_dock_and_processing_match_the_spec(dock, preset_id):
    spec = PRESETS[preset_id]
    alg = QgsApplication.processingRegistry().algorithmById(f"huijiao:{preset_id}")
    assert alg is not None
    defs = {d.name(): d for d in alg.parameterDefinitions()}
    roles = [r.role for r in spec.roles]
    names = [p.name for p in spec.all_params]
    assert [n for n in defs if n not in FIXED] == roles + names
    for r in spec.roles:
        assert bool(defs[r.role].flags() & defs[r.role].Flag.FlagOptional) == r.optional, r.role

    # the dock, driven through its preset combo
    dock.preset_combo.setCurrentIndex(dock.preset_combo.findData(preset_id))
    visible = [role for role, combo in dock.role_combos.items() if combo.isVisibleTo(dock)]
    assert sorted(visible) == sorted(roles)
    assert list(dock.params_widget.editors) == names

    for p in spec.all_params:
        editor, d = dock.params_widget.editors[p.name], defs[p.name]
        if p.choices:
            assert isinstance(d, QgsProcessingParameterEnum)
            values = [editor.itemData(i) for i in range(editor.count())]
            assert values == [v for v, _ in p.choices]
            assert editor.currentData() == p.default == values[d.defaultValue()]
        elif isinstance(d, QgsProcessingParameterNumber):
            # the default shown on both sides is the rule profile's value (rules_default.json)
            expected = float(DEFAULTS.values[p.profile_key])
            assert d.defaultValue() == pytest.approx(expected)
            assert editor.value() == pytest.approx(expected)
        else:
            value = DEFAULTS.values[p.profile_key]
            shown = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
            assert editor.placeholderText() == shown
            assert editor.text() == ""


def test_dock_values_become_run_options_and_overrides(dock):
    """Typed values reach the run as options / profile overrides; untouched ones stay the profile's."""
    dock.preset_combo.setCurrentIndex(dock.preset_combo.findData("contiguity"))
    editors = dock.params_widget.editors
    editors["TOLERANCE"].setValue(12.5)
    editors["SIZE_CLASSES"].setText("5,20")
    editors["BASE"].setCurrentIndex(editors["BASE"].findData("farmland"))
    options, overrides = PRESETS["contiguity"].options_and_overrides(dock.params_widget.values())
    assert options.tolerance == 12.5 and options.base == "farmland"
    assert options.min_area is None and options.noise_width is None
    assert overrides == {"contiguity_size_classes_mu": "5,20"}
