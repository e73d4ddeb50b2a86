"""Cluster evidence into the DuckDB history: `apply_events` and `policy_verifications`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from kgents_pipeline.history.db import connect
from kgents_pipeline.kube.apply import ApplyReport
from kgents_pipeline.kube.render import RenderedSet
from kgents_pipeline.kube.verify import Verification


def new_run_id() -> str:
    """An id for runs that do not come from Dagster (the CLI)."""
    return f"cli-{uuid.uuid4()}"


def record_apply(
    db_path: str | Path, run_id: str, report: ApplyReport, *, mode: str = "live"
) -> int:
    """One `apply_events` row per object; returns the number of rows written."""
    now = datetime.now(UTC)
    rows = [
        (
            f"{run_id}:{r.kind}:{r.namespace or ''}:{r.name}",
            run_id,
            now,
            mode,
            report.context,
            report.rendered_sha256,
            report.dry_run,
            r.kind,
            r.namespace,
            r.name,
            r.action,
            r.written,
            r.diff or None,
            r.error or None,
            r.resource_version or None,
            r.source or None,
        )
        for r in report.results
    ]
    _insert_events(db_path, rows)
    return len(rows)


def record_not_applied(db_path: str | Path, run_id: str, rendered: RenderedSet) -> int:
    """Offline rehearsal: every object recorded as `not_applied`."""
    now = datetime.now(UTC)
    rows = [
        (
            f"{run_id}:{o.kind}:{o.namespace or ''}:{o.name}",
            run_id,
            now,
            "offline",
            None,
            rendered.sha256,
            True,
            o.kind,
            o.namespace,
            o.name,
            "not_applied",
            False,
            None,
            "not applied (offline rehearsal)",
            None,
            o.source,
        )
        for o in rendered.objects
    ]
    _insert_events(db_path, rows)
    return len(rows)


def _insert_events(db_path: str | Path, rows: list[tuple]) -> None:
    if not rows:
        return
    with connect(db_path) as con:
        # A handful of rows per apply: one multi-row INSERT in a transaction.
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "DELETE FROM apply_events WHERE event_id IN (SELECT unnest(?))", [[r[0] for r in rows]]
        )
        placeholders = ", ".join(["(" + ", ".join(["?"] * 16) + ")"] * len(rows))
        con.execute(
            f"INSERT INTO apply_events VALUES {placeholders}", [v for row in rows for v in row]
        )
        con.execute("COMMIT")


def record_verification(db_path: str | Path, run_id: str, v: Verification) -> None:
    """One `policy_verifications` row (replaced if the same run verifies again)."""
    with connect(db_path) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM policy_verifications WHERE run_id = ?", [run_id])
        con.execute(
            "INSERT INTO policy_verifications VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                datetime.fromisoformat(v.verified_at),
                v.mode,
                v.context,
                v.rendered_sha256,
                v.passed,
                v.intent_holds,
                v.drift_count,
                v.pdb_ok,
                not v.labels_missing,
                len(v.unmatched_selectors),
                json.dumps(list(v.violations), default=str),
                json.dumps(v.to_dict(), default=str),
            ],
        )
        con.execute("COMMIT")
