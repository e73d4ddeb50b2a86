"""The archive is the source of truth: a run that is archived but not in the history (its ingest
failed on a lock or a full disk, its load test was killed), or changed in the archive after it
was ingested, keeps the verdict from READY and is named until it is ingested. No waiver touches
it: the remedy is one command, not a decision."""

from __future__ import annotations

from collections.abc import Mapping

from kgents_pipeline.verdict.evidence import Evidence, Findings
from kgents_pipeline.verdict.model import Reason, Rule, no_data, passed

RULES = (
    Rule(
        "archive",
        "every run in the archive is in the history as the archive holds it (a run archived "
        "but not ingested, or changed since, blocks READY until it is ingested)",
        not_waivable="the archive is the evidence: ingest the run "
        "(`kgents-pipeline history ingest RUN_DIR`) instead",
    ),
)
SHOWN = 5  # runs named in the message (all of them are in `observed`, up to the check's limit)


def judge(ev: Evidence, earlier: Mapping[str, Reason]) -> Findings:
    check = ev.snapshot.archive
    if check is None:
        return Findings(
            [
                no_data(
                    "archive",
                    "the run archive was not examined: cannot tell whether every archived run "
                    "is in the history",
                )
            ]
        )
    figures = {"archived_runs": float(check.archived)}
    if check.clean:
        where = ", ".join(check.roots) or "no archive"
        note = f" ({', '.join(check.absent)}: nothing archived yet)" if check.absent else ""
        return Findings(
            [
                passed(
                    "archive",
                    f"every run archived in {where} is in the history{note}",
                    observed={"archived": check.archived},
                )
            ],
            figures,
        )
    bits: list[str] = []
    if check.missing or check.more_missing:
        count = len(check.missing) + check.more_missing
        named = ", ".join(r.run_id for r in check.missing[:SHOWN])
        more = f" and {count - min(count, SHOWN)} more" if count > SHOWN else ""
        dirs = " ".join(r.run_dir for r in check.missing[:SHOWN])
        bits.append(
            f"{count} archived run(s) not in the history: {named}{more} "
            f"(ingest: `kgents-pipeline history ingest {dirs}`, or `history rebuild`)"
        )
    if check.stale:
        named = "; ".join(f"{r.run_id} {r.problem}" for r in check.stale[:SHOWN])
        bits.append(
            f"{len(check.stale)} run(s) changed in the archive since: {named} (ingest again)"
        )
    if check.gone:
        bits.append(f"the archive the history's runs came from is gone: {', '.join(check.gone)}")
    if check.unreadable:
        bits.append(f"the archive cannot be listed: {'; '.join(check.unreadable)}")
    return Findings(
        [
            no_data(
                "archive",
                "; ".join(bits),
                observed={
                    "archived": check.archived,
                    "missing": [{"run_id": r.run_id, "run_dir": r.run_dir} for r in check.missing],
                    "more_missing": check.more_missing,
                    "stale": [
                        {"run_id": r.run_id, "run_dir": r.run_dir, "problem": r.problem}
                        for r in check.stale
                    ],
                    "gone": list(check.gone),
                    "unreadable": list(check.unreadable),
                },
                run_ids=tuple(r.run_id for r in (*check.missing, *check.stale)),
            )
        ],
        figures,
    )
