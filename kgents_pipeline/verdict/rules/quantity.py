"""Rule 4, quantity and staleness: enough consecutive valid passing runs of the latest
fingerprint, and the newest valid run recent enough."""

from __future__ import annotations

from collections.abc import Mapping

from kgents_pipeline.verdict.evidence import Evidence, Findings
from kgents_pipeline.verdict.model import Reason, Rule, no_data, passed, rounded
from kgents_pipeline.verdict.rules.slo import judge_run

RULES = (
    Rule("quantity", "the newest 3 valid runs of the latest fingerprint all pass the SLO"),
    Rule("staleness", "the newest valid run started within 24 h"),
)


def judge(ev: Evidence, earlier: Mapping[str, Reason]) -> Findings:
    policy, m = ev.policy, ev.policy.min_consecutive_runs
    findings = Findings()
    passing = 0
    for run in ev.streak:
        if all(r.passed for r in judge_run(run, ev.snapshot.windows.get(run.run_id), policy)):
            passing += 1
        else:
            break
    findings.figures["consecutive_passing_runs"] = float(passing)
    streak_ids = tuple(r.run_id for r in ev.streak)
    if passing >= m:
        findings.reasons.append(
            passed(
                "quantity",
                f"the newest {m} valid runs of this fingerprint all pass",
                observed=passing,
                limit=m,
                run_ids=streak_ids,
            )
        )
    else:
        findings.reasons.append(
            no_data(
                "quantity",
                f"{passing} consecutive passing valid run(s) (of {len(ev.streak)} valid with this "
                f"fingerprint), need {m}",
                observed=passing,
                limit=m,
                run_ids=streak_ids,
            )
        )

    judged = ev.judged
    if judged is None:
        findings.reasons.append(
            no_data("staleness", "no valid run in the history", limit=policy.max_age_h)
        )
        return findings
    age_h = (ev.now - judged.started_at).total_seconds() / 3600
    findings.figures["latest_run_age_h"] = age_h
    text = f"newest valid run {judged.run_id} started {age_h:.1f} h ago"
    kw = {"observed": rounded(age_h, 2), "limit": policy.max_age_h, "run_ids": (judged.run_id,)}
    if age_h > policy.max_age_h:
        findings.reasons.append(
            no_data("staleness", f"{text} (> {policy.max_age_h:.0f} h): run it again", **kw)
        )
    else:
        findings.reasons.append(passed("staleness", f"{text} (<= {policy.max_age_h:.0f} h)", **kw))
    return findings
