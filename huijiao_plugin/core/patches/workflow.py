"""Verification workflow of a change patch: statuses, results and the allowed status transitions.

::

    待核查 pending ──► 核查中 in_progress ──► 已核查 verified ──► 审核通过 approved
        │                  ▲    │                 │   ▲               │
        └──────────────────┼────┴─► (verified)    ▼   │               ▼
                           └──────────────── 退回 returned      异议 disputed ──► 核查中 / 退回 / 审核通过

A patch can be marked 已核查 only with a verification result (属实 / 不属实 / 存疑); approval needs one too.
Every other move (e.g. 待核查 → 审核通过, 审核通过 → 待核查) is refused with a clear message.
"""

from __future__ import annotations

from huijiao_plugin.toolbelt.i18n import tr

STATUS_PENDING = "pending"  # 待核查
STATUS_IN_PROGRESS = "in_progress"  # 核查中
STATUS_VERIFIED = "verified"  # 已核查
STATUS_APPROVED = "approved"  # 审核通过
STATUS_RETURNED = "returned"  # 退回
STATUS_DISPUTED = "disputed"  # 异议

STATUSES = {
    STATUS_PENDING: "待核查",
    STATUS_IN_PROGRESS: "核查中",
    STATUS_VERIFIED: "已核查",
    STATUS_APPROVED: "审核通过",
    STATUS_RETURNED: "退回",
    STATUS_DISPUTED: "异议",
}

RESULT_TRUE = "true"  # 属实
RESULT_FALSE = "false"  # 不属实
RESULT_DOUBTFUL = "doubtful"  # 存疑

RESULTS = {RESULT_TRUE: "属实", RESULT_FALSE: "不属实", RESULT_DOUBTFUL: "存疑"}

TRANSITIONS: dict[str, frozenset[str]] = {
    STATUS_PENDING: frozenset({STATUS_IN_PROGRESS, STATUS_VERIFIED}),
    STATUS_IN_PROGRESS: frozenset({STATUS_PENDING, STATUS_VERIFIED}),
    STATUS_VERIFIED: frozenset({STATUS_APPROVED, STATUS_RETURNED, STATUS_DISPUTED, STATUS_IN_PROGRESS}),
    STATUS_RETURNED: frozenset({STATUS_IN_PROGRESS, STATUS_VERIFIED}),
    STATUS_APPROVED: frozenset({STATUS_DISPUTED}),
    STATUS_DISPUTED: frozenset({STATUS_IN_PROGRESS, STATUS_RETURNED, STATUS_APPROVED}),
}

NEEDS_RESULT = frozenset({STATUS_VERIFIED, STATUS_APPROVED})

# What a person enters with each target status (the panel's status editor shows exactly these; the store
# refuses a target of NEEDS_RESULT without a result). Field names of schema.PATCH_FIELDS.
TRANSITION_FIELDS: dict[str, tuple[str, ...]] = {
    STATUS_PENDING: ("notes",),
    STATUS_IN_PROGRESS: ("verifier", "notes"),
    STATUS_VERIFIED: ("result", "verifier", "verify_date", "field_notes"),
    STATUS_APPROVED: ("reviewer", "notes"),
    STATUS_RETURNED: ("reviewer", "notes"),
    STATUS_DISPUTED: ("reviewer", "notes"),
}
# targets where a photo/attachment may be added with the change
TAKES_ATTACHMENT = frozenset({STATUS_IN_PROGRESS, STATUS_VERIFIED})


class WorkflowError(ValueError):
    """A refused status change or an unknown status/result value (message for users)."""


def status_label(code: str | None) -> str:
    return STATUSES.get(code or "", code or "")


def result_label(code: str | None) -> str:
    return RESULTS.get(code or "", code or "")


def normalize_status(value: str | None) -> str | None:
    """Accept a code or its Chinese label; None/'' stays None. Unknown values raise WorkflowError."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if text in STATUSES:
        return text
    for code, label in STATUSES.items():
        if label == text:
            return code
    raise WorkflowError(tr("Unknown patch status: {value}").format(value=text))


def normalize_result(value: str | None) -> str | None:
    """Accept a code or its Chinese label; None/'' stays None. Unknown values raise WorkflowError."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if text in RESULTS:
        return text
    for code, label in RESULTS.items():
        if label == text:
            return code
    raise WorkflowError(tr("Unknown verification result: {value}").format(value=text))


def can_transition(old: str | None, new: str) -> bool:
    old_code = normalize_status(old) or STATUS_PENDING
    new_code = normalize_status(new)
    return new_code is not None and (old_code == new_code or new_code in TRANSITIONS[old_code])


def check_transition(old: str | None, new: str, result: str | None = None) -> str:
    """Return the normalized new status or raise WorkflowError saying why the change is refused."""
    old_code = normalize_status(old) or STATUS_PENDING
    new_code = normalize_status(new)
    if new_code is None:
        raise WorkflowError(tr("A patch status cannot be empty."))
    if new_code != old_code and new_code not in TRANSITIONS[old_code]:
        raise WorkflowError(
            tr("Status change {old} → {new} is not allowed.").format(
                old=status_label(old_code), new=status_label(new_code)
            )
        )
    if new_code in NEEDS_RESULT and normalize_result(result) is None:
        raise WorkflowError(
            tr("Status {new} needs a verification result (属实/不属实/存疑).").format(
                new=status_label(new_code)
            )
        )
    return new_code


def allowed_targets(old: str | None) -> list[str]:
    """Statuses reachable from ``old`` (for menus)."""
    old_code = normalize_status(old) or STATUS_PENDING
    return [code for code in STATUSES if code in TRANSITIONS[old_code]]


def common_targets(olds: list[str | None]) -> list[str]:
    """Statuses every one of ``olds`` may move to (a bulk change offers only these); [] for no patches."""
    if not olds:
        return []
    allowed = set(STATUSES)
    for old in olds:
        allowed &= set(allowed_targets(old))
    return [code for code in STATUSES if code in allowed]
