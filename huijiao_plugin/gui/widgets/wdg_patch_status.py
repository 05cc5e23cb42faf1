"""Status editor of the 变化图斑 panel: the moves the workflow allows for every selected patch, the fields
each move needs (核查结果, 核查人, 核查日期, 说明, photo/attachment), bulk apply and undo of the last change.

The offered moves and the fields come from core/patches/workflow.py (TRANSITIONS, TRANSITION_FIELDS), the
same table the store checks, so the panel never offers a move the store then refuses.
"""

from __future__ import annotations

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import QDate, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDateEdit,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from huijiao_plugin.core.patches import workflow
from huijiao_plugin.core.patches.store import PatchStore, PatchStoreError
from huijiao_plugin.toolbelt.i18n import tr

DATE_FORMAT = "yyyy-MM-dd"


class HuijiaoPatchStatusWidget(QWidget):
    """Set the status (and what it needs) on the selected patches; undo the last change."""

    #: (done uuids, refused {uuid: reason}) after an apply, ([], {}) after an undo
    changed = pyqtSignal(list, dict)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("HuijiaoPatchStatusWidget")
        self.store: PatchStore | None = None
        self.uuids: list[str] = []
        self.user = ""
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        # the fields scroll when the page is short; the buttons below them stay in view
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        fields = QWidget(scroll)
        scroll.setWidget(fields)
        outer.addWidget(scroll, 1)
        form = QFormLayout(fields)
        form.setContentsMargins(0, 0, 0, 0)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.status_combo = QComboBox(self)
        self.status_combo.setObjectName("HuijiaoPatchTargetStatus")
        self.result_combo = QComboBox(self)
        for code, label in workflow.RESULTS.items():
            self.result_combo.addItem(label, code)
        self.verifier_edit = QLineEdit(self)
        self.date_edit = QDateEdit(QDate.currentDate(), self)
        self.date_edit.setDisplayFormat(DATE_FORMAT)
        self.date_edit.setCalendarPopup(True)
        self.field_notes_edit = QPlainTextEdit(self)
        self.reviewer_edit = QLineEdit(self)
        self.notes_edit = QPlainTextEdit(self)
        for edit in (self.field_notes_edit, self.notes_edit):
            edit.setMaximumHeight(56)
        self.attachment_widget = QgsFileWidget(self)
        self.attachment_widget.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        # field name → (label, editor); the order of the form
        self.editors = {
            "result": (tr("Verification result"), self.result_combo),
            "verifier": (tr("Verifier"), self.verifier_edit),
            "verify_date": (tr("Verification date"), self.date_edit),
            "field_notes": (tr("Explanation"), self.field_notes_edit),
            "reviewer": (tr("Reviewer"), self.reviewer_edit),
            "notes": (tr("Explanation"), self.notes_edit),
            "attachment": (tr("Photo / attachment"), self.attachment_widget),
        }
        self.labels = {}
        form.addRow(tr("New status"), self.status_combo)
        for key, (text, editor) in self.editors.items():
            label = QLabel(text, self)
            self.labels[key] = label
            form.addRow(label, editor)
        buttons = QHBoxLayout()
        self.apply_button = QPushButton(tr("Set status"), self)
        self.apply_button.setObjectName("HuijiaoPatchSetStatus")
        self.undo_button = QPushButton(tr("Undo last change"), self)
        self.undo_button.setObjectName("HuijiaoPatchUndoStatus")
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.undo_button)
        buttons.addStretch(1)
        outer.addLayout(buttons)
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        outer.addWidget(self.message)
        self.status_combo.currentIndexChanged.connect(self._target_changed)
        self.apply_button.clicked.connect(self.apply)
        self.undo_button.clicked.connect(self.undo)
        self.set_patches(None, [], [])

    # -- state ---------------------------------------------------------------------------------------------
    def set_patches(self, store: PatchStore | None, uuids: list[str], statuses: list[str | None]) -> None:
        """The selected patches and their current statuses: the status list offers the common moves."""
        self.store = store
        self.uuids = list(uuids)
        previous = self.status_combo.currentData()
        self.status_combo.blockSignals(True)
        self.status_combo.clear()
        for code in workflow.common_targets(statuses):
            self.status_combo.addItem(workflow.status_label(code), code)
        index = self.status_combo.findData(previous)
        self.status_combo.setCurrentIndex(index if index >= 0 else 0)
        self.status_combo.blockSignals(False)
        self._target_changed()
        if uuids and self.status_combo.count() == 0:
            self.message.setText(tr("The selected patches have no status change in common."))
        elif not uuids:
            self.message.setText(tr("Select patches in the table."))
        else:
            self.message.setText(tr("{n} patches selected").format(n=len(uuids)))
        self.undo_button.setEnabled(store is not None and store.can_undo())

    def _target_changed(self) -> None:
        target = self.status_combo.currentData()
        wanted = set(workflow.TRANSITION_FIELDS.get(target, ())) if target else set()
        if target in workflow.TAKES_ATTACHMENT:
            wanted.add("attachment")
        for key, (_text, editor) in self.editors.items():
            editor.setVisible(key in wanted)
            self.labels[key].setVisible(key in wanted)
        if "verifier" in wanted and not self.verifier_edit.text():
            self.verifier_edit.setText(self.user)
        if "reviewer" in wanted and not self.reviewer_edit.text():
            self.reviewer_edit.setText(self.user)
        self.apply_button.setEnabled(bool(target) and bool(self.uuids))

    def changes(self) -> dict:
        """Status and the values of the fields the chosen move needs (empty texts left out)."""
        target = self.status_combo.currentData()
        values: dict = {"status": target}
        for key in workflow.TRANSITION_FIELDS.get(target, ()):
            editor = self.editors[key][1]
            if editor is self.result_combo:
                value = self.result_combo.currentData()
            elif editor is self.date_edit:
                value = self.date_edit.date().toString(DATE_FORMAT)
            elif isinstance(editor, QPlainTextEdit):
                value = editor.toPlainText().strip()
            else:
                value = editor.text().strip()
            if value:
                values[key] = value
        return values

    # -- actions -------------------------------------------------------------------------------------------
    def apply(self) -> tuple[list[str], dict[str, str]]:
        if self.store is None or not self.uuids or not self.status_combo.currentData():
            return [], {}
        target = self.status_combo.currentData()
        done, refused = self.store.change_patches(self.uuids, self.changes(), user=self.user)
        attachment = self.attachment_widget.filePath() if target in workflow.TAKES_ATTACHMENT else ""
        errors = []
        if attachment:
            for patch_uuid in done:
                try:
                    self.store.add_attachment(patch_uuid, attachment, taken_by=self.user)
                except PatchStoreError as exc:
                    errors.append(str(exc))
            self.attachment_widget.setFilePath("")
        text = tr("{done} patches set to {status}").format(
            done=len(done), status=workflow.status_label(target)
        )
        if refused or errors:
            text += " " + tr("{n} refused: {reason}").format(
                n=len(refused) + len(errors), reason=(list(refused.values()) + errors)[0]
            )
        self.message.setText(text)
        self.changed.emit(done, refused)
        return done, refused

    def undo(self) -> list[str]:
        if self.store is None:
            return []
        restored = self.store.undo_last(user=self.user)
        self.message.setText(tr("Last change undone on {n} patches").format(n=len(restored)))
        self.changed.emit([], {})
        return restored
