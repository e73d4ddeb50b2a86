"""capacity.headroom: how far the service is from falling over. The newest valid capacity search
(`kgents-pipeline loadtest capacity`) must have found its knee, the highest arrival rate that
held, at or above `headroom_factor` x the launch rate. None measured, or measured too long ago,
is INSUFFICIENT_DATA; a knee measured against the demo target is a rehearsal (`rehearsal`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kgents_pipeline.verdict.evidence import Evidence, Findings
from kgents_pipeline.verdict.model import Reason, Rule, failed, no_data, passed, rounded

RULES = (
    Rule(
        "capacity.headroom",
        "the newest valid capacity search (within 7 days) found its knee at or above 2x the "
        "launch rate",
    ),
)


def judge(ev: Evidence, earlier: Mapping[str, Reason]) -> Findings:
    policy = ev.policy
    need = policy.headroom_factor * policy.launch_rate_rps
    limit: dict[str, Any] = {
        "min_knee_rps": need,
        "headroom_factor": policy.headroom_factor,
        "launch_rate_rps": policy.launch_rate_rps,
        "max_age_h": policy.capacity_max_age_h,
    }
    s = ev.snapshot.knee
    if s is None or s.started_at > ev.now:
        return Findings(
            [
                no_data(
                    "capacity.headroom",
                    "no valid capacity search in the history: run `kgents-pipeline loadtest "
                    "capacity` to find the knee",
                    limit=limit,
                )
            ]
        )
    ids = (s.search_id,)
    age_h = (ev.now - s.started_at).total_seconds() / 3600
    obs: dict[str, Any] = {
        "search_id": s.search_id,
        "knee_rps": s.knee_rps,
        "first_failed_rps": s.first_failed_rps,
        "failed_because": s.failed_because,
        "reached_max": s.reached_max,
        "target": s.target_url,
        "target_kind": s.target_kind,
        "age_h": rounded(age_h, 2),
    }
    findings = Findings()
    if s.knee_rps is not None:
        findings.figures["capacity_knee_rps"] = float(s.knee_rps)
    where = f"capacity search {s.search_id} ({s.target_url})"
    judged = ev.judged
    if judged is not None and _target(judged.target_kind, judged.target_url) != _target(
        s.target_kind, s.target_url
    ):
        findings.reasons.append(
            no_data(
                "capacity.headroom",
                f"{where} measured another target than the load tests "
                f"({judged.target_url}): measure this one",
                observed=obs,
                limit=limit,
                run_ids=ids,
            )
        )
    elif age_h > policy.capacity_max_age_h:
        findings.reasons.append(
            no_data(
                "capacity.headroom",
                f"{where} is {age_h:.0f} h old (> {policy.capacity_max_age_h:.0f} h): search again",
                observed=obs,
                limit=limit,
                run_ids=ids,
            )
        )
    elif s.knee_rps is None:
        findings.reasons.append(
            failed(
                "capacity.headroom",
                f"{where}: not even its first step ({s.start_rps:.0f} req/s) held "
                f"({s.failed_because}); headroom needs {need:.0f} req/s",
                observed=obs,
                limit=limit,
                run_ids=ids,
            )
        )
    else:
        at_least = "at least " if s.reached_max else ""
        broke = (
            f", {s.first_failed_rps:.0f} req/s failed: {s.failed_because}"
            if s.first_failed_rps is not None
            else " (the search reached its max without failing)"
        )
        text = f"{where}: knee {at_least}{s.knee_rps:.0f} req/s{broke}"
        factor = s.knee_rps / policy.launch_rate_rps if policy.launch_rate_rps else 0.0
        if s.knee_rps >= need:
            findings.reasons.append(
                passed(
                    "capacity.headroom",
                    f"{text}; {factor:.1f}x the launch rate >= {policy.headroom_factor:g}x",
                    observed=obs,
                    limit=limit,
                    run_ids=ids,
                )
            )
        else:
            findings.reasons.append(
                failed(
                    "capacity.headroom",
                    f"{text}; {factor:.1f}x the launch rate < {policy.headroom_factor:g}x "
                    f"({need:.0f} req/s)",
                    observed=obs,
                    limit=limit,
                    run_ids=ids,
                )
            )
    return findings


def _target(kind: str, url: str | None) -> str | None:
    return "demo" if kind != "remote" else url
