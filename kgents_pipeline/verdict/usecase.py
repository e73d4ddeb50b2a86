"""The verdict's use cases: read the history, evaluate, record; and the operator controls, each
checked here (what may be waived, what may be a baseline) and recorded with who, when and why.

The CLI, the report and the Dagster assets all come through here. Every writer opens the
history with `create=False`: a control (or a verdict) about a history that does not exist is
refused, never recorded in a new, empty file.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
from typing import TYPE_CHECKING, Any

import duckdb

from kgents_pipeline.errors import VerdictError
from kgents_pipeline.history import controls, queries
from kgents_pipeline.history.archive import check_archive
from kgents_pipeline.history.capacity import latest_valid_search
from kgents_pipeline.history.cluster import read_verifications
from kgents_pipeline.history.run_record import RunRecord
from kgents_pipeline.history.store import HistoryStore
from kgents_pipeline.history.windows import read_points, windows_of
from kgents_pipeline.verdict.checklist import load_checklist
from kgents_pipeline.verdict.evaluate import evaluate
from kgents_pipeline.verdict.evidence import invalid_reasons, usability
from kgents_pipeline.verdict.inputs import HistorySnapshot, as_of, evidence_runs, parse_instant
from kgents_pipeline.verdict.model import Verdict, VerdictPolicy, rounded
from kgents_pipeline.verdict.rules import NON_WAIVABLE_WHY, RULE_IDS, WAIVABLE

if TYPE_CHECKING:
    pass

_FIRST_PAGE = 256  # newest runs read first; more only when the rules need older ones


def default_user() -> str:
    """The OS user, for `--by`."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "unknown"


def _now(now: dt.datetime | None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)


# ---------------------------------------------------------------------------------------------
# Read


def _examined_runs(
    con: duckdb.DuckDBPyConnection,
    now: dt.datetime,
    usable: Any,
    policy: VerdictPolicy,
    pinned: str | None,
) -> list[RunRecord]:
    """The runs the rules examine, newest first: a contiguous tail of the history down to the
    latest usable run (and at least the trend's runs), every run of that run's fingerprint until
    the streak and the baseline window are full, and the pinned run. `evidence_runs` over these
    gives what it would give over the whole history."""
    tail = queries.read_runs(con, until=now, limit=max(_FIRST_PAGE, policy.trend_runs))
    page = len(tail)
    while tail and not any(usable(r) for r in tail) and len(tail) == page:
        more = queries.read_runs(
            con, until=now, before=(tail[-1].started_at, tail[-1].run_id), limit=page
        )
        tail += more
        page = len(more)
    judged = next((r for r in tail if usable(r)), None)
    runs = {r.run_id: r for r in tail}
    if judged is not None:
        needed = max(policy.min_consecutive_runs, policy.baseline_runs + 1)
        fp = judged.fingerprint
        same = [r for r in tail if r.fingerprint == fp and usable(r)]
        oldest = tail[-1]
        while len(same) < needed:
            older = queries.read_runs(
                con,
                until=now,
                before=(oldest.started_at, oldest.run_id),
                fingerprint=fp,
                limit=4 * needed,
            )
            if not older:
                break
            runs.update((r.run_id, r) for r in older)
            same += [r for r in older if usable(r)]
            oldest = older[-1]
    if pinned and pinned not in runs:
        run = queries.read_run(con, pinned)
        if run is not None and run.started_at <= now:
            runs[run.run_id] = run
    return list(runs.values())


