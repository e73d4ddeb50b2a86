"""What a verdict is made of: states, rules, reasons, the policy (every threshold) and the verdict.

Every rule has one shape: a `Rule` (its id, what it demands, whether it can be waived, the
per-run asset check it decides, if any) and, in its family's module under `rules/`, a `judge`
that turns the evidence into one `Reason` per rule. The CLI, the assets' checks and the report
all read those reasons; nothing else judges.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kgents_pipeline.history.validity import ValidityLimits
from kgents_pipeline.settings import HEADROOM_FACTOR, LAUNCH_RATE_RPS, P95_LIMIT_MS


class State(enum.StrEnum):
    READY = "READY"
    NOT_READY = "NOT_READY"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
    INVALID_RUN = "INVALID_RUN"


EXIT_CODES = {State.READY: 0, State.NOT_READY: 1, State.INSUFFICIENT_DATA: 1, State.INVALID_RUN: 1}


@dataclass(frozen=True)
class Rule:
    """One rule of the verdict."""

    id: str
    demands: str  # what passing means, in a line (check descriptions, docs)
    not_waivable: str = ""  # why no waiver can touch it; empty: waivable
    run_check: str = ""  # the per-run asset check of metrics_history this rule decides

    @property
    def waivable(self) -> bool:
        return not self.not_waivable


@dataclass(frozen=True)
class VerdictPolicy:
    """Every threshold of the verdict, in one place."""

    validity: ValidityLimits = field(default_factory=ValidityLimits)
    p95_limit_ms: float = P95_LIMIT_MS  # SLO: p95 of successful requests below this
    error_rate_limit: float = 0.01  # SLO: Wilson upper bound of the error rate below this
    confidence: float = 0.95  # of the Wilson interval and the bootstrap CI
    min_rate_rps: float = 0.95 * LAUNCH_RATE_RPS  # SLO: achieved rate, overall and every window
    baseline_runs: int = 5  # K: baseline window (valid runs, same fingerprint)
    min_consecutive_runs: int = 3  # M: newest valid runs that must all pass
    max_age_h: float = 24.0  # H: newest run and live verification younger than this
    regression_rel: float = 0.20  # p95 regression effect: above +20% of the baseline p95 ...
    regression_abs_ms: float = 5.0  # ... and above +5 ms (loopback jitter cannot trip it)
    regression_error_rel: float = 0.20  # error-rate regression effect: +20% relative ...
    regression_error_abs: float = 0.002  # ... and +0.2 percentage points absolute
    alpha: float = 0.05  # significance of the regression tests (one-sided)
    bootstrap_resamples: int = 4000
    seed: int = 20260101  # fixed: the same history always gives the same CI
    trend_runs: int = 20  # runs shown in the report
    launch_rate_rps: float = LAUNCH_RATE_RPS  # the expected peak the service launches with
    # capacity.headroom: the newest valid knee at least this many times the launch rate
    # (KGENTS_HEADROOM_FACTOR), measured within this many hours.
    headroom_factor: float = field(default_factory=HEADROOM_FACTOR.number)
    capacity_max_age_h: float = 24.0 * 7

    def __post_init__(self) -> None:
        if self.baseline_runs < 1 or self.min_consecutive_runs < 1:
            raise ValueError("baseline_runs and min_consecutive_runs must be >= 1")


@dataclass(frozen=True)
class Reason:
    rule: str
    passed: bool
    message: str
    observed: Any = None
    limit: Any = None
    run_ids: tuple[str, ...] = ()
    blocks: State | None = None  # the state a failure leads to (None when passed)
    waiver_id: int | None = None  # an active waiver makes this failure non-blocking

    @property
    def blocking(self) -> bool:
        return not self.passed and self.waiver_id is None

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "passed": self.passed,
            "message": self.message,
            "observed": self.observed,
            "limit": self.limit,
            "run_ids": list(self.run_ids),
            "blocks": None if self.blocks is None else str(self.blocks),
            "waived": self.waiver_id is not None,
            "waiver_id": self.waiver_id,
        }


def passed(rule: str, message: str, **kw: Any) -> Reason:
    return Reason(rule, True, message, **kw)


def failed(rule: str, message: str, blocks: State = State.NOT_READY, **kw: Any) -> Reason:
    """A failure on evidence (NOT_READY unless `blocks` says otherwise)."""
    return Reason(rule, False, message, blocks=blocks, **kw)


def no_data(rule: str, message: str, **kw: Any) -> Reason:
    """Evidence missing, too thin or too old: INSUFFICIENT_DATA."""
    return Reason(rule, False, message, blocks=State.INSUFFICIENT_DATA, **kw)


@dataclass(frozen=True)
class Verdict:
    state: State
    rehearsal: bool
    reasons: tuple[Reason, ...]
    inputs_sha256: str
    evaluated_at: dt.datetime
    waivers: tuple[dict[str, Any], ...]
    latest_run_id: str | None
    figures: Mapping[str, float] = field(default_factory=dict)
    trend: tuple[dict[str, Any], ...] = ()
    policy: VerdictPolicy = field(default_factory=VerdictPolicy, repr=False, compare=False)

    @property
    def ready(self) -> bool:
        return self.state is State.READY

    @property
    def blocking(self) -> tuple[Reason, ...]:
        """The reasons that keep the verdict from READY."""
        return tuple(r for r in self.reasons if r.blocking)

    def reason(self, rule: str) -> Reason:
        return next(r for r in self.reasons if r.rule == rule)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": str(self.state),
            "rehearsal": self.rehearsal,
            "reasons": [r.to_json() for r in self.reasons],
            "inputs_sha256": self.inputs_sha256,
            "evaluated_at": self.evaluated_at.isoformat(),
            "waivers": list(self.waivers),
            "latest_run_id": self.latest_run_id,
            "figures": dict(self.figures),
        }


def rounded(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def when(at: dt.datetime) -> str:
    """A date, or a date-time to the minute, as people write it."""
    if at.time() == dt.time() and at.utcoffset() == dt.timedelta(0):
        return f"{at:%Y-%m-%d}"
    return at.isoformat(timespec="minutes").replace("+00:00", "Z")
