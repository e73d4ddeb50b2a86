"""Cluster evidence as stored: `apply_events` (one row per object per apply) and
`policy_verifications` (one row per verification, the verdict's `policy`/`pdb` evidence).

Storage only: the reports come from `kgents_pipeline.kube`, described here by the fields this
module reads (so history depends on no other domain package)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import duckdb

from kgents_pipeline.history.timestamps import utc


class AppliedObject(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def namespace(self) -> str | None: ...
    @property
    def name(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def diff(self) -> str: ...
    @property
    def error(self) -> str: ...
    @property
    def resource_version(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def written(self) -> bool: ...


class ApplyOutcome(Protocol):
    @property
    def context(self) -> str | None: ...
    @property
    def rendered_sha256(self) -> str: ...
    @property
    def dry_run(self) -> bool: ...
    @property
    def results(self) -> Sequence[AppliedObject]: ...


class RenderedObjectLike(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def namespace(self) -> str | None: ...
    @property
    def name(self) -> str: ...
    @property
    def source(self) -> str: ...


class RenderedSetLike(Protocol):
    @property
    def sha256(self) -> str: ...
    @property
    def objects(self) -> Sequence[RenderedObjectLike]: ...


class VerificationOutcome(Protocol):
    @property
    def verified_at(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def context(self) -> str | None: ...
    @property
    def rendered_sha256(self) -> str: ...
    @property
    def passed(self) -> bool: ...
    @property
    def intent_holds(self) -> bool: ...
    @property
    def drift_count(self) -> int: ...
    @property
    def pdb_ok(self) -> bool: ...
    @property
    def labels_missing(self) -> Sequence[str]: ...
    @property
    def unmatched_selectors(self) -> Sequence[str]: ...
    @property
    def violations(self) -> Sequence[Any]: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PolicyEvidence:
    """One row of `policy_verifications` (migration 0002); missing columns are None (unknown)."""

    verified_at: dt.datetime
    mode: str | None
    context: str | None
    intent_holds: bool | None
    drift_count: int | None
    pdb_ok: bool | None
    violations: tuple[str, ...]
    passed: bool | None = None  # the whole verification (intent, drift, labels, selectors, PDB)
    ref: str | None = None  # the verification's own id (its Dagster run id)
    labels_ok: bool | None = None  # every namespace carries the labels the policies select on
    unmatched_selectors: int | None = None  # policy selectors that match no pod


def new_run_id() -> str:
    """An id for runs that do not come from Dagster (the CLI)."""
    return f"cli-{uuid.uuid4()}"


def record_apply(
    con: duckdb.DuckDBPyConnection, run_id: str, report: ApplyOutcome, *, mode: str = "live"
) -> int:
    """One `apply_events` row per object; returns the number of rows written."""
    now = dt.datetime.now(dt.UTC)
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
    _insert_events(con, rows)
    return len(rows)


def record_not_applied(
    con: duckdb.DuckDBPyConnection, run_id: str, rendered: RenderedSetLike
) -> int:
    """Offline rehearsal: every object recorded as `not_applied`."""
    now = dt.datetime.now(dt.UTC)
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
    _insert_events(con, rows)
    return len(rows)


def _insert_events(con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    # A handful of rows per apply: one multi-row INSERT in a transaction.
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "DELETE FROM apply_events WHERE event_id IN (SELECT unnest(?))", [[r[0] for r in rows]]
        )
        placeholders = ", ".join(["(" + ", ".join(["?"] * 16) + ")"] * len(rows))
        con.execute(
            f"INSERT INTO apply_events VALUES {placeholders}", [v for row in rows for v in row]
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def record_verification(
    con: duckdb.DuckDBPyConnection, run_id: str, v: VerificationOutcome
) -> None:
    """One `policy_verifications` row (replaced if the same run verifies again)."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM policy_verifications WHERE run_id = ?", [run_id])
        con.execute(
            "INSERT INTO policy_verifications VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                dt.datetime.fromisoformat(v.verified_at),
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
    except BaseException:
        con.execute("ROLLBACK")
        raise


_VERIFICATION_COLUMNS = (
    "verified_at",
    "mode",
    "context",
    "intent_holds",
    "drift_count",
    "pdb_ok",
    "violations",
    "passed",
    "run_id",
    "labels_ok",
    "unmatched_selectors",
)


def read_verifications(
    con: duckdb.DuckDBPyConnection, columns: Iterable[str]
) -> tuple[PolicyEvidence, ...]:
    """Every verification, oldest first; `columns` are the table's columns (an older file may
    lack some: they read as None, unknown)."""
    cols = set(columns)
    select = ", ".join(c if c in cols else f"NULL AS {c}" for c in _VERIFICATION_COLUMNS)
    rows = con.execute(
        f"SELECT {select} FROM policy_verifications WHERE verified_at IS NOT NULL"
        " ORDER BY verified_at, run_id"
    ).fetchall()
    return tuple(
        PolicyEvidence(
            verified_at=utc(at),
            mode=None if mode is None else str(mode),
            context=None if context is None else str(context),
            intent_holds=None if holds is None else bool(holds),
            drift_count=None if drift is None else int(drift),
            pdb_ok=None if pdb_ok is None else bool(pdb_ok),
            violations=_violations(violations),
            passed=None if passed is None else bool(passed),
            ref=None if ref is None else str(ref),
            labels_ok=None if labels is None else bool(labels),
            unmatched_selectors=None if unmatched is None else int(unmatched),
        )
        for at, mode, context, holds, drift, pdb_ok, violations, passed, ref, labels, unmatched in rows
    )


def _violations(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return (raw,) if raw.strip() else ()
    if isinstance(raw, list | tuple):
        return tuple(json.dumps(v, sort_keys=True) if not isinstance(v, str) else v for v in raw)
    if isinstance(raw, dict):
        return (json.dumps(raw, sort_keys=True),) if raw else ()
    return (str(raw),)