def read_snapshot(
    store: HistoryStore,
    *,
    checklist: str | None = None,
    policy: VerdictPolicy | None = None,
    now: dt.datetime | None = None,
    archive: str | os.PathLike[str] | None = None,
) -> HistorySnapshot:
    """Read what the verdict judges as of `now` (default: now): the runs the rules examine, the
    raw points of the ones that need them, the controls, verifications and checklist; every
    other run only as `run_count` and `runs_digest`; and the run archive against the history
    (`archive`, the configured archive, plus the archives the runs in use came from). An older
    file is migrated first."""
    policy = policy or VerdictPolicy()
    now = _now(now)
    items, source = load_checklist(checklist, RULE_IDS)
    with store.reader() as con:
        inval = controls.read_invalidations(con)
        pins = controls.read_pins(con)
        waivers = controls.read_waivers(con)
        columns = queries.table_columns(con, "policy_verifications")
        verifications = read_verifications(con, columns) if "verified_at" in columns else ()
        _, inval, pins, waivers, verifications = as_of(now, (), inval, pins, waivers, verifications)
        usable = usability(inval, policy)
        pinned = pins[-1].run_id if pins and pins[-1].run_id else None
        examined = _examined_runs(con, now, usable, policy, pinned)
        run_count, digest = queries.runs_digest(con, until=now)
        knee = latest_valid_search(con, until=now)
        runs = tuple(sorted(examined, key=lambda r: (r.started_at, r.run_id)))
        _, streak, baseline = evidence_runs(
            runs, usable, streak=policy.min_consecutive_runs, baseline_window=policy.baseline_runs
        )
        # One scan of the raw points of the runs that need them: windows for the streak,
        # success latencies for the judged run, the baseline window and the pin.
        window_ids = {r.run_id for r in streak}
        sample_ids = {r.run_id for r in streak[:1] + baseline} | ({pinned} if pinned else set())
        points = read_points(con, sorted(window_ids | sample_ids))
        used = {r.run_id for r in runs[-policy.trend_runs :]} | window_ids | sample_ids
        archived = check_archive(con, configured=archive, used=sorted(used), now=now)
    durations = {r.run_id: r.duration_s for r in runs}
    windows = {
        run_id: w
        for run_id in sorted(window_ids & points.keys())
        if (w := windows_of(points[run_id], durations.get(run_id)))
    }
    samples = {
        run_id: latencies
        for run_id in sorted(sample_ids & points.keys())
        if len(latencies := points[run_id].success_latencies())
    }
    return HistorySnapshot(
        runs=runs,
        windows=windows,
        samples=samples,
        invalidations=inval,
        pins=pins,
        waivers=waivers,
        verifications=verifications,
        verifications_table="verified_at" in columns,
        checklist=items,
        checklist_source=source,
        run_count=run_count,
        runs_digest=digest,
        archive=archived,
        knee=knee,
    )


# ---------------------------------------------------------------------------------------------
# Evaluate and record


def record_verdict(store: HistoryStore, verdict: Verdict, *, source: str = "cli") -> int:
    """Store a verdict in `readiness_verdicts`; returns its id. Only verdicts evaluated as of
    the present belong there (`latest_verdict` is the newest recorded): callers do not record a
    what-if verdict (an explicit `--now` / `now` config)."""
    with store.writer(create=False) as con:
        return controls.insert_verdict(
            con, verdict.to_json(), evaluated_at=verdict.evaluated_at, source=source
        )


def evaluate_history(
    store: HistoryStore,
    *,
    now: dt.datetime | None = None,
    checklist: str | None = None,
    record: bool = True,
    source: str = "cli",
    archive: str | os.PathLike[str] | None = None,
) -> tuple[Verdict, int | None]:
    """Read the history, evaluate, store the verdict (with `record`): (verdict, its id when it
    was recorded). Shared by the CLI, the report and the launch_readiness asset.

    A verdict with an explicit `now` is a what-if and is never recorded: `latest_verdict` must
    stay the newest verdict of the present history, not of a time someone asked about.
    """
    policy = VerdictPolicy()
    what_if = now is not None
    now = _now(now)
    snapshot = read_snapshot(store, checklist=checklist, policy=policy, now=now, archive=archive)
    verdict = evaluate(snapshot, policy, now)
    verdict_id = None
    if record and not what_if:
        verdict_id = record_verdict(store, verdict, source=source)
    return verdict, verdict_id


