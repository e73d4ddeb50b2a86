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
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from kgents_pipeline.history.run_record import RunRecord
from kgents_pipeline.history.validity import ValidityLimits, run_validity
from kgents_pipeline.history.windows import WindowStat
from kgents_pipeline.verdict.inputs import (
    BaselinePin,
    ChecklistItem,
    HistorySnapshot,
    Invalidation,
    PolicyEvidence,
    Waiver,
    as_of,
    evidence_runs,
    parse_instant,
)

RULES = (
    "validity",
    "slo.p95",
    "slo.error_rate",
    "slo.rate",
    "sustained",
    "regression.p95",
    "regression.error_rate",
    "quantity",
    "staleness",
    "policy",
    "pdb",
    "checklist",
    "rehearsal",
)
# Rules no waiver can touch, and why (the one-line refusal of `verdict waive`).
NON_WAIVABLE_WHY = {
    "validity": "an invalid run is never evidence (invalidate or re-run instead)",
    "checklist": (
        "the checklist is resolved item by item: waive a failing rule an item names, or record "
        "the item's sign-off in the checklist file"
    ),
    "rehearsal": "rehearsal evidence (demo target, offline cluster) can never make a launch READY",
}
NON_WAIVABLE = frozenset(NON_WAIVABLE_WHY)


class State(enum.StrEnum):
    READY = "READY"
    NOT_READY = "NOT_READY"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
    INVALID_RUN = "INVALID_RUN"


@dataclass(frozen=True)
class VerdictPolicy:
    """Every threshold of the verdict, in one place."""

    validity: ValidityLimits = field(default_factory=ValidityLimits)
    p95_limit_ms: float = 500.0  # SLO: p95 of successful requests below this
    error_rate_limit: float = 0.01  # SLO: Wilson upper bound of the error rate below this
    confidence: float = 0.95  # of the Wilson interval and the bootstrap CI
    min_rate_rps: float = 95.0  # SLO: achieved rate, overall and in every window
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


# ---------------------------------------------------------------------------------------------
# Small pure helpers


def parse_now(text: str | None, what: str = "--now") -> dt.datetime | None:
    """An ISO-8601 instant to evaluate the verdict as of (UTC when it names no zone; a bare date
    is that day's start); None when empty (evaluate now)."""
    return parse_instant(text, what) if text else None


def _when(at: dt.datetime) -> str:
    if at.time() == dt.time() and at.utcoffset() == dt.timedelta(0):
        return f"{at:%Y-%m-%d}"
    return at.isoformat(timespec="minutes").replace("+00:00", "Z")


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
    reasons = list(run_validity(run, policy.validity))
    inv = invalidations.get(run.run_id)
    if inv is not None:
        reasons.append(f"invalidated by {inv.by} at {inv.at:%Y-%m-%d %H:%M}Z: {inv.reason}")
    return tuple(reasons)


