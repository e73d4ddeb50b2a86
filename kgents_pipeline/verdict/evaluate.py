"""The launch-readiness verdict: a pure function of the history, a policy and a time.

`evaluate(snapshot, policy, now) -> Verdict`. It fails closed: no evidence is never a pass.

States, by precedence (the first that applies wins):
1. INVALID_RUN        the latest run is invalid (k6 did not finish, summary missing, too few
                      requests, dropped iterations, truncated, or invalidated by an operator).
                      The other rules are still evaluated on the latest valid run, to explain.
2. NOT_READY          a rule failed on evidence (SLO, sustained, regression, live policy, PDB,
                      a HIGH checklist item whose rule failed), and no active waiver covers it.
3. INSUFFICIENT_DATA  evidence is missing, too thin or too old (no runs, no raw points, no
                      baseline, too few passing runs, stale, no live verification, an unsigned
                      HIGH item, a rehearsal), and no active waiver covers it.
4. READY              every rule passed or is waived.
Rehearsal evidence (demo target, offline cluster) fails the `rehearsal` rule, which can never be
waived: READY is unreachable from a rehearsal. Nor can `checklist` be waived: an item is resolved
by its rules passing (or waived, rule by rule), or by a recorded sign-off dated no later than `now`.
The rules themselves live in `rules/`, a module per family.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import TYPE_CHECKING, Any

from kgents_pipeline.history.controls import Waiver
from kgents_pipeline.history.queries import runs_digest_of
from kgents_pipeline.verdict.evidence import Evidence
from kgents_pipeline.verdict.inputs import HistorySnapshot, as_of
from kgents_pipeline.verdict.model import Reason, State, Verdict, VerdictPolicy
from kgents_pipeline.verdict.rules import (
    FAMILIES,
    JUDGED_AFTER_WAIVERS,
    NON_WAIVABLE,
    NON_WAIVABLE_WHY,
    RULE_IDS,
)

if TYPE_CHECKING:
    pass


def inputs_sha256(snapshot: HistorySnapshot, policy: VerdictPolicy) -> str:
    """sha256 over everything the verdict reads (not the clock: `evaluated_at` records that).

    Runs enter through their digest (`history.queries.runs_digest`): read from the history, it
    was computed in SQL over every run; for a snapshot built in memory, over `snapshot.runs`."""
    import numpy as np

    h = hashlib.sha256()
    h.update(repr(policy).encode())
    digest = snapshot.runs_digest or runs_digest_of(snapshot.runs)
    h.update(digest.encode())
    for run_id in sorted(snapshot.windows):
        h.update(repr((run_id, snapshot.windows[run_id])).encode())
    for run_id in sorted(snapshot.samples):
        h.update(run_id.encode())
        h.update(np.ascontiguousarray(snapshot.samples[run_id], dtype=np.float64).tobytes())
    h.update(repr(sorted(snapshot.invalidations.items())).encode())
    h.update(repr((snapshot.pins, snapshot.waivers, snapshot.verifications)).encode())
    h.update(
        repr((snapshot.verifications_table, snapshot.checklist, snapshot.checklist_source)).encode()
    )
    a = snapshot.archive  # what it found wrong, not where it looked
    h.update(repr(None if a is None else (a.missing, a.more_missing, a.stale, a.gone)).encode())
    h.update(repr(None if a is None else a.unreadable).encode())
    if snapshot.knee is not None:
        h.update(repr(snapshot.knee).encode())
    return h.hexdigest()


def _waiver_json(w: Waiver, now: dt.datetime, applied: set[int]) -> dict[str, Any]:
    note = None
    if w.rule not in RULE_IDS:
        note = "unknown rule: ignored"
    elif w.rule in NON_WAIVABLE:
        note = f"{w.rule} cannot be waived ({NON_WAIVABLE_WHY[w.rule]}): ignored"
    return {
        "waiver_id": w.waiver_id,
        "rule": w.rule,
        "until": w.until.isoformat(),
        "reason": w.reason,
        "by": w.by,
        "at": w.at.isoformat(),
        "active": w.active(now) and note is None,
        "applied": w.waiver_id in applied,
        "note": note,
    }


def _state(reasons: list[Reason]) -> State:
    blocking = [r for r in reasons if r.blocking]
    if any(r.blocks is State.INVALID_RUN for r in blocking):
        return State.INVALID_RUN
    if any(r.blocks is State.NOT_READY for r in blocking):
        return State.NOT_READY
    return State.INSUFFICIENT_DATA if blocking else State.READY


def evaluate(
    snapshot: HistorySnapshot, policy: VerdictPolicy | None = None, now: dt.datetime | None = None
) -> Verdict:
    """The launch-readiness verdict of `snapshot` as of `now` (UTC)."""
    policy = policy or VerdictPolicy()
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    runs, invalidations, pins, waivers, verifications = as_of(
        now,
        snapshot.runs,
        snapshot.invalidations,
        snapshot.pins,
        snapshot.waivers,
        snapshot.verifications,
    )
    snapshot = dataclasses.replace(
        snapshot,
        runs=runs,
        invalidations=invalidations,
        pins=pins,
        waivers=waivers,
        verifications=verifications,
    )
    ev = Evidence.of(snapshot, policy, now)
    run_count = len(runs) if snapshot.run_count is None else snapshot.run_count
    figures: dict[str, float] = {"history_runs": float(run_count)}

    # Waivers: the newest active one per rule makes that rule's failure non-blocking.
    active: dict[str, Waiver] = {}
    for w in waivers:
        if w.rule in RULE_IDS and w.rule not in NON_WAIVABLE and w.active(now):
            active[w.rule] = w
    applied: set[int] = set()

    def waive(r: Reason) -> Reason:
        w = active.get(r.rule)
        if r.passed or w is None:
            return r
        applied.add(w.waiver_id)
        return dataclasses.replace(r, waiver_id=w.waiver_id)

    reasons: list[Reason] = []
    waived = False
    for family in FAMILIES:
        if family in JUDGED_AFTER_WAIVERS and not waived:
            reasons, waived = [waive(r) for r in reasons], True
        findings = family.judge(ev, {r.rule: r for r in reasons})
        reasons += findings.reasons
        figures.update(findings.figures)

    state = _state(reasons)
    rehearsal = not next(r for r in reasons if r.rule == "rehearsal").passed
    assert not (rehearsal and state is State.READY)  # the rehearsal rule is never waivable

    order = {rule: i for i, rule in enumerate(RULE_IDS)}
    reasons.sort(key=lambda r: order.get(r.rule, len(order)))
    trend = [
        {
            "run_id": r.run_id,
            "started_at": r.started_at.isoformat(timespec="seconds"),
            "target_kind": r.target_kind,
            "p95_ms": r.p95_ms,
            "error_rate": r.error_rate,
            "achieved_rps": r.achieved_rps,
            "valid": ev.usable(r),
        }
        for r in runs[-policy.trend_runs :]
    ]
    return Verdict(
        state=state,
        rehearsal=rehearsal,
        reasons=tuple(reasons),
        inputs_sha256=inputs_sha256(snapshot, policy),
        evaluated_at=now,
        waivers=tuple(_waiver_json(w, now, applied) for w in waivers),
        latest_run_id=ev.latest.run_id if ev.latest else None,
        figures=figures,
        trend=tuple(trend),
        policy=policy,
    )
