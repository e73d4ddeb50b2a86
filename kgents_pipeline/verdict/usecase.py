"""Operator controls over the history, each recorded with who, when and why: invalidate a run,
pin (or clear) the baseline, waive a rule until a date. And the record of every verdict.

Every writer here opens the history with `create=False`: a control (or a verdict) about a history
that does not exist is refused, never recorded in a new, empty file."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from kgents_pipeline.errors import VerdictError
from kgents_pipeline.history.db import DEFAULT_DB, connect
from kgents_pipeline.verdict.evaluate import (
    NON_WAIVABLE,
    NON_WAIVABLE_WHY,
    RULES,
    VerdictPolicy,
    invalid_reasons,
    usability,
)
from kgents_pipeline.verdict.inputs import RUN_COLUMNS, Invalidation, RunRecord, parse_instant

if TYPE_CHECKING:
    from kgents_pipeline.verdict.evaluate import Verdict


def default_user() -> str:
    """The OS user, for `--by`."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "unknown"


def _now(now: dt.datetime | None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)


def _need(text: str | None, what: str) -> str:
    if not text or not text.strip():
        raise VerdictError(f"{what} must not be empty: say why, for whoever reads the verdict")
    return text.strip()


def _run_exists(con, run_id: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()[0])


def invalidate_run(
    db_path: str | Path,
    run_id: str,
    *,
    reason: str,
    by: str | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Declare a run unusable as evidence. Refuses an unknown or already invalidated run."""
    reason = _need(reason, "--reason")
    with connect(db_path, create=False) as con:
        if not _run_exists(con, run_id):
            raise VerdictError(f"no run {run_id!r} in {db_path}")
        prior = con.execute(
            "SELECT invalidated_by, invalidated_at, reason FROM run_invalidations WHERE run_id = ?",
            [run_id],
        ).fetchone()
        if prior:
            raise VerdictError(
                f"run {run_id} was already invalidated by {prior[0]} at {prior[1]}: {prior[2]}"
            )
        con.execute(
            "INSERT INTO run_invalidations VALUES (?, ?, ?, ?)",
            [run_id, reason, by or default_user(), _now(now)],
        )


def pin_baseline(
    db_path: str | Path,
    run_id: str | None,
    *,
    reason: str = "",
    by: str | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Pin `run_id` as the baseline (None clears the pin). Refuses an unknown or invalid run."""
    with connect(db_path, create=False) as con:
        if run_id is not None:
            if not _run_exists(con, run_id):
                raise VerdictError(f"no run {run_id!r} in {db_path}")
            cols = ", ".join(RUN_COLUMNS)
            row = con.execute(f"SELECT {cols} FROM runs WHERE run_id = ?", [run_id]).fetchone()
            [run] = RunRecord.from_rows(RUN_COLUMNS, [row])
            inval = {
                r[0]: Invalidation(*r)
                for r in con.execute(
                    "SELECT run_id, reason, invalidated_by, invalidated_at FROM run_invalidations"
                    " WHERE run_id = ?",
                    [run_id],
                ).fetchall()
            }
            policy = VerdictPolicy()
            if not usability(inval, policy)(run):
                why = "; ".join(invalid_reasons(run, inval, policy))
                raise VerdictError(f"run {run_id} cannot be a baseline: it is not valid ({why})")
        con.execute(
            "INSERT INTO baseline_pins (run_id, reason, pinned_by, pinned_at) VALUES (?, ?, ?, ?)",
            [
                run_id,
                reason.strip() or ("cleared" if run_id is None else "pinned"),
                by or default_user(),
                _now(now),
            ],
        )


def parse_until(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """A waiver's end: ISO date (through that day: its end, UTC) or date-time; must be in the
    future."""
    until = parse_instant(text, "--until", date_is_end_of_day=True)
    if until <= _now(now):
        raise VerdictError(f"--until {text} is not in the future: a waiver must expire later")
    return until


def add_waiver(
    db_path: str | Path,
    rule: str,
    *,
    until: str | dt.datetime,
    reason: str,
    by: str | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Waive `rule` until a date; returns the waiver id. Never `validity`, `checklist` or
    `rehearsal` (NON_WAIVABLE). The history must exist."""
    if rule in NON_WAIVABLE:
        raise VerdictError(f"rule {rule!r} cannot be waived: {NON_WAIVABLE_WHY[rule]}")
    if rule not in RULES:
        raise VerdictError(
            f"unknown rule {rule!r}; waivable rules: {', '.join(r for r in RULES if r not in NON_WAIVABLE)}"
        )
    reason = _need(reason, "--reason")
    at = _now(now)
    if isinstance(until, str):
        until_dt = parse_until(until, at)
    else:
        until_dt = until.astimezone(dt.UTC)
        if until_dt <= at:
            raise VerdictError(f"--until {until_dt.isoformat()} is not in the future")
    with connect(db_path, create=False) as con:
        return con.execute(
            "INSERT INTO waivers (rule, until, reason, waived_by, waived_at) VALUES (?, ?, ?, ?, ?)"
            " RETURNING waiver_id",
            [rule, until_dt, reason, by or default_user(), at],
        ).fetchone()[0]


def record_verdict(db_path: str | Path, verdict: Verdict, *, source: str = "cli") -> int:
    """Store a verdict in `readiness_verdicts`; returns its id. Only verdicts evaluated as of
    the present belong there (`latest_verdict` is the newest recorded): callers do not record a
    what-if verdict (an explicit `--now` / `now` config)."""
    doc = verdict.to_json()
    with connect(db_path, create=False) as con:
        return con.execute(
            "INSERT INTO readiness_verdicts (evaluated_at, recorded_at, state, rehearsal,"
            " inputs_sha256, latest_run_id, source, reasons, waivers, verdict)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING verdict_id",
            [
                verdict.evaluated_at,
                dt.datetime.now(dt.UTC),
                str(verdict.state),
                verdict.rehearsal,
                verdict.inputs_sha256,
                verdict.latest_run_id,
                source,
                json.dumps(doc["reasons"]),
                json.dumps(doc["waivers"]),
                json.dumps(doc),
            ],
        ).fetchone()[0]


__all__ = [
    "DEFAULT_DB",
    "add_waiver",
    "default_user",
    "invalidate_run",
    "parse_until",
    "pin_baseline",
    "record_verdict",
]


def evaluate_history(
    db_path: str,
    *,
    now: dt.datetime | None = None,
    checklist: str | None = None,
    record: bool = True,
    source: str = "cli",
) -> tuple[Verdict, int | None]:
    """Load the snapshot, evaluate, store the verdict (with `record`): (verdict, its id when it
    was recorded). Shared by the CLI, the report and the launch_readiness asset.

    A verdict with an explicit `now` is a what-if and is never recorded: `latest_verdict` must
    stay the newest verdict of the present history, not of a time someone asked about.
    """
    from kgents_pipeline.verdict.evaluate import evaluate
    from kgents_pipeline.verdict.inputs import load_snapshot

    policy = VerdictPolicy()
    what_if = now is not None
    now = now or dt.datetime.now(dt.UTC)
    snapshot = load_snapshot(db_path, checklist=checklist, policy=policy, now=now)
    verdict = evaluate(snapshot, policy, now)
    verdict_id = None
    if record and not what_if:
        verdict_id = record_verdict(db_path, verdict, source=source)
    return verdict, verdict_id
