"""Operator controls and recorded verdicts, as stored: `run_invalidations`, `baseline_pins`,
`waivers`, `readiness_verdicts`. Storage only: what may be recorded (which rules can be waived,
which runs can be a baseline) is the verdict's to decide, before it calls these."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from kgents_pipeline.history.db import insert_returning_id
from kgents_pipeline.history.timestamps import utc


@dataclass(frozen=True)
class Invalidation:
    run_id: str
    reason: str
    by: str
    at: dt.datetime


@dataclass(frozen=True)
class BaselinePin:
    pin_id: int
    run_id: str | None  # None: the pin was cleared
    reason: str
    by: str
    at: dt.datetime


@dataclass(frozen=True)
class Waiver:
    waiver_id: int
    rule: str
    until: dt.datetime
    reason: str
    by: str
    at: dt.datetime

    def active(self, now: dt.datetime) -> bool:
        return self.at <= now < self.until


def read_invalidations(
    con: duckdb.DuckDBPyConnection, run_id: str | None = None
) -> dict[str, Invalidation]:
    """Every invalidation (or the one of `run_id`), by run id."""
    sql = "SELECT run_id, reason, invalidated_by, invalidated_at FROM run_invalidations"
    rows = (
        con.execute(sql + " WHERE run_id = ?", [run_id]) if run_id else con.execute(sql)
    ).fetchall()
    return {r: Invalidation(r, reason, by, utc(at)) for r, reason, by, at in rows}


def read_pins(con: duckdb.DuckDBPyConnection) -> tuple[BaselinePin, ...]:
    """Every pin, oldest first (the newest is the current one; a NULL run id cleared it)."""
    return tuple(
        BaselinePin(int(pid), run_id, reason, by, utc(at))
        for pid, run_id, reason, by, at in con.execute(
            "SELECT pin_id, run_id, reason, pinned_by, pinned_at FROM baseline_pins ORDER BY pin_id"
        ).fetchall()
    )


def read_waivers(con: duckdb.DuckDBPyConnection) -> tuple[Waiver, ...]:
    return tuple(
        Waiver(int(wid), rule, utc(until), reason, by, utc(at))
        for wid, rule, until, reason, by, at in con.execute(
            "SELECT waiver_id, rule, until, reason, waived_by, waived_at FROM waivers"
            " ORDER BY waiver_id"
        ).fetchall()
    )


def insert_invalidation(con: duckdb.DuckDBPyConnection, inv: Invalidation) -> None:
    con.execute(
        "INSERT INTO run_invalidations VALUES (?, ?, ?, ?)",
        [inv.run_id, inv.reason, inv.by, inv.at],
    )


def insert_pin(
    con: duckdb.DuckDBPyConnection, run_id: str | None, *, reason: str, by: str, at: dt.datetime
) -> int:
    """Pin `run_id` (None clears the pin); returns the pin id."""
    return insert_returning_id(
        con,
        "baseline_pins",
        "pin_id",
        {"run_id": run_id, "reason": reason, "pinned_by": by, "pinned_at": at},
    )


def insert_waiver(
    con: duckdb.DuckDBPyConnection,
    rule: str,
    *,
    until: dt.datetime,
    reason: str,
    by: str,
    at: dt.datetime,
) -> int:
    return insert_returning_id(
        con,
        "waivers",
        "waiver_id",
        {"rule": rule, "until": until, "reason": reason, "waived_by": by, "waived_at": at},
    )


def insert_verdict(
    con: duckdb.DuckDBPyConnection,
    doc: Mapping[str, Any],
    *,
    evaluated_at: dt.datetime,
    source: str,
) -> int:
    """One `readiness_verdicts` row from a verdict's JSON document; returns its id."""
    return insert_returning_id(
        con,
        "readiness_verdicts",
        "verdict_id",
        {
            "evaluated_at": evaluated_at,
            "recorded_at": dt.datetime.now(dt.UTC),
            "state": doc["state"],
            "rehearsal": doc["rehearsal"],
            "inputs_sha256": doc["inputs_sha256"],
            "latest_run_id": doc.get("latest_run_id"),
            "source": source,
            "reasons": json.dumps(doc["reasons"]),
            "waivers": json.dumps(doc["waivers"]),
            "verdict": json.dumps(doc),
        },
    )
