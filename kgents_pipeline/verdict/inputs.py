"""Everything the verdict judges, read once: the runs it examines, their raw evidence (10-second
windows, success latencies), operator controls, policy verifications and the launch checklist.

`evaluate` is pure over a `HistorySnapshot`; `usecase.read_snapshot` builds one from the history.
A snapshot built in memory may hold every run; one read from the history holds only the runs the
rules examine, with `run_count` and `runs_digest` standing for all of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kgents_pipeline.errors import VerdictError
from kgents_pipeline.history.archive import ArchiveCheck
from kgents_pipeline.history.capacity import CapacitySearch
from kgents_pipeline.history.cluster import PolicyEvidence
from kgents_pipeline.history.controls import BaselinePin, Invalidation, Waiver
from kgents_pipeline.history.run_record import RunRecord
from kgents_pipeline.history.windows import WindowStat

if TYPE_CHECKING:
    import numpy as np

    from kgents_pipeline.verdict.checklist import ChecklistItem

__all__ = [
    "BaselinePin",
    "HistorySnapshot",
    "Invalidation",
    "PolicyEvidence",
    "Waiver",
    "as_of",
    "evidence_runs",
    "parse_instant",
    "parse_now",
]


@dataclass(frozen=True)
class HistorySnapshot:
    """Everything the verdict needs, read once. Runs are sorted oldest first."""

    runs: tuple[RunRecord, ...]
    windows: Mapping[str, tuple[WindowStat, ...]] = field(default_factory=dict)
    samples: Mapping[str, np.ndarray] = field(default_factory=dict)  # success latencies, ms
    invalidations: Mapping[str, Invalidation] = field(default_factory=dict)
    pins: tuple[BaselinePin, ...] = ()
    waivers: tuple[Waiver, ...] = ()
    verifications: tuple[PolicyEvidence, ...] = ()
    verifications_table: bool = False  # False: migration 0002 absent, no evidence possible
    checklist: tuple[ChecklistItem, ...] | None = None  # None: no checklist file
    checklist_source: str = ""
    notes: tuple[str, ...] = ()
    # Read from the history as of a time: `runs` holds the runs the rules examine, these stand
    # for every run started by then. None: `runs` is the whole history.
    run_count: int | None = None
    runs_digest: str | None = None
    # The run archive against the history (`history.archive.check_archive`); None: not examined,
    # which the `archive` rule holds against READY.
    archive: ArchiveCheck | None = None
    # The newest valid capacity search (capacity.headroom judges its knee); None: none measured.
    knee: CapacitySearch | None = None


# ---------------------------------------------------------------------------------------------
# Which runs are evidence (pure; the verdict uses the same function, so both agree)


def evidence_runs(
    runs: Sequence[RunRecord],
    usable: Callable[[RunRecord], bool],
    *,
    streak: int,
    baseline_window: int,
) -> tuple[RunRecord | None, list[RunRecord], list[RunRecord]]:
    """(latest usable run, newest `streak` usable runs of its fingerprint incl. itself, the
    `baseline_window` usable runs of that fingerprint before it), newest first."""
    latest = next((r for r in reversed(runs) if usable(r)), None)
    if latest is None:
        return None, [], []
    fp = latest.fingerprint
    same: list[RunRecord] = []
    needed = max(streak, baseline_window + 1)
    for r in reversed(runs):
        if r.fingerprint == fp and usable(r):
            same.append(r)
            if len(same) >= needed:
                break
    return latest, same[:streak], same[1 : baseline_window + 1]


def as_of(
    now: dt.datetime,
    runs: Sequence[RunRecord],
    invalidations: Mapping[str, Invalidation],
    pins: Sequence[BaselinePin],
    waivers: Sequence[Waiver],
    verifications: Sequence[PolicyEvidence],
) -> tuple[
    tuple[RunRecord, ...],
    dict[str, Invalidation],
    tuple[BaselinePin, ...],
    tuple[Waiver, ...],
    tuple[PolicyEvidence, ...],
]:
    """The history as it stood at `now`: nothing recorded later is visible."""
    return (
        tuple(r for r in runs if r.started_at <= now),
        {k: i for k, i in invalidations.items() if i.at <= now},
        tuple(p for p in pins if p.at <= now),
        tuple(w for w in waivers if w.at <= now),
        tuple(e for e in verifications if e.verified_at <= now),
    )


# ---------------------------------------------------------------------------------------------
# Time


def parse_instant(value: Any, what: str, *, date_is_end_of_day: bool = False) -> dt.datetime:
    """An ISO-8601 date or date-time as an aware UTC datetime: the one parser of the verdict's
    inputs (`--now`, `--until`, checklist `at`, timestamps read back from DuckDB).

    A date-time without a zone is UTC; `Z` is accepted. A bare date is the start of that day
    (UTC), or with `date_is_end_of_day` the end of it (the next midnight: "through that day").
    `datetime`/`date` values (DuckDB, YAML's unquoted dates) are taken as they are. Anything
    else raises a one-line `VerdictError` naming `what`.
    """
    day: dt.date | None = None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        day = value
    else:
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            text = value.strip()
            try:
                day = dt.date.fromisoformat(text)
            except ValueError:
                parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise VerdictError(
                f"{what} must be an ISO-8601 date (2026-12-31) or date-time "
                f"(2026-12-31T18:00:00Z), got {value!r}"
            ) from None
    try:
        if day is not None:
            if date_is_end_of_day:
                if day == dt.date.max:  # through 9999-12-31: the last instant there is
                    return dt.datetime.max.replace(tzinfo=dt.UTC)
                day += dt.timedelta(days=1)
            return dt.datetime.combine(day, dt.time(), dt.UTC)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except OverflowError:
        raise VerdictError(f"{what} {value!r} is out of the range of dates") from None


def parse_now(text: str | None, what: str = "--now") -> dt.datetime | None:
    """An ISO-8601 instant to evaluate the verdict as of (UTC when it names no zone; a bare date
    is that day's start); None when not given (evaluate now)."""
    return parse_instant(text, what) if text else None
