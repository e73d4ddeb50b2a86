"""Rule 3, regression: the latest valid run against the baseline window (the last K valid runs
with its fingerprint) and the pinned run. A regression needs both an effect above tolerance and
statistical support: a one-sided bootstrap bound for p95, a one-sided Fisher exact test for the
error rate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from kgents_pipeline.history.run_record import RunRecord
from kgents_pipeline.verdict.evidence import Evidence, Findings
from kgents_pipeline.verdict.model import Reason, Rule, failed, no_data, passed, rounded
from kgents_pipeline.verdict.stats import error_increase_pvalue, p95_difference_ci

if TYPE_CHECKING:
    pass

RULES = (
    Rule(
        "regression.p95",
        "p95 not above the baseline by more than max(+20%, +5 ms) with a one-sided 95% "
        "bootstrap bound above zero",
    ),
    Rule(
        "regression.error_rate",
        "error rate not above the baseline by more than max(+20%, +0.2 points) with Fisher p < 0.05",
    ),
)
RULE_IDS = tuple(r.id for r in RULES)
Groups = list[tuple[str, list[RunRecord]]]


def judge(ev: Evidence, earlier: Mapping[str, Reason]) -> Findings:
    judged = ev.judged
    if judged is None:
        return Findings(
            [no_data(rule, "no valid run in the history to compare") for rule in RULE_IDS]
        )
    groups, problems = _comparisons(judged, ev)
    ids = (judged.run_id, *(r.run_id for _, g in groups for r in g))
    if problems or not groups:
        msg = "; ".join(problems) or (
            "no baseline: no earlier valid run with the same fingerprint (script, k6 version, "
            "rate, duration, target)"
        )
        return Findings([no_data(rule, msg, run_ids=ids) for rule in RULE_IDS])
    findings = Findings([_p95(judged, groups, ids, ev), _error_rate(judged, groups, ids, ev)])
    for c in findings.reasons[0].observed or []:
        if isinstance(c, dict) and c.get("baseline") == "window":
            findings.figures["baseline_p95_ms"] = float(c["baseline_p95_ms"])
            findings.figures["p95_diff_ms"] = float(c["diff_ms"])
    return findings


def _comparisons(judged: RunRecord, ev: Evidence) -> tuple[Groups, list[str]]:
    """The baseline window, and the pinned run when it is usable and comparable; and why the pin
    is not, when it is not."""
    groups: Groups = []
    problems: list[str] = []
    if ev.baseline:
        groups.append(("window", ev.baseline))
    pin = ev.pin
    if pin is not None and pin.run_id is not None and pin.run_id != judged.run_id:
        pinned = ev.run(pin.run_id)
        if pinned is None:
            problems.append(f"pinned baseline {pin.run_id} is not in the history")
        elif not ev.usable(pinned):
            why = "; ".join(ev.invalid_reasons(pinned))
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
    return groups, problems


def _p95(judged: RunRecord, groups: Groups, ids: tuple[str, ...], ev: Evidence) -> Reason:
    """Effect above tolerance and a bootstrap CI of the difference above zero."""
    import numpy as np

    policy, samples = ev.policy, ev.snapshot.samples
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
        return no_data(
            "regression.p95",
            f"no raw latency samples for {', '.join(missing)}: cannot test for a regression",
            limit=limit,
            run_ids=ids,
        )
    assert cur is not None  # checked above: every run has samples
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
                "baseline_p95_ms": rounded(base_p95),
                "current_p95_ms": rounded(base_p95 + diff),
                "diff_ms": rounded(diff),
                "ci_low_ms": rounded(lo),
                "ci_high_ms": rounded(hi),
                "tolerance_ms": rounded(tol),
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
        return failed(
            "regression.p95", f"p95 regressed: {desc}", observed=comps, limit=limit, run_ids=ids
        )
    return passed(
        "regression.p95", f"no p95 regression: {desc}", observed=comps, limit=limit, run_ids=ids
    )


def _error_rate(judged: RunRecord, groups: Groups, ids: tuple[str, ...], ev: Evidence) -> Reason:
    """Effect above tolerance and a one-sided Fisher exact test."""
    policy = ev.policy
    limit = {
        "relative": policy.regression_error_rel,
        "absolute": policy.regression_error_abs,
        "alpha": policy.alpha,
    }
    counted = [judged] + [r for _, g in groups for r in g]
    missing = [r.run_id for r in counted if r.error_count is None or not r.error_total]
    if missing:
        return no_data(
            "regression.error_rate",
            f"no error counts for {', '.join(missing)}: cannot test for a regression",
            limit=limit,
            run_ids=ids,
        )
    comps = []
    ce, cn = judged.error_count or 0, judged.error_total or 0  # both known: checked above
    for name, group in groups:
        be = sum(r.error_count or 0 for r in group)
        bn = sum(r.error_total or 0 for r in group)
        base_rate, cur_rate = be / bn, ce / cn
        tol = max(policy.regression_error_rel * base_rate, policy.regression_error_abs)
        pvalue = error_increase_pvalue(ce, cn, be, bn) if cur_rate - base_rate > tol else 1.0
        comps.append(
            {
                "baseline": name,
                "run_ids": [r.run_id for r in group],
                "baseline_rate": rounded(base_rate, 5),
                "current_rate": rounded(cur_rate, 5),
                "diff": rounded(cur_rate - base_rate, 5),
                "tolerance": rounded(tol, 5),
                "p_value": rounded(pvalue, 6),
                "regression": bool(cur_rate - base_rate > tol and pvalue < policy.alpha),
            }
        )
    desc = "; ".join(
        f"{c['baseline']}: {c['current_rate']:.2%} vs {c['baseline_rate']:.2%} "
        f"(tolerance +{c['tolerance']:.2%}, p={c['p_value']:.3g})"
        for c in comps
    )
    if any(c["regression"] for c in comps):
        return failed(
            "regression.error_rate",
            f"error rate regressed: {desc}",
            observed=comps,
            limit=limit,
            run_ids=ids,
        )
    return passed(
        "regression.error_rate",
        f"no error-rate regression: {desc}",
        observed=comps,
        limit=limit,
        run_ids=ids,
    )
