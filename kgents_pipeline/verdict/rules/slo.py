"""Rule 2, the SLO, and sustained load: p95 of successful requests, the error rate's upper
confidence bound, the achieved rate, and every 10-second window of the raw points.

`judge_run` judges one run; the verdict applies it to the latest valid run (and to each run of
the streak, for `quantity`), and `metrics_history`'s asset checks apply it to the run just
ingested (`run_checks`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from kgents_pipeline.history.run_record import RunRecord
from kgents_pipeline.history.windows import WINDOW_S, WindowStat
from kgents_pipeline.verdict.evidence import Evidence, Findings
from kgents_pipeline.verdict.model import (
    Reason,
    Rule,
    VerdictPolicy,
    failed,
    no_data,
    passed,
    rounded,
)
from kgents_pipeline.verdict.stats import wilson_upper

RULES = (
    Rule(
        "slo.p95",
        "p95 of successful requests below the limit (500 ms)",
        run_check="p95_below_500ms",
    ),
    Rule(
        "slo.error_rate",
        "the error rate's 95% Wilson upper bound below the limit (1%)",
        run_check="error_rate_below_1pct",
    ),
    Rule("slo.rate", "the achieved rate at the planned rate (95%)", run_check="sustained_rate"),
    Rule(
        "sustained",
        "every 10 s window of the raw points at the planned rate with p95 below the limit",
        run_check="sustained_rate",
    ),
)
RULE_IDS = tuple(r.id for r in RULES)


def judge(ev: Evidence, earlier: Mapping[str, Reason]) -> Findings:
    run = ev.judged
    if run is None:
        return Findings(
            [no_data(rule, "no valid run in the history to judge") for rule in RULE_IDS]
        )
    findings = Findings(judge_run(run, ev.snapshot.windows.get(run.run_id), ev.policy))
    for key in ("p95_ms", "p99_ms", "error_rate", "achieved_rps"):
        value = getattr(run, key)
        if value is not None:
            findings.figures[key] = float(value)
    if run.error_total:
        findings.figures["error_rate_upper"] = wilson_upper(
            run.error_count or 0, run.error_total, ev.policy.confidence
        )
    return findings


@dataclass(frozen=True)
class RunCheck:
    """One per-run check (an asset check of `metrics_history`): the rules that decide it."""

    name: str
    rules: tuple[Rule, ...]
    passed: bool
    message: str
    reasons: tuple[Reason, ...]

    @property
    def description(self) -> str:
        return "; ".join(r.demands for r in self.rules)


def run_check_rules() -> dict[str, tuple[Rule, ...]]:
    """Each per-run check and the rules that decide it, from the rules themselves."""
    checks: dict[str, tuple[Rule, ...]] = {}
    for rule in RULES:
        if rule.run_check:
            checks[rule.run_check] = (*checks.get(rule.run_check, ()), rule)
    return checks


def run_checks(
    run: RunRecord,
    windows: tuple[WindowStat, ...] | None,
    invalid_reasons: tuple[str, ...],
    policy: VerdictPolicy | None = None,
) -> list[RunCheck]:
    """The per-run checks of one run, judged by the verdict's own SLO rules, with the rate
    judged against this run's plan (the verdict judges it against the launch rate). An invalid
    run passes no check."""
    policy = policy or VerdictPolicy()
    floor = policy.validity.min_achieved_fraction * (run.rate or 0.0)
    reasons = {
        r.rule: r for r in judge_run(run, windows, dataclasses.replace(policy, min_rate_rps=floor))
    }
    out = []
    for name, rules in run_check_rules().items():
        decided = tuple(reasons[rule.id] for rule in rules)
        messages = [r.message for r in decided]
        if invalid_reasons:
            messages.insert(0, "invalid run: " + "; ".join(invalid_reasons))
        out.append(
            RunCheck(
                name=name,
                rules=rules,
                passed=not invalid_reasons and all(r.passed for r in decided),
                message="; ".join(messages),
                reasons=decided,
            )
        )
    return out


def judge_run(
    run: RunRecord, windows: tuple[WindowStat, ...] | None, policy: VerdictPolicy
) -> list[Reason]:
    """slo.p95, slo.error_rate, slo.rate and sustained for one valid run."""
    ids = (run.run_id,)
    out: list[Reason] = []

    lim = policy.p95_limit_ms
    if not run.ok_reqs or run.p95_ms is None:
        out.append(
            failed(
                "slo.p95",
                f"no request succeeded in run {run.run_id}: there is no success latency to judge "
                "(the all-requests p95 of refused connections is 0 ms and proves nothing)",
                observed={"ok_reqs": run.ok_reqs or 0, "p95_all_ms": rounded(run.p95_all_ms)},
                limit=lim,
                run_ids=ids,
            )
        )
    elif run.p95_ms >= lim:
        out.append(
            failed(
                "slo.p95",
                f"p95 of successful requests {run.p95_ms:.1f} ms >= {lim:.0f} ms",
                observed=rounded(run.p95_ms),
                limit=lim,
                run_ids=ids,
            )
        )
    else:
        out.append(
            passed(
                "slo.p95",
                f"p95 of successful requests {run.p95_ms:.1f} ms < {lim:.0f} ms",
                observed=rounded(run.p95_ms),
                limit=lim,
                run_ids=ids,
            )
        )

    lim = policy.error_rate_limit
    if run.error_count is None or not run.error_total:
        out.append(
            no_data(
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
        obs: dict[str, object] = {
            "errors": k,
            "requests": n,
            "rate": rounded(k / n, 5),
            "upper_bound": rounded(upper, 5),
        }
        text = (
            f"{k} errors in {n} requests ({k / n:.2%}); {policy.confidence:.0%} Wilson upper "
            f"bound {upper:.2%}"
        )
        if upper < lim:
            out.append(
                passed(
                    "slo.error_rate", f"{text} < {lim:.0%}", observed=obs, limit=lim, run_ids=ids
                )
            )
        elif k / n >= lim:
            out.append(
                failed(
                    "slo.error_rate",
                    f"{text}: rate >= {lim:.0%}",
                    observed=obs,
                    limit=lim,
                    run_ids=ids,
                )
            )
        else:
            out.append(
                no_data(
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
            no_data("slo.rate", f"run {run.run_id} has no http_reqs rate", limit=lim, run_ids=ids)
        )
    elif run.achieved_rps < lim:
        out.append(
            failed(
                "slo.rate",
                f"achieved {run.achieved_rps:.1f} req/s < {lim:.0f} req/s",
                observed=rounded(run.achieved_rps),
                limit=lim,
                run_ids=ids,
            )
        )
    else:
        out.append(
            passed(
                "slo.rate",
                f"achieved {run.achieved_rps:.1f} req/s >= {lim:.0f} req/s",
                observed=rounded(run.achieved_rps),
                limit=lim,
                run_ids=ids,
            )
        )

    limit = {"min_rps": policy.min_rate_rps, "p95_ms": policy.p95_limit_ms, "window_s": WINDOW_S}
    if not windows:
        out.append(
            no_data(
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
            "min_rps": rounded(min(w.rps for w in windows), 1),
            "max_p95_ms": rounded(
                max((w.p95_ms for w in windows if w.p95_ms is not None), default=None)
            ),
            "failing": [
                {
                    "start_s": w.index * WINDOW_S,
                    "rps": rounded(w.rps, 1),
                    "p95_ms": rounded(w.p95_ms),
                }
                for w in bad[:10]
            ],
        }
        if bad:
            first = bad[0]
            p95 = "no success" if first.p95_ms is None else f"p95 {first.p95_ms:.1f} ms"
            out.append(
                failed(
                    "sustained",
                    f"{len(bad)} of {len(windows)} {WINDOW_S} s windows fail "
                    f"(first at +{first.index * WINDOW_S} s: "
                    f"{first.rps:.1f} req/s, {p95})",
                    observed=obs,
                    limit=limit,
                    run_ids=ids,
                )
            )
        else:
            out.append(
                passed(
                    "sustained",
                    f"all {len(windows)} {WINDOW_S} s windows >= {policy.min_rate_rps:.0f} req/s with p95 < "
                    f"{policy.p95_limit_ms:.0f} ms",
                    observed=obs,
                    limit=limit,
                    run_ids=ids,
                )
            )
    return out
