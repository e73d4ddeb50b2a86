"""Rule 5, cluster evidence: the policies verified live (intent holds, no drift, labels and
selectors right) and the NATS PodDisruptionBudget protecting quorum. Offline verification is a
rehearsal, never evidence; unknown fields fail closed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kgents_pipeline.verdict.evidence import Evidence, Findings
from kgents_pipeline.verdict.model import Reason, Rule, failed, no_data, passed, rounded

RULES = (
    Rule(
        "policy",
        "a live verification younger than 24 h: intent holds, no drift, labels and selectors right",
    ),
    Rule("pdb", "the NATS PodDisruptionBudget protects quorum on the live cluster"),
)


def judge(ev: Evidence, earlier: Mapping[str, Reason]) -> Findings:
    if not ev.snapshot.verifications_table:
        msg = "no policy_verifications table in the history: policies were never verified"
        return Findings([no_data("policy", msg), no_data("pdb", msg)])
    if not ev.live:
        if ev.offline:
            at = ev.offline[-1].verified_at.isoformat(timespec="seconds")
            msg = f"only offline verifications (latest {at}): offline is a rehearsal, not evidence"
        else:
            msg = "no live policy verification recorded"
        return Findings([no_data("policy", msg), no_data("pdb", msg)])
    v = ev.live[-1]
    ref = (v.ref,) if v.ref else ()
    age_h = (ev.now - v.verified_at).total_seconds() / 3600
    where = (
        f"live verification of {v.context or '?'} at {v.verified_at.isoformat(timespec='seconds')}"
    )
    obs = {
        "context": v.context,
        "verified_at": v.verified_at.isoformat(),
        "age_h": rounded(age_h, 2),
        "passed": v.passed,
        "intent_holds": v.intent_holds,
        "drift_count": v.drift_count,
        "labels_ok": v.labels_ok,
        "unmatched_selectors": v.unmatched_selectors,
        "violations": list(v.violations[:10]),
    }
    # Known failures of the policies themselves, then what is not recorded (unknown: fail closed).
    bits = []
    if v.intent_holds is False:
        bits.append("intent does not hold")
    if v.drift_count:
        bits.append(f"{v.drift_count} drifted object(s)")
    if v.labels_ok is False:
        bits.append("namespace labels the policies select on are missing")
    if v.unmatched_selectors:
        bits.append(f"{v.unmatched_selectors} policy selector(s) match no pod")
    if v.violations:
        bits.append(f"{len(v.violations)} violation(s): {v.violations[0][:120]}")
    unknown = [
        name
        for name, value in (
            ("intent", v.intent_holds),
            ("drift", v.drift_count),
            ("the verification result (passed)", v.passed),
        )
        if value is None
    ]
    limit = {"passed": True, "intent_holds": True, "drift_count": 0, "violations": 0}
    kw: dict[str, Any] = {"observed": obs, "limit": limit, "run_ids": ref}
    reasons = []
    if age_h > ev.policy.max_age_h:
        reasons.append(
            no_data(
                "policy",
                f"{where} is {age_h:.1f} h old (> {ev.policy.max_age_h:.0f} h): verify again",
                observed=obs,
                limit={"max_age_h": ev.policy.max_age_h},
                run_ids=ref,
            )
        )
    elif bits:
        reasons.append(failed("policy", f"{where}: {'; '.join(bits)}", **kw))
    elif unknown:
        reasons.append(
            no_data(
                "policy",
                f"{where}: {', '.join(unknown)} not recorded: cannot show the policies hold",
                **kw,
            )
        )
    elif v.passed is True:
        reasons.append(
            passed("policy", f"{where}: verification passed, intent holds, no drift", **kw)
        )
    elif v.pdb_ok is False and v.labels_ok is True and v.unmatched_selectors == 0:
        # Every policy check is recorded as passing: the failed verification is the PDB's, which
        # the `pdb` rule judges (NOT_READY on its own).
        reasons.append(
            passed(
                "policy",
                f"{where}: intent holds, no drift, labels and selectors ok (the verification "
                "failed on the PodDisruptionBudget only: see pdb)",
                **kw,
            )
        )
    else:
        reasons.append(
            failed(
                "policy",
                f"{where}: the verification did not pass (passed=false: missing namespace labels, "
                "selectors matching no pod, ...); intent and drift alone are not enough",
                **kw,
            )
        )

    pobs = {"context": v.context, "verified_at": v.verified_at.isoformat(), "pdb_ok": v.pdb_ok}
    if age_h > ev.policy.max_age_h:
        reasons.append(
            no_data(
                "pdb",
                f"{where} is {age_h:.1f} h old",
                observed=pobs,
                limit={"max_age_h": ev.policy.max_age_h},
            )
        )
    elif v.pdb_ok is True:
        reasons.append(
            passed(
                "pdb",
                f"{where}: the NATS PodDisruptionBudget protects quorum",
                observed=pobs,
                run_ids=ref,
            )
        )
    elif v.pdb_ok is False:
        reasons.append(
            failed(
                "pdb",
                f"{where}: the NATS PodDisruptionBudget does not protect quorum",
                observed=pobs,
                run_ids=ref,
            )
        )
    else:
        reasons.append(
            no_data("pdb", f"{where}: PDB state not recorded", observed=pobs, run_ids=ref)
        )
    return Findings(reasons)
