"""The run parameters of one 耕地比对 preset as widgets, generated from its declaration
(``PresetSpec.all_params``): the same parameters as the preset's Processing algorithm.

A number is a spin box showing the rule profile's value; a list of codes is a line edit whose grey
placeholder is the profile's value (empty = that value); a choice is a combo box with the preset's default.
"""

from __future__ import annotations

from typing import Any

from qgis.PyQt.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QLineEdit, QWidget

from huijiao_plugin.core.compare.rules import RuleProfile
from huijiao_plugin.core.compare.spec import CHOICE, NUMBER, ParamSpec, PresetSpec
from huijiao_plugin.toolbelt.i18n import tr


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


class PresetParamsWidget(QWidget):
    """``set_preset(spec, profile)`` rebuilds the editors; ``values()`` gives the run values by parameter
    name (None = the profile's value), for ``PresetSpec.options_and_overrides``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("HuijiaoComparePresetParams")
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.spec: PresetSpec | None = None
        self.profile: RuleProfile | None = None
        self.editors: dict[str, QWidget] = {}

    def set_preset(self, spec: PresetSpec, profile: RuleProfile) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self.spec, self.profile, self.editors = spec, profile, {}
        for p in spec.all_params:
            editor = self._editor(p, profile)
            editor.setObjectName(f"HuijiaoCompareParam{p.name}")
            if p.help:
                editor.setToolTip(tr(p.help))
                editor.setWhatsThis(tr(p.help))
            label = QLabel(tr(p.label), self)
            label.setBuddy(editor)
            self.form.addRow(label, editor)
            self.editors[p.name] = editor

    def _editor(self, p: ParamSpec, profile: RuleProfile) -> QWidget:
        if p.kind == CHOICE:
            combo = QComboBox(self)
            for value, label in p.choices:
                combo.addItem(tr(label), value)
            combo.setCurrentIndex(combo.findData(p.default))
            return combo
        default = p.profile_default(profile)
        if p.kind == NUMBER:
            spin = QDoubleSpinBox(self)
            spin.setDecimals(3)
            spin.setRange(0.0, 1e6)
            spin.setValue(float(default))
            return spin
        edit = QLineEdit(self)
        edit.setPlaceholderText(_shown(default))
        if not p.help:
            edit.setToolTip(tr("Empty = the rule profile's default shown in grey."))
        return edit

    def values(self) -> dict[str, Any]:
        """Run values by parameter name; None where the run keeps the rule profile's value."""
        out: dict[str, Any] = {}
        assert self.spec is not None and self.profile is not None
        for p in self.spec.all_params:
            editor = self.editors[p.name]
            if isinstance(editor, QComboBox):
                out[p.name] = editor.currentData()
            elif isinstance(editor, QDoubleSpinBox):
                value = editor.value()
                # unchanged: the profile's value (not a run override recorded as such)
                same = abs(value - float(p.profile_default(self.profile))) < 10 ** -editor.decimals()
                out[p.name] = None if same else value
            else:
                out[p.name] = editor.text().strip() or None
        return out
