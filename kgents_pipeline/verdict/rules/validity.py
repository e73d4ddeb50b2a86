"""Rule 1, validity: is the latest run evidence at all? An invalid run is never evidence either
way; the other rules still judge the latest valid run, to explain."""

from __future__ import annotations

from collections.abc import Mapping

from kgents_pipeline.history.validity import VALID_EXIT_CODES
from kgents_pipeline.verdict.evidence import Evidence, Findings
from kgents_pipeline.verdict.model import Reason, Rule, State, failed, no_data, passed

RULES = (
    Rule(
        "validity",
        "the latest run is evidence: k6 finished (exit 0 or 99), its summary is whole, it sent "
        "the planned load for the planned time, and no operator invalidated it",
        not_waivable="an invalid run is never evidence (invalidate or re-run instead)",
    ),
)


def judge(ev: Evidence, earlier: Mapping[str, Reason]) -> Findings:
    latest, judged, policy = ev.latest, ev.judged, ev.policy
    if latest is None:
        return Findings([no_data("validity", "the history holds no run: run the load test")])
    why = ev.invalid_reasons(latest)
    if not why:
        return Findings(
            [passed("validity", f"latest run {latest.run_id} is valid", run_ids=(latest.run_id,))]
        )
    explain = f" (judging the latest valid run {judged.run_id} to explain)" if judged else ""
    return Findings(
        [
            failed(
                "validity",
                f"latest run {latest.run_id} is not evidence: {'; '.join(why)}{explain}",
                blocks=State.INVALID_RUN,
                observed=list(why),
                limit={
                    "exit_codes": list(VALID_EXIT_CODES),
                    "min_achieved_fraction": policy.validity.min_achieved_fraction,
                    "max_dropped_fraction": policy.validity.max_dropped_fraction,
                    "min_duration_fraction": policy.validity.min_duration_fraction,
                },
                run_ids=(latest.run_id,),
            )
        ]
    )
