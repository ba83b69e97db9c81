"""The contract's last step: one typed outcome per group and action run, written to
``imds-changes.json`` (schema version 2) and read by the summary.

Every action - the in-place ones, the owner ones, revert - hands back plain records in
AWS's own field names (a template id, a change set, a node group update); the status
is decided here, once, so the writer and every reader agree on what a record means.

Version 1 files were a bare list of those records, their meaning read from which keys
were present; version 2 wraps them as ``{"SchemaVersion": 2, "Outcomes": [...]}`` and
each record carries its ``Status`` (and, where the action planned one, its
``GroupChange``: before and after, every launch change, how instances are replaced).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from c7n_imds.model.gate import WAITS

SCHEMA_VERSION = 2

CHANGED = "changed"  # the group launches from the new, proven launch source
FAILED = "failed"  # nothing changed for the group, or it stopped half-way; see Detail
SKIPPED = "skipped"  # left alone: exempt, or not what this action fixes
HELD_BACK = "held-back"  # the usage gate held it back (IMDSv1 calls, an exempt sibling)
LEFT_TO_OWNER = "left-to-owner"  # a stack or service owns it: fix it there
FIX_PROPOSED = "fix-proposed"  # a change set waits for the stack's owner
FIXED_AT_OWNER = "fixed-at-owner"  # the owner's update rolls out (Beanstalk, EKS)
REVERTED = "reverted"  # put back on what it launched from before c7n-imds
STATUSES = (
    CHANGED,
    FAILED,
    SKIPPED,
    HELD_BACK,
    LEFT_TO_OWNER,
    FIX_PROPOSED,
    FIXED_AT_OWNER,
    REVERTED,
)

# An owner action's OwnerFix.Status -> the outcome's status.
OWNER_FIX_STATUSES = {
    "proposed": FIX_PROPOSED,
    "applied": FIXED_AT_OWNER,
    "already-applied": FIXED_AT_OWNER,
}


@dataclass
class Outcome:
    """What one action run did for one group."""

    group: str
    status: str
    action: str
    detail: str = ""  # why, in a line (the record's Detail, Error or Skipped reason)
    fields: dict = field(default_factory=dict)  # the action's own record (AWS names)
    group_change: dict | None = None  # model/changes.GroupChange.record()

    def record(self) -> dict:
        record = dict(self.fields)
        record.update(AutoScalingGroupName=self.group, Status=self.status, Action=self.action)
        if self.group_change is not None:
            record["GroupChange"] = self.group_change
        return record


def classify(entry: dict, owner_action: bool = False) -> tuple[str, str]:
    """(status, detail) of an action's record, from what it holds: an Error, an owner's
    OwnerFix, a Skipped reason, a revert's RevertedTo, else a change."""
    if entry.get("Status") in STATUSES:
        return entry["Status"], str(
            entry.get("Detail") or entry.get("Error") or entry.get("Skipped") or ""
        )
    if "Error" in entry:
        return FAILED, str(entry["Error"])
    fix = entry.get("OwnerFix")
    if isinstance(fix, dict):
        return OWNER_FIX_STATUSES.get(str(fix.get("Status")), SKIPPED), str(fix.get("Detail") or "")
    if "Skipped" in entry:
        reason = str(entry["Skipped"])
        if reason.startswith("exempt"):
            return SKIPPED, reason
        if reason.startswith("held back") or reason.endswith(WAITS):
            return HELD_BACK, reason
        if owner_action:
            # an owner action leaves what its owner does not own (the in-place actions
            # or another owner fix it)
            return SKIPPED, reason
        return LEFT_TO_OWNER, reason
    if "RevertedTo" in entry:
        return REVERTED, str(entry.get("Detail") or "")
    if owner_action:
        return SKIPPED, str(entry.get("Detail") or "")
    return CHANGED, str(entry.get("Detail") or "")


def outcome(
    entry: dict, action: str, owner_action: bool = False, group_change: dict | None = None
) -> Outcome:
    status, detail = classify(entry, owner_action)
    fields = {
        k: v
        for k, v in entry.items()
        if k not in ("AutoScalingGroupName", "Status", "Action", "GroupChange")
    }
    return Outcome(
        str(entry["AutoScalingGroupName"]),
        status,
        action,
        detail,
        fields,
        group_change if group_change is not None else entry.get("GroupChange"),
    )


def document(outcomes: list[Outcome]) -> dict:
    """The imds-changes.json document."""
    return {"SchemaVersion": SCHEMA_VERSION, "Outcomes": [o.record() for o in outcomes]}


def entries(document_or_list: Any) -> list[dict]:
    """The records of an imds-changes.json of either version (anything else: none)."""
    if isinstance(document_or_list, list):
        return [e for e in document_or_list if isinstance(e, dict)]
    if isinstance(document_or_list, dict) and isinstance(document_or_list.get("Outcomes"), list):
        return [e for e in document_or_list["Outcomes"] if isinstance(e, dict)]
    return []
