"""The evidence every rule family judges: the snapshot as of `now`, and the runs that matter in
it, worked out once (the latest run, the latest valid one, its fingerprint's streak and baseline
window, the pin, the live and offline verifications)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kgents_pipeline.history.cluster import PolicyEvidence
from kgents_pipeline.history.controls import BaselinePin, Invalidation
from kgents_pipeline.history.run_record import RunRecord
from kgents_pipeline.history.validity import run_validity
from kgents_pipeline.verdict.inputs import HistorySnapshot, evidence_runs
from kgents_pipeline.verdict.model import Reason, VerdictPolicy


def usability(
    invalidations: Mapping[str, Invalidation], policy: VerdictPolicy
) -> Callable[[RunRecord], bool]:
    """Is a run evidence at all: valid by the policy's limits and not invalidated."""
    cache: dict[str, bool] = {}

    def usable(run: RunRecord) -> bool:
        hit = cache.get(run.run_id)
        if hit is None:
            hit = run.run_id not in invalidations and not run_validity(run, policy.validity)
            cache[run.run_id] = hit
        return hit

    return usable


def invalid_reasons(
    run: RunRecord, invalidations: Mapping[str, Invalidation], policy: VerdictPolicy
) -> tuple[str, ...]:
    """Why a run is not evidence (validity limits, an operator's invalidation); empty if it is."""
    reasons = list(run_validity(run, policy.validity))
    inv = invalidations.get(run.run_id)
    if inv is not None:
        reasons.append(f"invalidated by {inv.by} at {inv.at:%Y-%m-%d %H:%M}Z: {inv.reason}")
    return tuple(reasons)


@dataclass(frozen=True)
class Evidence:
    """What the rules judge. Runs are newest first in `streak` and `baseline`."""

    snapshot: HistorySnapshot
    policy: VerdictPolicy
    now: dt.datetime
    usable: Callable[[RunRecord], bool]
    latest: RunRecord | None
    judged: RunRecord | None  # the latest usable run: the one the SLO rules judge
    streak: list[RunRecord]  # newest min_consecutive_runs usable runs of judged's fingerprint
    baseline: list[RunRecord]  # the baseline window: usable runs of that fingerprint before it
    pin: BaselinePin | None  # the current pin (None: none, or cleared)
    live: tuple[PolicyEvidence, ...]
    offline: tuple[PolicyEvidence, ...]

    @classmethod
    def of(cls, snapshot: HistorySnapshot, policy: VerdictPolicy, now: dt.datetime) -> Evidence:
        usable = usability(snapshot.invalidations, policy)
        judged, streak, baseline = evidence_runs(
            snapshot.runs,
            usable,
            streak=policy.min_consecutive_runs,
            baseline_window=policy.baseline_runs,
        )
        pins = snapshot.pins
        return cls(
            snapshot=snapshot,
            policy=policy,
            now=now,
            usable=usable,
            latest=snapshot.runs[-1] if snapshot.runs else None,
            judged=judged,
            streak=streak,
            baseline=baseline,
            pin=pins[-1] if pins and pins[-1].run_id else None,
            live=tuple(e for e in snapshot.verifications if e.mode == "live"),
            offline=tuple(e for e in snapshot.verifications if e.mode == "offline"),
        )

    @property
    def offline_only(self) -> bool:
        """Verified, but only offline: a rehearsal."""
        return self.snapshot.verifications_table and not self.live and bool(self.offline)

    def run(self, run_id: str) -> RunRecord | None:
        return next((r for r in reversed(self.snapshot.runs) if r.run_id == run_id), None)

    def invalid_reasons(self, run: RunRecord) -> tuple[str, ...]:
        return invalid_reasons(run, self.snapshot.invalidations, self.policy)


@dataclass
class Findings:
    """What a family's `judge` returns: one reason per rule, and figures for the report and the
    asset's plotted metadata."""

    reasons: list[Reason] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
