"""Rule 6, the launch checklist: no HIGH item open. Each item is resolved by the rules it names
(passed, or failed under an active waiver), or by a recorded sign-off dated no later than now.
Judged last, over the other rules' reasons with waivers applied; never waived itself."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from kgents_pipeline.verdict.checklist import ChecklistItem
from kgents_pipeline.verdict.evidence import Evidence, Findings
from kgents_pipeline.verdict.model import Reason, Rule, State, no_data, passed, when

RULES = (
    Rule(
        "checklist",
        "no HIGH item of the launch checklist open",
        not_waivable="the checklist is resolved item by item: waive a failing rule an item names, "
        "or record the item's sign-off in the checklist file",
    ),
)


def judge(ev: Evidence, earlier: Mapping[str, Reason]) -> Findings:
    snapshot = ev.snapshot
    return Findings([_judge_items(snapshot.checklist, snapshot.checklist_source, earlier, ev.now)])


def _judge_items(
    items: tuple[ChecklistItem, ...] | None,
    source: str,
    by_rule: Mapping[str, Reason],
    now: dt.datetime,
) -> Reason:
    """Every item resolved by its rules (passed, or failed under an active waiver: "resolved by
    waiver #n"), by a sign-off, or deferred (not HIGH); a sign-off or deferral counts only from
    its `at` on. An item without rules can only be resolved by its sign-off."""
    if items is None:
        return no_data("checklist", f"no launch checklist at {source}")
    rows: list[dict[str, Any]] = []
    open_high: list[tuple[ChecklistItem, list[Reason], str]] = []
    by_waiver: list[str] = []
    for item in items:
        failing: list[Reason] = []
        waived: list[Reason] = []
        for rule in item.resolved_by:
            r = by_rule.get(rule) or no_data(rule, f"rule {rule!r} is not part of the verdict")
            if not r.passed:
                (failing if r.waiver_id is None else waived).append(r)
        signoff = item.signoff if item.signoff is not None and item.signoff.at <= now else None
        deferred = item.deferred if item.deferred is not None and item.deferred.at <= now else None
        pending = [
            f"{kind} by {s.by} dated {when(s.at)} does not count before then"
            for kind, s in (("sign-off", item.signoff), ("deferral", item.deferred))
            if s is not None and s.at > now
        ]
        if item.resolved_by and not failing:
            status = "resolved"
            held = [r for r in item.resolved_by if r not in {w.rule for w in waived}]
            parts = [f"resolved by waiver #{r.waiver_id} ({r.rule})" for r in waived]
            if held:
                parts.append("evidence: " + ", ".join(held))
            how = "; ".join(parts)
            by_waiver += [f"{item.id} by waiver #{r.waiver_id} ({r.rule})" for r in waived]
        elif signoff is not None:
            status, how = (
                "resolved",
                f"signed off by {signoff.by} on {when(signoff.at)}: {signoff.note}",
            )
        elif deferred is not None:
            status, how = (
                "deferred",
                f"deferred by {deferred.by} on {when(deferred.at)}: {deferred.note}",
            )
        else:
            status = "open"
            how = (
                "failing: " + ", ".join(r.rule for r in failing)
                if failing
                else "needs a manual sign-off (by, at, note)"
            )
            if pending:
                how += "; " + "; ".join(pending)
            if item.priority == "HIGH":
                why = ", ".join(r.rule for r in failing) if failing else "no sign-off"
                if pending and not failing:
                    why = pending[0]
                open_high.append((item, failing, why))
        rows.append(
            {
                "id": item.id,
                "title": item.title,
                "priority": item.priority,
                "status": status,
                "how": how,
            }
        )
    others = [r["id"] for r in rows if r["status"] == "open" and r["priority"] != "HIGH"]
    tail = f"; resolved by waiver: {', '.join(by_waiver)}" if by_waiver else ""
    tail += f"; open, not blocking: {', '.join(others)}" if others else ""
    if not open_high:
        return passed(
            "checklist",
            f"no HIGH item open ({len(rows)} items){tail}",
            observed=rows,
            limit="0 HIGH open",
        )
    # An open HIGH item is a failure on evidence only when one of its rules failed on evidence.
    hard = any(r.blocks is State.NOT_READY for _, failing, _ in open_high for r in failing)
    names = "; ".join(f"{i.id} ({why})" for i, _, why in open_high)
    return Reason(
        "checklist",
        False,
        f"{len(open_high)} HIGH item(s) open: {names}{tail}",
        observed=rows,
        limit="0 HIGH open",
        blocks=State.NOT_READY if hard else State.INSUFFICIENT_DATA,
    )
