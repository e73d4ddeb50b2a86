"""A read-only snapshot of everything the verdict judges: runs, the raw evidence of the runs that
matter (10-second windows, success latencies), operator controls, policy verifications and the
launch checklist.

All I/O of the verdict lives here; `kgents_pipeline.verdict.evaluate` is pure over the snapshot.
Only the runs the verdict can use get their raw points loaded (the latest runs of the latest
fingerprint, the baseline window, the pinned baseline), so a history of 10,000 runs stays cheap.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kgents_pipeline.errors import VerdictError
from kgents_pipeline.history.db import connect
from kgents_pipeline.history.run_record import RunRecord
from kgents_pipeline.history.windows import WindowStat, read_windows

PRIORITIES = ("HIGH", "MEDIUM", "LOW")
DEFAULT_CHECKLIST = Path("manifests/launch/checklist.yaml")  # like every default: cwd-relative

# The columns of `runs` the verdict reads: RunRecord's fields, less what only ingest uses.
RUN_COLUMNS = tuple(
    f.name
    for f in fields(RunRecord)
    if f.name not in ("run_dir", "metrics", "thresholds", "checks")
)


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


@dataclass(frozen=True)
class Signoff:
    """A recorded manual decision (sign-off or deferral); it counts from `at` (UTC) on."""

    by: str
    at: dt.datetime
    note: str


@dataclass(frozen=True)
class ChecklistItem:
    id: str
    title: str
    priority: str  # HIGH | MEDIUM | LOW
    resolved_by: tuple[str, ...]  # rule ids whose passing resolves the item
    signoff: Signoff | None = None
    deferred: Signoff | None = None


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
    if day is not None:
        if date_is_end_of_day:
            day += dt.timedelta(days=1)
        return dt.datetime.combine(day, dt.time(), dt.UTC)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


# ---------------------------------------------------------------------------------------------
# Checklist


def _signoff(raw: Any, where: str) -> Signoff | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise VerdictError(f"{where}: expected a mapping with by, at, note; got {raw!r}")
    missing = [k for k in ("by", "at", "note") if not str(raw.get(k) or "").strip()]
    if missing:
        raise VerdictError(f"{where}: sign-off needs {', '.join(missing)} (who, when, note)")
    return Signoff(
        by=str(raw["by"]), at=parse_instant(raw["at"], f"{where}: at"), note=str(raw["note"])
    )


def parse_checklist(
    data: Any, known_rules: Iterable[str], source: str
) -> tuple[ChecklistItem, ...]:
    """Validate the checklist YAML; every error names the item and field.

    `resolved_by` names the rules whose passing resolves an item; never `checklist` itself.
    """
    known = set(known_rules) - {"checklist"}
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise VerdictError(f"{source}: expected a mapping with an `items` list")
    items: list[ChecklistItem] = []
    seen: set[str] = set()
    for i, raw in enumerate(data["items"]):
        where = f"{source}: items[{i}]"
        if not isinstance(raw, dict) or not raw.get("id"):
            raise VerdictError(f"{where}: each item needs an `id`")
        item_id = str(raw["id"])
        where = f"{source}: item {item_id!r}"
        if item_id in seen:
            raise VerdictError(f"{where}: duplicate id")
        seen.add(item_id)
        priority = str(raw.get("priority", "")).upper()
        if priority not in PRIORITIES:
            raise VerdictError(f"{where}: priority must be HIGH, medium or low, got {priority!r}")
        rules = raw.get("resolved_by") or []
        if not isinstance(rules, list):
            raise VerdictError(f"{where}: resolved_by must be a list of rule ids")
        not_ids = [r for r in rules if not isinstance(r, str)]
        if not_ids:
            raise VerdictError(
                f"{where}: resolved_by entries must be rule ids (strings), got {not_ids[0]!r}"
            )
        if "checklist" in rules:
            raise VerdictError(
                f"{where}: resolved_by cannot name `checklist` (an item cannot resolve itself); "
                f"known: {', '.join(sorted(known))}"
            )
        unknown = [r for r in rules if r not in known]
        if unknown:
            raise VerdictError(
                f"{where}: unknown rule(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        if raw.get("deferred") is not None and priority == "HIGH":
            raise VerdictError(f"{where}: a HIGH item cannot be deferred")
        deferred = _signoff(raw.get("deferred"), f"{where}: deferred")
        items.append(
            ChecklistItem(
                id=item_id,
                title=str(raw.get("title") or item_id),
                priority=priority,
                resolved_by=tuple(rules),
                signoff=_signoff(raw.get("signoff"), f"{where}: signoff"),
                deferred=deferred,
            )
        )
    return tuple(items)


def load_checklist(
    path: str | Path | None, known_rules: Iterable[str]
) -> tuple[tuple[ChecklistItem, ...] | None, str]:
    """An explicit path must exist (exit 2 otherwise); a missing default yields None (the
    checklist rule then fails closed)."""
    explicit = path is not None
    p = Path(path) if explicit else DEFAULT_CHECKLIST
    if not p.exists():
        if explicit:
            raise VerdictError(f"checklist {p} not found")
        return None, str(p)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise VerdictError(f"checklist {p}: unreadable: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise VerdictError(f"checklist {p}: not UTF-8 text ({exc.reason})") from None
    except yaml.YAMLError as exc:
        raise VerdictError(f"checklist {p}: {_yaml_problem(exc)}") from None
    return parse_checklist(data, known_rules, str(p)), str(p)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line error as one line: where (line, column) and what."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return "invalid YAML at " + where + " ".join(str(problem).split())


# ---------------------------------------------------------------------------------------------
# DuckDB reads


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _utc(value: Any, what: str = "timestamp") -> dt.datetime | None:
    return None if value is None else parse_instant(value, what)


def _table_columns(con, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
    ).fetchall()
    return {r[0] for r in rows}


def _read_runs(con) -> tuple[RunRecord, ...]:
    cols = _table_columns(con, "runs")

    def column(name: str) -> str:
        if name not in cols:
            return f"NULL AS {name}"
        # Timestamps as epoch microseconds: DuckDB's TIMESTAMPTZ -> datetime conversion costs
        # more than the rest of the row (~70 ms of 110 ms for 10,000 runs).
        return f"epoch_us({name})" if name in ("started_at", "finished_at") else name

    select = ", ".join(column(c) for c in RUN_COLUMNS)
    rows = con.execute(f"SELECT {select} FROM runs ORDER BY started_at, run_id").fetchall()
    assert RUN_COLUMNS[1:3] == ("started_at", "finished_at")

    def utc(us: int | None) -> dt.datetime | None:
        return None if us is None else _EPOCH + dt.timedelta(microseconds=us)

    out = RunRecord.from_rows(RUN_COLUMNS, ((r[0], utc(r[1]), utc(r[2]), *r[3:]) for r in rows))
    return tuple(out)


def _read_samples(con, run_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Latencies (ms) of the successful requests of each run, in time order."""
    if not run_ids:
        return {}
    got = con.execute(
        """
        SELECT run_id, value FROM run_points
        WHERE run_id IN (SELECT unnest($ids)) AND metric = 'http_req_duration'
          AND expected_response = 'true' AND value IS NOT NULL
        ORDER BY run_id, ts, value
        """,
        {"ids": list(run_ids)},
    ).fetchnumpy()
    ids = np.asarray(got["run_id"], dtype=object)
    values = np.asarray(got["value"], dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    if len(ids) == 0:
        return out
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    for s, e in zip(starts, ends, strict=True):
        arr = values[s:e].copy()
        arr.setflags(write=False)
        out[str(ids[s])] = arr
    return out


def _read_controls(
    con,
) -> tuple[dict[str, Invalidation], tuple[BaselinePin, ...], tuple[Waiver, ...]]:
    inval = {
        run_id: Invalidation(run_id, reason, by, _utc(at))
        for run_id, reason, by, at in con.execute(
            "SELECT run_id, reason, invalidated_by, invalidated_at FROM run_invalidations"
        ).fetchall()
    }
    pins = tuple(
        BaselinePin(int(pid), run_id, reason, by, _utc(at))
        for pid, run_id, reason, by, at in con.execute(
            "SELECT pin_id, run_id, reason, pinned_by, pinned_at FROM baseline_pins ORDER BY pin_id"
        ).fetchall()
    )
    waivers = tuple(
        Waiver(int(wid), rule, _utc(until), reason, by, _utc(at))
        for wid, rule, until, reason, by, at in con.execute(
            "SELECT waiver_id, rule, until, reason, waived_by, waived_at FROM waivers ORDER BY waiver_id"
        ).fetchall()
    )
    return inval, pins, waivers


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


def _read_verifications(con) -> tuple[bool, tuple[PolicyEvidence, ...]]:
    cols = _table_columns(con, "policy_verifications")
    if "verified_at" not in cols:
        return False, ()
    wanted = (
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
    select = ", ".join(c if c in cols else f"NULL AS {c}" for c in wanted)
    rows = con.execute(
        f"SELECT {select} FROM policy_verifications WHERE verified_at IS NOT NULL"
        " ORDER BY verified_at, run_id"
    ).fetchall()
    out = []
    for at, mode, context, holds, drift, pdb_ok, violations, passed, ref, labels, unmatched in rows:
        out.append(
            PolicyEvidence(
                verified_at=_utc(at, "policy_verifications.verified_at"),
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
        )
    return True, tuple(out)


def load_snapshot(
    db_path: str | Path,
    *,
    checklist: str | Path | None = None,
    policy: Any = None,
    now: dt.datetime | None = None,
) -> HistorySnapshot:
    """Read the history (migrating an older file first) into a `HistorySnapshot`.

    With `now`, only what existed at that time is read (runs started, controls and verifications
    recorded by then), so a verdict "as of" a past time sees the history it would have seen.
    """
    from kgents_pipeline.verdict import evaluate as v

    policy = policy or v.VerdictPolicy()
    items, source = load_checklist(checklist, v.RULES)
    with connect(db_path, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        runs = _read_runs(con)
        inval, pins, waivers = _read_controls(con)
        has_table, verifications = _read_verifications(con)
        if now is not None:
            runs, inval, pins, waivers, verifications = as_of(
                now, runs, inval, pins, waivers, verifications
            )
        usable = v.usability(inval, policy)
        _, streak, baseline = evidence_runs(
            runs, usable, streak=policy.min_consecutive_runs, baseline_window=policy.baseline_runs
        )
        pinned = pins[-1].run_id if pins and pins[-1].run_id else None
        window_ids = sorted({r.run_id for r in streak})
        sample_ids = sorted(
            {r.run_id for r in streak[:1] + baseline} | ({pinned} if pinned else set())
        )
        windows = read_windows(con, window_ids)
        samples = _read_samples(con, sample_ids)
    return HistorySnapshot(
        runs=runs,
        windows=windows,
        samples=samples,
        invalidations=inval,
        pins=pins,
        waivers=waivers,
        verifications=verifications,
        verifications_table=has_table,
        checklist=items,
        checklist_source=source,
    )
