"""Rehearsal: evidence from the bundled demo target or an offline cluster can never make the
verdict READY, and no waiver can change that."""

from __future__ import annotations

from collections.abc import Mapping

from kgents_pipeline.verdict.evidence import Evidence, Findings
from kgents_pipeline.verdict.model import Reason, Rule, no_data, passed

RULES = (
    Rule(
        "rehearsal",
        "no evidence in use (load tests, capacity search, cluster) comes from the demo target "
        "or an offline cluster",
        not_waivable="rehearsal evidence (demo target, offline cluster) can never make a launch "
        "READY",
    ),
)


def judge(ev: Evidence, earlier: Mapping[str, Reason]) -> Findings:
    used = ([ev.latest] if ev.latest else []) + ([ev.judged] if ev.judged else [])
    demo = list(
        dict.fromkeys(r.run_id for r in used + ev.streak + ev.baseline if r.target_kind != "remote")
    )
    sources = []
    if demo:
        sources.append(f"load test against the demo target ({', '.join(demo)})")
    if ev.offline_only:
        sources.append("cluster verified offline only")
    knee = ev.snapshot.knee
    if knee is not None and knee.target_kind != "remote" and knee.started_at <= ev.now:
        sources.append(f"capacity search against the demo target ({knee.search_id})")
    if not sources:
        return Findings(
            [passed("rehearsal", "no rehearsal evidence in use (remote target, live cluster)")]
        )
    return Findings(
        [
            no_data(
                "rehearsal",
                "rehearsal evidence cannot make the verdict READY: " + "; ".join(sources),
                observed=sources,
                run_ids=tuple(demo),
            )
        ]
    )
