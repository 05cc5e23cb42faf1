"""The cross-version comparison of tests/compat/numbers.py: equal to 1e-9 relative passes, anything else is
reported (hand-made number sets)."""

from __future__ import annotations

import copy

from tests.compat.numbers import differences

REFERENCE = {
    "qgis": "3.22.16",
    "areas": {"DLTB": [1000.0, 2345.678901234, 0.25], "PBF": [10.5]},
    "presets": {"hsfnotinpbf": [["candidate", 4600.0], ["candidate", 5000.0]], "contiguity": []},
}


def changed(edit):
    other = copy.deepcopy(REFERENCE)
    other["qgis"] = "3.40.6"
    edit(other)
    return differences(REFERENCE, other)


def test_equal_and_within_1e9_relative_pass():
    assert changed(lambda o: None) == []
    # 2345.678901234 * (1 + 5e-10) still equal; 4600 * (1 - 5e-10) too
    assert changed(lambda o: o["areas"]["DLTB"].__setitem__(1, 2345.678901234 * (1 + 5e-10))) == []
    assert changed(lambda o: o["presets"]["hsfnotinpbf"][0].__setitem__(1, 4600.0 * (1 - 5e-10))) == []


def test_area_off_by_1e8_relative_is_reported():
    diff = changed(lambda o: o["areas"]["DLTB"].__setitem__(0, 1000.0 * (1 + 1e-8)))
    assert len(diff) == 1 and diff[0].startswith("areas/DLTB[0]")


def test_other_category_count_or_preset_is_reported():
    assert changed(lambda o: o["presets"]["hsfnotinpbf"][1].__setitem__(0, "covered"))[0].startswith(
        "presets/hsfnotinpbf[1]"
    )
    assert changed(lambda o: o["presets"]["contiguity"].append(["block", 1.0])) == [
        "presets/contiguity: 0 values != 1"
    ]
    assert changed(lambda o: o["presets"].pop("contiguity"))[0].startswith("presets: keys")
