"""Notification deliveries, as stored (`notifications`, migration 0006): what was told, to
which host, whether it arrived. Storage only: when to notify is the sensor's to decide."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import duckdb

from kgents_pipeline.history.timestamps import utc


@dataclass(frozen=True)
class Notification:
    state: str
    previous_state: str | None
    verdict_id: int | None
    dagster_run_id: str | None
    target: str
    delivered: bool
    attempts: int
    status_code: int | None
    error: str | None
    payload: dict[str, Any]
    sent_at: dt.datetime
    notification_id: int | None = None


_COLUMNS = (
    "state, previous_state, verdict_id, dagster_run_id, target, delivered, attempts,"
    " status_code, error, payload, sent_at, notification_id"
)


def record_notification(con: duckdb.DuckDBPyConnection, n: Notification) -> int:
    """Store one delivery (or failed delivery); returns its id."""
    row = con.execute(
        "INSERT INTO notifications (state, previous_state, verdict_id, dagster_run_id, target,"
        " delivered, attempts, status_code, error, payload, sent_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING notification_id",
        [
            n.state,
            n.previous_state,
            n.verdict_id,
            n.dagster_run_id,
            n.target,
            n.delivered,
            n.attempts,
            n.status_code,
            n.error,
            json.dumps(n.payload),
            n.sent_at,
        ],
    ).fetchone()
    assert row is not None
    return int(row[0])


def _notification(row: tuple[Any, ...]) -> Notification:
    (
        state,
        prev,
        verdict_id,
        run_id,
        target,
        delivered,
        attempts,
        status,
        error,
        payload,
        at,
        nid,
    ) = row
    return Notification(
        state, prev, verdict_id, run_id, target, bool(delivered), int(attempts), status, error,
        json.loads(payload), utc(at), int(nid),
    )  # fmt: skip


def last_delivered(con: duckdb.DuckDBPyConnection) -> Notification | None:
    """The newest notification that arrived: the state the channel was last told."""
    row = con.execute(
        f"SELECT {_COLUMNS} FROM notifications WHERE delivered"
        " ORDER BY notification_id DESC LIMIT 1"
    ).fetchone()
    return None if row is None else _notification(row)


def read_notifications(con: duckdb.DuckDBPyConnection) -> list[Notification]:
    """Every delivery and failed delivery, oldest first."""
    rows = con.execute(f"SELECT {_COLUMNS} FROM notifications ORDER BY notification_id").fetchall()
    return [_notification(r) for r in rows]