def baseline_summary(
    snapshot: HistorySnapshot, policy: VerdictPolicy | None = None
) -> dict[str, Any]:
    """The baseline the latest valid run is compared with: the window runs, their pooled p95
    (from the raw samples) and error rate, and the pinned run."""
    import numpy as np

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
                "p95_ms": rounded(r.p95_ms),
                "p99_ms": rounded(r.p99_ms),
                "error_rate": rounded(r.error_rate, 5),
                "achieved_rps": rounded(r.achieved_rps, 1),
            }
            for r in window
        ],
        "p95_ms": float(np.quantile(np.concatenate(arrays), 0.95)) if arrays else None,
        "error_rate": (sum(e for e, _ in errors) / sum(n for _, n in errors)) if errors else None,
        "pinned_run_id": pin,
    }


# ---------------------------------------------------------------------------------------------
# Operator controls


def _need(text: str | None, what: str) -> str:
    if not text or not text.strip():
        raise VerdictError(f"{what} must not be empty: say why, for whoever reads the verdict")
    return text.strip()


def invalidate_run(
    store: HistoryStore,
    run_id: str,
    *,
    reason: str,
    by: str | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Declare a run unusable as evidence. Refuses an unknown or already invalidated run."""
    reason = _need(reason, "--reason")
    with store.writer(create=False) as con:
        if not queries.run_exists(con, run_id):
            raise VerdictError(f"no run {run_id!r} in {store}")
        prior = controls.read_invalidations(con, run_id).get(run_id)
        if prior:
            raise VerdictError(
                f"run {run_id} was already invalidated by {prior.by} at {prior.at}: {prior.reason}"
            )
        controls.insert_invalidation(
            con, controls.Invalidation(run_id, reason, by or default_user(), _now(now))
        )


def pin_baseline(
    store: HistoryStore,
    run_id: str | None,
    *,
    reason: str = "",
    by: str | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Pin `run_id` as the baseline (None clears the pin). Refuses an unknown or invalid run."""
    with store.writer(create=False) as con:
        if run_id is not None:
            run = queries.read_run(con, run_id)
            if run is None:
                raise VerdictError(f"no run {run_id!r} in {store}")
            inval = controls.read_invalidations(con, run_id)
            policy = VerdictPolicy()
            if not usability(inval, policy)(run):
                why = "; ".join(invalid_reasons(run, inval, policy))
                raise VerdictError(f"run {run_id} cannot be a baseline: it is not valid ({why})")
        controls.insert_pin(
            con,
            run_id,
            reason=reason.strip() or ("cleared" if run_id is None else "pinned"),
            by=by or default_user(),
            at=_now(now),
        )


def parse_until(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """A waiver's end: ISO date (through that day: its end, UTC) or date-time; must be in the
    future."""
    until = parse_instant(text, "--until", date_is_end_of_day=True)
    if until <= _now(now):
        raise VerdictError(f"--until {text} is not in the future: a waiver must expire later")
    return until


def add_waiver(
    store: HistoryStore,
    rule: str,
    *,
    until: str | dt.datetime,
    reason: str,
    by: str | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Waive `rule` until a date; returns the waiver id. Never `validity`, `checklist` or
    `rehearsal` (not waivable). The history must exist."""
    if rule in NON_WAIVABLE_WHY:
        raise VerdictError(f"rule {rule!r} cannot be waived: {NON_WAIVABLE_WHY[rule]}")
    if rule not in RULE_IDS:
        raise VerdictError(f"unknown rule {rule!r}; waivable rules: {', '.join(WAIVABLE)}")
    reason = _need(reason, "--reason")
    at = _now(now)
    if isinstance(until, str):
        until_dt = parse_until(until, at)
    else:
        until_dt = until.astimezone(dt.UTC)
        if until_dt <= at:
            raise VerdictError(f"--until {until_dt.isoformat()} is not in the future")
    with store.writer(create=False) as con:
        return controls.insert_waiver(
            con, rule, until=until_dt, reason=reason, by=by or default_user(), at=at
        )