def wilson_upper(errors: int, total: int, confidence: float) -> float:
    """Upper bound of the Wilson score interval (two-sided `confidence`)."""
    if total <= 0:
        return 1.0
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = errors / total
    z2n = z * z / total
    centre = p + z2n / 2
    spread = z * math.sqrt(p * (1 - p) / total + z2n / (4 * total))
    return min(1.0, (centre + spread) / (1 + z2n))


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def bootstrap_p95(
    sorted_values: np.ndarray, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """`resamples` draws of the p95 (linear interpolation) of a bootstrap resample, exactly, in
    O(resamples) rather than O(resamples * n).

    A resample of a sorted sample is `sorted_values[I]` with I iid uniform ranks, and its k-th
    smallest value is `sorted_values[I_(k)]`. I = floor(n U) with U uniform, so the ranks' order
    statistics are floor(n U_(k)) with U_(k) ~ Beta(k, n - k + 1); the next one up is
    U_(k) + (1 - U_(k)) Beta(1, n - k). Same distribution as resampling, without the resamples.
    """
    n = len(sorted_values)
    h = 0.95 * (n - 1)
    lo = math.floor(h)
    frac = h - lo
    k = lo + 1  # 1-based rank of the lower order statistic
    u1 = rng.beta(k, n - k + 1, size=resamples)
    u2 = u1 + (1 - u1) * rng.beta(1, n - k, size=resamples) if frac > 0 else u1
    i1 = np.minimum((u1 * n).astype(np.int64), n - 1)
    i2 = np.minimum((u2 * n).astype(np.int64), n - 1)
    return sorted_values[i1] + frac * (sorted_values[i2] - sorted_values[i1])


def p95_difference_ci(
    current: np.ndarray, baseline: np.ndarray, policy: VerdictPolicy
) -> tuple[float, float, float]:
    """(p95(current) - p95(baseline), lower, upper): one-sided (1 - alpha) percentile bootstrap
    bounds of the difference, fixed seed."""
    cur, base = np.sort(current), np.sort(baseline)
    diff = float(np.quantile(cur, 0.95) - np.quantile(base, 0.95))
    rng = np.random.default_rng(policy.seed)
    d = bootstrap_p95(cur, policy.bootstrap_resamples, rng) - bootstrap_p95(
        base, policy.bootstrap_resamples, rng
    )
    lo, hi = np.quantile(d, [policy.alpha, 1 - policy.alpha])
    return diff, float(lo), float(hi)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def error_increase_pvalue(cur_err: int, cur_n: int, base_err: int, base_n: int) -> float:
    """One-sided Fisher exact test: is the current error proportion greater than the baseline's?

    P(X >= cur_err) for X ~ Hypergeometric(cur_n + base_n items, cur_err + base_err errors,
    cur_n drawn), summed in log space (written out: importing scipy.stats costs seconds).
    """
    total, errors = cur_n + base_n, cur_err + base_err
    log_denominator = _log_choose(total, cur_n)
    upper = min(errors, cur_n)
    tail = sum(
        math.exp(_log_choose(errors, x) + _log_choose(total - errors, cur_n - x) - log_denominator)
        for x in range(cur_err, upper + 1)
        if cur_n - x <= total - errors
    )
    return min(1.0, tail)


# ---------------------------------------------------------------------------------------------
# Per-run SLO rules (used for the judged run and for every run of the streak)


def _ok(rule: str, message: str, **kw: Any) -> Reason:
    return Reason(rule, True, message, **kw)


def _fail(rule: str, message: str, blocks: State = State.NOT_READY, **kw: Any) -> Reason:
    return Reason(rule, False, message, blocks=blocks, **kw)


def _no_data(rule: str, message: str, **kw: Any) -> Reason:
    return Reason(rule, False, message, blocks=State.INSUFFICIENT_DATA, **kw)


def slo_reasons(
    run: RunRecord, windows: tuple[WindowStat, ...] | None, policy: VerdictPolicy
) -> list[Reason]:
    """slo.p95, slo.error_rate, slo.rate and sustained for one valid run."""
    ids = (run.run_id,)
    out: list[Reason] = []

    lim = policy.p95_limit_ms
    if not run.ok_reqs or run.p95_ms is None:
        out.append(
            _fail(
                "slo.p95",
                f"no request succeeded in run {run.run_id}: there is no success latency to judge "
                "(the all-requests p95 of refused connections is 0 ms and proves nothing)",
                observed={"ok_reqs": run.ok_reqs or 0, "p95_all_ms": _r(run.p95_all_ms)},
                limit=lim,
                run_ids=ids,
            )
        )
    elif run.p95_ms >= lim:
        out.append(
            _fail(
                "slo.p95",
                f"p95 of successful requests {run.p95_ms:.1f} ms >= {lim:.0f} ms",
                observed=_r(run.p95_ms),
                limit=lim,
                run_ids=ids,
            )
        )
    else:
        out.append(
            _ok(
                "slo.p95",
                f"p95 of successful requests {run.p95_ms:.1f} ms < {lim:.0f} ms",
                observed=_r(run.p95_ms),
                limit=lim,
                run_ids=ids,
            )
        )

    lim = policy.error_rate_limit
    if run.error_count is None or not run.error_total:
        out.append(
            _no_data(
                "slo.error_rate",
                f"run {run.run_id} has no `errors` metric (count 0 or absent): the error rate "
                "cannot be judged",
                observed=None,
                limit=lim,
                run_ids=ids,
            )
        )
    else:
        n, k = run.error_total, run.error_count
        upper = wilson_upper(k, n, policy.confidence)
        obs = {"errors": k, "requests": n, "rate": _r(k / n, 5), "upper_bound": _r(upper, 5)}
        text = (
            f"{k} errors in {n} requests ({k / n:.2%}); {policy.confidence:.0%} Wilson upper "
            f"bound {upper:.2%}"
        )
        if upper < lim:
            out.append(
                _ok("slo.error_rate", f"{text} < {lim:.0%}", observed=obs, limit=lim, run_ids=ids)
            )
        elif k / n >= lim:
            out.append(
                _fail(
                    "slo.error_rate",
                    f"{text}: rate >= {lim:.0%}",
                    observed=obs,
                    limit=lim,
                    run_ids=ids,
                )
            )
        else:
            out.append(
                _no_data(
                    "slo.error_rate",
                    f"{text} >= {lim:.0%}: too few requests to show the rate is below {lim:.0%}",
                    observed=obs,
                    limit=lim,
                    run_ids=ids,
                )
            )

    lim = policy.min_rate_rps
    if run.achieved_rps is None:
        out.append(
            _no_data("slo.rate", f"run {run.run_id} has no http_reqs rate", limit=lim, run_ids=ids)
        )
    elif run.achieved_rps < lim:
        out.append(
            _fail(
                "slo.rate",
                f"achieved {run.achieved_rps:.1f} req/s < {lim:.0f} req/s",
                observed=_r(run.achieved_rps),
                limit=lim,
                run_ids=ids,
            )
        )
    else:
        out.append(
            _ok(
                "slo.rate",
                f"achieved {run.achieved_rps:.1f} req/s >= {lim:.0f} req/s",
                observed=_r(run.achieved_rps),
                limit=lim,
                run_ids=ids,
            )
        )

    limit = {"min_rps": policy.min_rate_rps, "p95_ms": policy.p95_limit_ms, "window_s": 10}
    if not windows:
        out.append(
            _no_data(
                "sustained",
                f"run {run.run_id} has no raw points: cannot show the load was sustained",
                limit=limit,
                run_ids=ids,
            )
        )
    else:
        bad = [
            w
            for w in windows
            if w.rps < policy.min_rate_rps or w.p95_ms is None or w.p95_ms >= policy.p95_limit_ms
        ]
        obs = {
            "windows": len(windows),
            "min_rps": _r(min(w.rps for w in windows), 1),
            "max_p95_ms": _r(
                max((w.p95_ms for w in windows if w.p95_ms is not None), default=None)
            ),
            "failing": [
                {"start_s": w.index * 10, "rps": _r(w.rps, 1), "p95_ms": _r(w.p95_ms)}
                for w in bad[:10]
            ],
        }
        if bad:
            first = bad[0]
            p95 = "no success" if first.p95_ms is None else f"p95 {first.p95_ms:.1f} ms"
            out.append(
                _fail(
                    "sustained",
                    f"{len(bad)} of {len(windows)} 10 s windows fail (first at +{first.index * 10} s: "
                    f"{first.rps:.1f} req/s, {p95})",
                    observed=obs,
                    limit=limit,
                    run_ids=ids,
                )
            )
        else:
            out.append(
                _ok(
                    "sustained",
                    f"all {len(windows)} 10 s windows >= {policy.min_rate_rps:.0f} req/s with p95 < "
                    f"{policy.p95_limit_ms:.0f} ms",
                    observed=obs,
                    limit=limit,
                    run_ids=ids,
                )
            )
    return out


# ---------------------------------------------------------------------------------------------
# Regression


def _regression_reasons(
    judged: RunRecord,
    baseline: list[RunRecord],
    pin: BaselinePin | None,
    runs_by_id: Mapping[str, RunRecord],
    usable: Callable[[RunRecord], bool],
    invalidations: Mapping[str, Invalidation],
    samples: Mapping[str, np.ndarray],
    policy: VerdictPolicy,
) -> list[Reason]:
    # Comparisons: the baseline window, and the pinned run when there is one.
    groups: list[tuple[str, list[RunRecord]]] = []
    problems: list[str] = []
    if baseline:
        groups.append(("window", baseline))
    if pin is not None and pin.run_id != judged.run_id:
        pinned = runs_by_id.get(pin.run_id)
        if pinned is None:
            problems.append(f"pinned baseline {pin.run_id} is not in the history")
        elif not usable(pinned):
            why = "; ".join(invalid_reasons(pinned, invalidations, policy))
            problems.append(
                f"pinned baseline {pin.run_id} is not valid ({why}): re-pin or clear it"
            )
        elif pinned.fingerprint != judged.fingerprint:
            problems.append(
                f"pinned baseline {pin.run_id} has another fingerprint (script, k6, rate, duration, "
                "target) than the latest run: not comparable; re-pin or clear it"
            )
        else:
            groups.append(("pinned", [pinned]))

    base_ids = tuple(r.run_id for _, g in groups for r in g)
    ids = (judged.run_id, *base_ids)
    out: list[Reason] = []
    if problems or not groups:
        msg = "; ".join(problems) or (
            "no baseline: no earlier valid run with the same fingerprint (script, k6 version, rate, "
            "duration, target)"
        )
        for rule in ("regression.p95", "regression.error_rate"):
            out.append(_no_data(rule, msg, run_ids=ids))
        return out

    # p95: effect above tolerance and a bootstrap CI of the difference above zero.
    cur = samples.get(judged.run_id)
    limit = {
        "relative": policy.regression_rel,
        "absolute_ms": policy.regression_abs_ms,
        "lower_bound_confidence": 1 - policy.alpha,
    }
    missing = [
        r.run_id
        for r in [judged] + [r for _, g in groups for r in g]
        if samples.get(r.run_id) is None
    ]
    if missing:
        out.append(
            _no_data(
                "regression.p95",
                f"no raw latency samples for {', '.join(missing)}: cannot test for a regression",
                limit=limit,
                run_ids=ids,
            )
        )
    else:
        comps = []
        for name, group in groups:
            base = np.concatenate([samples[r.run_id] for r in group])
            diff, lo, hi = p95_difference_ci(cur, base, policy)
            base_p95 = float(np.quantile(base, 0.95))
            tol = max(policy.regression_rel * base_p95, policy.regression_abs_ms)
            comps.append(
                {
                    "baseline": name,
                    "run_ids": [r.run_id for r in group],
                    "baseline_p95_ms": _r(base_p95),
                    "current_p95_ms": _r(base_p95 + diff),
                    "diff_ms": _r(diff),
                    "ci_low_ms": _r(lo),
                    "ci_high_ms": _r(hi),
                    "tolerance_ms": _r(tol),
                    "regression": bool(diff > tol and lo > 0),
                }
            )
        bad = [c for c in comps if c["regression"]]
        desc = "; ".join(
            f"{c['baseline']}: p95 {c['current_p95_ms']:.1f} vs {c['baseline_p95_ms']:.1f} ms "
            f"({c['diff_ms']:+.1f} ms, {1 - 2 * policy.alpha:.0%} CI [{c['ci_low_ms']:+.1f}, {c['ci_high_ms']:+.1f}], "
            f"tolerance {c['tolerance_ms']:.1f} ms)"
            for c in comps
        )
        if bad:
            out.append(
                _fail(
                    "regression.p95",
                    f"p95 regressed: {desc}",
                    observed=comps,
                    limit=limit,
                    run_ids=ids,
                )
            )
        else:
            out.append(
                _ok(
                    "regression.p95",
                    f"no p95 regression: {desc}",
                    observed=comps,
                    limit=limit,
                    run_ids=ids,
                )
            )

    # Error rate: effect above tolerance and a one-sided Fisher exact test.
    limit = {
        "relative": policy.regression_error_rel,
        "absolute": policy.regression_error_abs,
        "alpha": policy.alpha,
    }
    counted = [judged] + [r for _, g in groups for r in g]
    missing = [r.run_id for r in counted if r.error_count is None or not r.error_total]
    if missing:
        out.append(
            _no_data(
                "regression.error_rate",
                f"no error counts for {', '.join(missing)}: cannot test for a regression",
                limit=limit,
                run_ids=ids,
            )
        )
        return out
    comps = []
    for name, group in groups:
        be = sum(r.error_count for r in group)
        bn = sum(r.error_total for r in group)
        ce, cn = judged.error_count, judged.error_total
        base_rate, cur_rate = be / bn, ce / cn
        tol = max(policy.regression_error_rel * base_rate, policy.regression_error_abs)
        pvalue = error_increase_pvalue(ce, cn, be, bn) if cur_rate - base_rate > tol else 1.0
        comps.append(
            {
                "baseline": name,
                "run_ids": [r.run_id for r in group],
                "baseline_rate": _r(base_rate, 5),
                "current_rate": _r(cur_rate, 5),
                "diff": _r(cur_rate - base_rate, 5),
                "tolerance": _r(tol, 5),
                "p_value": _r(pvalue, 6),
                "regression": bool(cur_rate - base_rate > tol and pvalue < policy.alpha),
            }
        )
    desc = "; ".join(
        f"{c['baseline']}: {c['current_rate']:.2%} vs {c['baseline_rate']:.2%} "
        f"(tolerance +{c['tolerance']:.2%}, p={c['p_value']:.3g})"
        for c in comps
    )
    if any(c["regression"] for c in comps):
        out.append(
            _fail(
                "regression.error_rate",
                f"error rate regressed: {desc}",
                observed=comps,
                limit=limit,
                run_ids=ids,
            )
        )
    else:
        out.append(
            _ok(
                "regression.error_rate",
                f"no error-rate regression: {desc}",
                observed=comps,
                limit=limit,
                run_ids=ids,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Cluster evidence and checklist


def _policy_reasons(
    snapshot_has_table: bool,
    verifications: Sequence[PolicyEvidence],
    now: dt.datetime,
    policy: VerdictPolicy,
) -> tuple[list[Reason], PolicyEvidence | None, bool]:
    """(policy + pdb reasons, the live evidence used, offline-only rehearsal?)."""
    live = [e for e in verifications if e.mode == "live"]
    offline = [e for e in verifications if e.mode == "offline"]
    if not snapshot_has_table:
        msg = "no policy_verifications table in the history: policies were never verified"
        return [_no_data("policy", msg), _no_data("pdb", msg)], None, False
    if not live:
        if offline:
            at = offline[-1].verified_at.isoformat(timespec="seconds")
            msg = f"only offline verifications (latest {at}): offline is a rehearsal, not evidence"
        else:
            msg = "no live policy verification recorded"
        return [_no_data("policy", msg), _no_data("pdb", msg)], None, bool(offline)
    ev = live[-1]
    ref = (ev.ref,) if ev.ref else ()
    age_h = (now - ev.verified_at).total_seconds() / 3600
    where = f"live verification of {ev.context or '?'} at {ev.verified_at.isoformat(timespec='seconds')}"
    obs = {
        "context": ev.context,
        "verified_at": ev.verified_at.isoformat(),
        "age_h": _r(age_h, 2),
        "passed": ev.passed,
        "intent_holds": ev.intent_holds,
        "drift_count": ev.drift_count,
        "labels_ok": ev.labels_ok,
        "unmatched_selectors": ev.unmatched_selectors,
        "violations": list(ev.violations[:10]),
    }
    # Known failures of the policies themselves, then what is not recorded (unknown: fail closed).
    bits = []
    if ev.intent_holds is False:
        bits.append("intent does not hold")
    if ev.drift_count:
        bits.append(f"{ev.drift_count} drifted object(s)")
    if ev.labels_ok is False:
        bits.append("namespace labels the policies select on are missing")
    if ev.unmatched_selectors:
        bits.append(f"{ev.unmatched_selectors} policy selector(s) match no pod")
    if ev.violations:
        bits.append(f"{len(ev.violations)} violation(s): {ev.violations[0][:120]}")
    unknown = [
        name
        for name, value in (
            ("intent", ev.intent_holds),
            ("drift", ev.drift_count),
            ("the verification result (passed)", ev.passed),
        )
        if value is None
    ]
    limit = {"passed": True, "intent_holds": True, "drift_count": 0, "violations": 0}
    kw = {"observed": obs, "limit": limit, "run_ids": ref}
    reasons = []
    if age_h > policy.max_age_h:
        reasons.append(
            _no_data(
                "policy",
                f"{where} is {age_h:.1f} h old (> {policy.max_age_h:.0f} h): verify again",
                observed=obs,
                limit={"max_age_h": policy.max_age_h},
                run_ids=ref,
            )
        )
    elif bits:
        reasons.append(_fail("policy", f"{where}: {'; '.join(bits)}", **kw))
    elif unknown:
        reasons.append(
            _no_data(
                "policy",
                f"{where}: {', '.join(unknown)} not recorded: cannot show the policies hold",
                **kw,
            )
        )
    elif ev.passed is True:
        reasons.append(_ok("policy", f"{where}: verification passed, intent holds, no drift", **kw))
    elif ev.pdb_ok is False and ev.labels_ok is True and ev.unmatched_selectors == 0:
        # Every policy check is recorded as passing: the failed verification is the PDB's, which
        # the `pdb` rule judges (NOT_READY on its own).
        reasons.append(
            _ok(
                "policy",
                f"{where}: intent holds, no drift, labels and selectors ok (the verification "
                "failed on the PodDisruptionBudget only: see pdb)",
                **kw,
            )
        )
    else:
        reasons.append(
            _fail(
                "policy",
                f"{where}: the verification did not pass (passed=false: missing namespace labels, "
                "selectors matching no pod, ...); intent and drift alone are not enough",
                **kw,
            )
        )

    pobs = {"context": ev.context, "verified_at": ev.verified_at.isoformat(), "pdb_ok": ev.pdb_ok}
    if age_h > policy.max_age_h:
        reasons.append(
            _no_data(
                "pdb",
                f"{where} is {age_h:.1f} h old",
                observed=pobs,
                limit={"max_age_h": policy.max_age_h},
            )
        )
    elif ev.pdb_ok is True:
        reasons.append(
            _ok(
                "pdb",
                f"{where}: the NATS PodDisruptionBudget protects quorum",
                observed=pobs,
                run_ids=ref,
            )
        )
    elif ev.pdb_ok is False:
        reasons.append(
            _fail(
                "pdb",
                f"{where}: the NATS PodDisruptionBudget does not protect quorum",
                observed=pobs,
                run_ids=ref,
            )
        )
    else:
        reasons.append(
            _no_data("pdb", f"{where}: PDB state not recorded", observed=pobs, run_ids=ref)
        )
    return reasons, ev, False


def _checklist_reason(
    items: tuple[ChecklistItem, ...] | None,
    source: str,
    by_rule: Mapping[str, Reason],
    now: dt.datetime,
) -> Reason:
    """Every item resolved by its rules (passed, or failed under an active waiver: "resolved by
    waiver #n"), by a sign-off, or deferred (not HIGH); a sign-off or deferral counts only from
    its `at` on. An item without rules can only be resolved by its sign-off."""
    if items is None:
        return _no_data("checklist", f"no launch checklist at {source}")
    rows = []
    open_high: list[tuple[ChecklistItem, list[Reason], str]] = []
    by_waiver: list[str] = []
    for item in items:
        failing: list[Reason] = []
        waived: list[Reason] = []
        for rule in item.resolved_by:
            r = by_rule.get(rule) or _no_data(rule, f"rule {rule!r} is not part of the verdict")
            if not r.passed:
                (failing if r.waiver_id is None else waived).append(r)
        signoff = item.signoff if item.signoff is not None and item.signoff.at <= now else None
        deferred = item.deferred if item.deferred is not None and item.deferred.at <= now else None
        pending = [
            f"{kind} by {s.by} dated {_when(s.at)} does not count before then"
            for kind, s in (("sign-off", item.signoff), ("deferral", item.deferred))
            if s is not None and s.at > now
        ]
        if item.resolved_by and not failing:
            status = "resolved"
            passed = [r for r in item.resolved_by if r not in {w.rule for w in waived}]
            parts = [f"resolved by waiver #{r.waiver_id} ({r.rule})" for r in waived]
            if passed:
                parts.append("evidence: " + ", ".join(passed))
            how = "; ".join(parts)
            by_waiver += [f"{item.id} by waiver #{r.waiver_id} ({r.rule})" for r in waived]
        elif signoff is not None:
            status, how = (
                "resolved",
                f"signed off by {signoff.by} on {_when(signoff.at)}: {signoff.note}",
            )
        elif deferred is not None:
            status, how = (
                "deferred",
                f"deferred by {deferred.by} on {_when(deferred.at)}: {deferred.note}",
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
        return _ok(
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


# ---------------------------------------------------------------------------------------------
# Inputs hash


def inputs_sha256(snapshot: HistorySnapshot, policy: VerdictPolicy) -> str:
    """sha256 over everything the verdict reads (not the clock: `evaluated_at` records that)."""
    h = hashlib.sha256()
    h.update(repr(policy).encode())
    # A run is identified by its id and the ingest's content hash (run.json + summary.json);
    # rows without one (built by hand) are hashed field by field.
    h.update(
        "\n".join(
            f"{r.run_id}:{r.content_sha256}" if r.content_sha256 else repr(tuple(vars(r).values()))
            for r in snapshot.runs
        ).encode()
    )
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
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# The verdict


def _waiver_json(w: Waiver, now: dt.datetime, applied: set[int]) -> dict[str, Any]:
    note = None
    if w.rule not in RULES:
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
    digest = inputs_sha256(snapshot, policy)
    usable = usability(invalidations, policy)
    latest = runs[-1] if runs else None
    judged, streak, baseline = evidence_runs(
        runs, usable, streak=policy.min_consecutive_runs, baseline_window=policy.baseline_runs
    )
    reasons: list[Reason] = []
    figures: dict[str, float] = {"history_runs": float(len(runs))}

    # 1. Validity of the latest run.
    if latest is None:
        reasons.append(_no_data("validity", "the history holds no run: run the load test"))
    else:
        why = invalid_reasons(latest, invalidations, policy)
        if why:
            reasons.append(
                _fail(
                    "validity",
                    f"latest run {latest.run_id} is not evidence: {'; '.join(why)}"
                    + (
                        f" (judging the latest valid run {judged.run_id} to explain)"
                        if judged
                        else ""
                    ),
                    blocks=State.INVALID_RUN,
                    observed=list(why),
                    limit={
                        "exit_codes": [0, 99],
                        "min_achieved_fraction": policy.validity.min_achieved_fraction,
                        "max_dropped_fraction": policy.validity.max_dropped_fraction,
                        "min_duration_fraction": policy.validity.min_duration_fraction,
                    },
                    run_ids=(latest.run_id,),
                )
            )
        else:
            reasons.append(
                _ok("validity", f"latest run {latest.run_id} is valid", run_ids=(latest.run_id,))
            )

    # 2. SLO and sustained load of the latest valid run.
    if judged is None:
        for rule in ("slo.p95", "slo.error_rate", "slo.rate", "sustained"):
            reasons.append(_no_data(rule, "no valid run in the history to judge"))
    else:
        reasons.extend(slo_reasons(judged, snapshot.windows.get(judged.run_id), policy))
        figures.update(
            {
                k: float(v)
                for k, v in {
                    "p95_ms": judged.p95_ms,
                    "p99_ms": judged.p99_ms,
                    "error_rate": judged.error_rate,
                    "achieved_rps": judged.achieved_rps,
                }.items()
                if v is not None
            }
        )
        if judged.error_total:
            figures["error_rate_upper"] = wilson_upper(
                judged.error_count or 0, judged.error_total, policy.confidence
            )

    # 3. Regression against the baseline window and the pinned baseline.
    pin = pins[-1] if pins and pins[-1].run_id else None
    if judged is None:
        for rule in ("regression.p95", "regression.error_rate"):
            reasons.append(_no_data(rule, "no valid run in the history to compare"))
    else:
        runs_by_id = {r.run_id: r for r in runs} if pin else {}
        reasons.extend(
            _regression_reasons(
                judged, baseline, pin, runs_by_id, usable, invalidations, snapshot.samples, policy
            )
        )
        for c in reasons[-2].observed or []:
            if isinstance(c, dict) and c.get("baseline") == "window":
                figures["baseline_p95_ms"] = float(c["baseline_p95_ms"])
                figures["p95_diff_ms"] = float(c["diff_ms"])

    # 4. Quantity (newest M valid runs of this fingerprint all pass) and staleness.
    m = policy.min_consecutive_runs
    passing = 0
    for run in streak:
        if all(r.passed for r in slo_reasons(run, snapshot.windows.get(run.run_id), policy)):
            passing += 1
        else:
            break
    figures["consecutive_passing_runs"] = float(passing)
    streak_ids = tuple(r.run_id for r in streak)
    if passing >= m:
        reasons.append(
            _ok(
                "quantity",
                f"the newest {m} valid runs of this fingerprint all pass",
                observed=passing,
                limit=m,
                run_ids=streak_ids,
            )
        )
    else:
        reasons.append(
            _no_data(
                "quantity",
                f"{passing} consecutive passing valid run(s) (of {len(streak)} valid with this "
                f"fingerprint), need {m}",
                observed=passing,
                limit=m,
                run_ids=streak_ids,
            )
        )
    if judged is None:
        reasons.append(_no_data("staleness", "no valid run in the history", limit=policy.max_age_h))
    else:
        age_h = (now - judged.started_at).total_seconds() / 3600
        figures["latest_run_age_h"] = age_h
        text = f"newest valid run {judged.run_id} started {age_h:.1f} h ago"
        kw = {"observed": _r(age_h, 2), "limit": policy.max_age_h, "run_ids": (judged.run_id,)}
        if age_h > policy.max_age_h:
            reasons.append(
                _no_data("staleness", f"{text} (> {policy.max_age_h:.0f} h): run it again", **kw)
            )
        else:
            reasons.append(_ok("staleness", f"{text} (<= {policy.max_age_h:.0f} h)", **kw))

    # 5. Cluster evidence.
    cluster, _live, offline_only = _policy_reasons(
        snapshot.verifications_table, verifications, now, policy
    )
    reasons.extend(cluster)

    # Rehearsal: evidence from the demo target or an offline cluster can never be READY.
    sources = []
    demo = [
        r.run_id
        for r in ([latest] if latest else []) + ([judged] if judged else []) + streak + baseline
        if r.target_kind != "remote"
    ]
    if demo:
        sources.append(f"load test against the demo target ({', '.join(dict.fromkeys(demo))})")
    if offline_only:
        sources.append("cluster verified offline only")
    rehearsal = bool(sources)
    if rehearsal:
        reasons.append(
            _no_data(
                "rehearsal",
                "rehearsal evidence cannot make the verdict READY: " + "; ".join(sources),
                observed=sources,
                run_ids=tuple(dict.fromkeys(demo)),
            )
        )
    else:
        reasons.append(
            _ok("rehearsal", "no rehearsal evidence in use (remote target, live cluster)")
        )

    # Waivers: the newest active one per rule makes that rule's failure non-blocking.
    active: dict[str, Waiver] = {}
    for w in waivers:
        if w.rule in RULES and w.rule not in NON_WAIVABLE and w.active(now):
            active[w.rule] = w
    applied: set[int] = set()

    def waive(r: Reason) -> Reason:
        w = active.get(r.rule)
        if r.passed or w is None:
            return r
        applied.add(w.waiver_id)
        return dataclasses.replace(r, waiver_id=w.waiver_id)

    reasons = [waive(r) for r in reasons]

    # 6. Checklist, over the reasons above (waivers included); never waived itself.
    by_rule = {r.rule: r for r in reasons}
    reasons.append(_checklist_reason(snapshot.checklist, snapshot.checklist_source, by_rule, now))

    blocking = [r for r in reasons if r.blocking]
    if any(r.blocks is State.INVALID_RUN for r in blocking):
        state = State.INVALID_RUN
    elif any(r.blocks is State.NOT_READY for r in blocking):
        state = State.NOT_READY
    elif blocking:
        state = State.INSUFFICIENT_DATA
    else:
        state = State.READY
    assert not (rehearsal and state is State.READY)  # the rehearsal rule is never waivable

    order = {rule: i for i, rule in enumerate(RULES)}
    reasons.sort(key=lambda r: order.get(r.rule, len(order)))
    trend = []
    for r in runs[-policy.trend_runs :]:
        trend.append(
            {
                "run_id": r.run_id,
                "started_at": r.started_at.isoformat(timespec="seconds"),
                "target_kind": r.target_kind,
                "p95_ms": r.p95_ms,
                "error_rate": r.error_rate,
                "achieved_rps": r.achieved_rps,
                "valid": usable(r),
            }
        )
    return Verdict(
        state=state,
        rehearsal=rehearsal,
        reasons=tuple(reasons),
        inputs_sha256=digest,
        evaluated_at=now,
        waivers=tuple(_waiver_json(w, now, applied) for w in waivers),
        latest_run_id=latest.run_id if latest else None,
        figures=figures,
        trend=tuple(trend),
        policy=policy,
    )


EXIT_CODES = {State.READY: 0, State.NOT_READY: 1, State.INSUFFICIENT_DATA: 1, State.INVALID_RUN: 1}


def baseline_summary(
    snapshot: HistorySnapshot, policy: VerdictPolicy | None = None
) -> dict[str, Any]:
    """The baseline the latest valid run is compared with: the window runs, their pooled p95
    (from the raw samples) and error rate, and the pinned run."""
    policy = policy or VerdictPolicy()
    usable = usability(snapshot.invalidations, policy)
    judged, _, window = evidence_runs(
        snapshot.runs,
        usable,
        streak=policy.min_consecutive_runs,
        baseline_window=policy.baseline_runs,
    )
    pin = snapshot.pins[-1].run_id if snapshot.pins and snapshot.pins[-1].run_id else None
    arrays = [snapshot.samples[r.run_id] for r in window if r.run_id in snapshot.samples]
    errors = [
        (r.error_count, r.error_total)
        for r in window
        if r.error_count is not None and r.error_total
    ]
    return {
        "latest_run_id": judged.run_id if judged else None,
        "fingerprint": None
        if judged is None
        else dict(
            zip(
                ("script_sha256", "k6_version", "rate", "duration_s", "target_url"),
                judged.fingerprint,
                strict=True,
            )
        ),
        "run_ids": [r.run_id for r in window],
        "runs": [
            {
                "run_id": r.run_id,
                "p95_ms": _r(r.p95_ms),
                "p99_ms": _r(r.p99_ms),
                "error_rate": _r(r.error_rate, 5),
                "achieved_rps": _r(r.achieved_rps, 1),
            }
            for r in window
        ],
        "p95_ms": float(np.quantile(np.concatenate(arrays), 0.95)) if arrays else None,
        "error_rate": (sum(e for e, _ in errors) / sum(n for _, n in errors)) if errors else None,
        "pinned_run_id": pin,
    }
