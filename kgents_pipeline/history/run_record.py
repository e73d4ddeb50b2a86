"""A k6 run as the history knows it: `run.json` (ours) + `summary.json` (k6's handleSummary).

Parsing is tolerant of k6 and strict about types: a missing, truncated or malformed summary (a
metric block that is not an object, a count that is not a number or does not fit 64 bits) yields
a record with `summary_present=False` and the reason, never an exception, so the run still enters
the history (as an invalid run) and nothing is lost. `run.json` is ours: a field of the wrong type
refuses that one directory in one line. A run whose load test died before it finished (its
`run.json` never completed, its directory no longer locked) is finalised as not evidence, with
`archive_note` saying why; a run still being written is refused until it finishes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from kgents_pipeline import safe_yaml
from kgents_pipeline.errors import HistoryError
from kgents_pipeline.filesystem import dir_locked

SUCCESS_DURATION = "http_req_duration{expected_response:true}"
INCOMPLETE_MARKER = "incomplete"  # written by the load test when its directory is not whole
RUN_JSON_LIMITS = safe_yaml.Limits(max_bytes=1024 * 1024)
SUMMARY_LIMITS = safe_yaml.Limits(max_bytes=64 * 1024 * 1024)
MAX_COUNT = 2**53  # counts beyond this are not k6's (and would not fit a DOUBLE exactly)
ABANDONED = (
    "the load test was killed before k6 finished (its run.json was never completed): not evidence"
)
RUN_JSON_FIELDS = (
    "run_id",
    "started_at",
    "exit_code",
    "k6_version",
    "script_sha256",
    "target_url",
    "target_kind",
    "rate",
    "duration_s",
)


@dataclass(frozen=True)
class MetricValue:
    metric: str
    type: str
    stat: str
    value: float | None


@dataclass(frozen=True)
class ThresholdResult:
    metric: str
    expression: str
    ok: bool


@dataclass(frozen=True)
class CheckResult:
    path: str
    name: str
    passes: int
    fails: int


@dataclass(frozen=True)
class RunRecord:
    """One row of the `runs` table, plus the long-format rows that go with it."""

    run_id: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    exit_code: int | None
    outcome: str
    k6_version: str | None
    script_sha256: str | None
    target_url: str | None
    target_kind: str
    rate: float | None
    duration_s: float | None
    summary_present: bool
    summary_error: str | None = None
    test_run_duration_s: float | None = None
    http_reqs: int | None = None
    ok_reqs: int | None = None
    achieved_rps: float | None = None
    iterations: int | None = None
    dropped_iterations: int | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    p95_all_ms: float | None = None
    error_count: int | None = None
    error_total: int | None = None
    error_rate: float | None = None
    thresholds_ok: bool | None = None
    demo_responses: int | None = None  # answers marked `"demo": true` (the bundled demo target)
    archive_note: str | None = None  # why the archived run is not whole (abandoned, incomplete)
    runners: int | None = None  # k6 runners of a multi-runner run (None: one)
    runner_problems: str | None = None  # why a runner's share is not evidence, naming it
    content_sha256: str = ""
    run_dir: str = ""
    metrics: tuple[MetricValue, ...] = field(default=(), repr=False)
    thresholds: tuple[ThresholdResult, ...] = field(default=(), repr=False)
    checks: tuple[CheckResult, ...] = field(default=(), repr=False)

    @classmethod
    def from_rows(cls, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[RunRecord]:
        """Build records from `runs` rows (column names as the field names), fast.

        Filling `__dict__` directly skips the frozen dataclass's per-field `object.__setattr__`:
        10,000 runs take ~15 ms instead of ~110 ms. Each record is exactly what `__init__`
        would build: fields the columns do not name take their defaults.
        """
        defaults = {k: v for k, v in _DEFAULTS.items() if k not in columns}
        new = object.__new__
        out = []
        for row in rows:
            record = new(cls)
            fields_ = record.__dict__
            fields_.update(zip(columns, row, strict=True))
            fields_.update(defaults)
            out.append(record)
        return out

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        """Runs are comparable only with the same script, k6, load shape and target. The demo
        target is one target whatever ephemeral port it was started on."""
        target = "demo" if self.target_kind == "demo" else self.target_url
        return (self.script_sha256, self.k6_version, self.rate, self.duration_s, target)


_DEFAULTS = {f.name: f.default for f in fields(RunRecord) if f.default is not MISSING}


class RunInProgress(HistoryError):
    """The run directory is still being written by a running load test."""


def _parse_time(value: Any, where: str) -> dt.datetime:
    if not isinstance(value, str):
        raise HistoryError(f"{where}: expected an ISO-8601 timestamp, got {_shown(value)}")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise HistoryError(f"{where}: not an ISO-8601 timestamp: {_shown(value)}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _finite(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else (a number too large for a
    float, too)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """The run's own record; a missing, corrupt or mistyped one is an error naming the file."""
    path = run_dir / "run.json"
    if not path.exists() and not path.is_symlink():
        raise HistoryError(f"{path}: missing (not a k6 run directory?)")
    if path.is_dir():
        raise HistoryError(f"{path}: is a directory, not a file")
    raw = safe_yaml.read_bytes(path, error=HistoryError, limits=RUN_JSON_LIMITS)
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise HistoryError(f"{path}: corrupt JSON at line {exc.lineno}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise HistoryError(f"{path}: unreadable: not UTF-8 ({exc.reason})") from exc
    except RecursionError:
        raise HistoryError(f"{path}: corrupt JSON: nested too deeply") from None
    except ValueError as exc:
        raise HistoryError(f"{path}: corrupt JSON: {' '.join(str(exc).split())}") from exc
    if not isinstance(meta, dict):
        raise HistoryError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    missing = [k for k in RUN_JSON_FIELDS if k not in meta]
    if missing:
        raise HistoryError(f"{path}: missing fields {', '.join(missing)}")
    if meta["run_id"] != run_dir.name:
        raise HistoryError(
            f"{path}: run_id {_shown(meta['run_id'])} does not match its directory {run_dir.name!r}"
        )
    if meta["target_kind"] not in ("demo", "remote"):
        raise HistoryError(
            f"{path}: target_kind must be demo or remote, got {_shown(meta['target_kind'])}"
        )
    _parse_time(meta["started_at"], f"{path}: started_at")
    if meta.get("finished_at") is not None:
        _parse_time(meta["finished_at"], f"{path}: finished_at")
    code = meta["exit_code"]
    if code is not None and (
        isinstance(code, bool) or not isinstance(code, int) or not -(2**31) <= code < 2**31
    ):
        raise HistoryError(f"{path}: exit_code must be an integer or null, got {_shown(code)}")
    for key in ("k6_version", "script_sha256", "target_url", "outcome"):
        value = meta.get(key)
        if value is not None and not isinstance(value, str):
            raise HistoryError(f"{path}: {key} must be a string or null, got {_shown(value)}")
    for key in ("rate", "duration_s"):
        value = meta[key]
        if value is not None and (_finite(value) is None or not 0 <= value <= 1e9):
            raise HistoryError(
                f"{path}: {key} must be a number between 0 and 1e9 or null, got {_shown(value)}"
            )
    return meta


class _Malformed(ValueError):
    """summary.json is JSON but not a handleSummary output this parser can trust."""


def _count(metrics: dict[str, Any], name: str, stat: str) -> float | None:
    """A stat the verdict judges: absent is None; present, it must be a finite number in range."""
    body = metrics.get(name)
    if body is None:
        return None
    values = body.get("values") or {}
    if stat not in values:
        return None
    value = values[stat]
    number = _finite(value)
    if number is None or not 0 <= number <= MAX_COUNT:
        raise _Malformed(f"{name} {stat} = {_shown(value)} is not a count k6 could write")
    return number


def _checked_metrics(summary: Any) -> dict[str, Any]:
    """The `metrics` object, every metric block an object with object `values`/`thresholds`."""
    if not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict):
        raise _Malformed("no `metrics` object (not a handleSummary output)")
    metrics: dict[str, Any] = summary["metrics"]
    for name, body in metrics.items():
        if not isinstance(body, dict):
            raise _Malformed(f"metric {_shown(name)} is a {type(body).__name__}, not an object")
        for part in ("values", "thresholds"):
            if body.get(part) is not None and not isinstance(body[part], dict):
                raise _Malformed(
                    f"metric {_shown(name)} {part} is a {type(body[part]).__name__}, not an object"
                )
    return metrics


def _summary_rows(
    metrics: dict[str, Any],
) -> tuple[tuple[MetricValue, ...], tuple[ThresholdResult, ...]]:
    values: list[MetricValue] = []
    thresholds: list[ThresholdResult] = []
    for name, body in sorted(metrics.items()):
        mtype = str(body.get("type", ""))
        for stat, value in sorted((body.get("values") or {}).items()):
            values.append(MetricValue(name, mtype, stat, _finite(value)))
        for expression, result in sorted((body.get("thresholds") or {}).items()):
            ok = bool(result.get("ok")) if isinstance(result, dict) else False
            thresholds.append(ThresholdResult(name, expression, ok))
    return tuple(values), tuple(thresholds)


def _checks(group: dict[str, Any]) -> list[CheckResult]:
    """Every check of the group tree, keyed by k6's own path ('::group::check')."""
    out: list[CheckResult] = []
    checks = group.get("checks") or []
    for check in checks if isinstance(checks, list) else []:
        if isinstance(check, dict) and "name" in check:
            name = str(check["name"])
            out.append(
                CheckResult(
                    path=str(check.get("path") or f"{group.get('path', '')}::{name}"),
                    name=name,
                    passes=_int(_bounded(check.get("passes"))) or 0,
                    fails=_int(_bounded(check.get("fails"))) or 0,
                )
            )
    groups = group.get("groups") or []
    for sub in groups if isinstance(groups, list) else []:
        if isinstance(sub, dict):
            out.extend(_checks(sub))
    return out


def _bounded(value: Any) -> float | None:
    number = _finite(value)
    return number if number is not None and 0 <= number <= MAX_COUNT else None


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


def _archive_note(run_dir: Path, meta: dict[str, Any]) -> str | None:
    """Why the archived run is not whole, or None. A run still being written is refused."""
    marker = run_dir / INCOMPLETE_MARKER
    if marker.exists():
        try:
            why = " ".join(marker.read_bytes()[:2000].decode(errors="replace").split())
        except OSError:
            why = ""
        return (
            "its run directory could not be written whole"
            + (f" ({why})" if why else "")
            + ": not evidence"
        )
    if meta["exit_code"] is None and meta.get("finished_at") is None:
        if dir_locked(run_dir):
            raise RunInProgress(
                f"{run_dir}: the load test writing this run is still running: ingest it when "
                "it has finished"
            )
        return ABANDONED
    return None


def parse_run_dir(run_dir: str | Path) -> RunRecord:
    """Build the record of an archived run. Raises `HistoryError` only for a bad `run.json` (or
    a run still in progress)."""
    run_dir = Path(run_dir)
    meta = read_run_json(run_dir)
    note = _archive_note(run_dir, meta)
    digest = hashlib.sha256((run_dir / "run.json").read_bytes())
    if note is not None:
        digest.update(note.encode())
    outcome = meta.get("outcome") or ("abandoned" if note == ABANDONED else "unknown")
    base: dict[str, Any] = dict(
        run_id=meta["run_id"],
        started_at=_parse_time(meta["started_at"], "started_at"),
        finished_at=(
            _parse_time(meta["finished_at"], "finished_at") if meta.get("finished_at") else None
        ),
        exit_code=meta["exit_code"],
        outcome=str(outcome),
        k6_version=meta["k6_version"],
        script_sha256=meta["script_sha256"],
        target_url=meta["target_url"],
        target_kind=meta["target_kind"],
        rate=_finite(meta["rate"]),
        duration_s=_finite(meta["duration_s"]),
        run_dir=str(run_dir.resolve()),
        archive_note=note,
    )

    summary_path = run_dir / "summary.json"
    try:
        if summary_path.is_dir():
            raise _Malformed("summary.json is a directory, not a file")
        raw = safe_yaml.read_bytes(summary_path, error=HistoryError, limits=SUMMARY_LIMITS)
        digest.update(raw)
        summary = json.loads(raw)
        metrics = _checked_metrics(summary)
        counts = {
            (name, stat): _count(metrics, name, stat)
            for name, stat in (
                ("http_reqs", "count"),
                ("http_reqs", "rate"),
                ("iterations", "count"),
                ("dropped_iterations", "count"),
                (SUCCESS_DURATION, "count"),
                (SUCCESS_DURATION, "p(95)"),
                (SUCCESS_DURATION, "p(99)"),
                ("http_req_duration", "p(95)"),
                ("errors", "passes"),
                ("errors", "fails"),
                ("errors", "rate"),
                ("demo_target_responses", "count"),
            )
        }
        raw_state = summary.get("state")
        state: dict[str, Any] = raw_state if isinstance(raw_state, dict) else {}
        duration_ms = state.get("testRunDurationMs")
        if duration_ms is not None and (
            _finite(duration_ms) is None or not 0 <= duration_ms <= 1e12
        ):
            raise _Malformed(f"state.testRunDurationMs = {_shown(duration_ms)} is not a duration")
    except HistoryError as exc:
        if not summary_path.exists():
            return RunRecord(
                **base,
                summary_present=False,
                summary_error="summary.json missing (k6 killed, or handleSummary failed)",
                content_sha256=digest.hexdigest(),
            )
        return RunRecord(
            **base,
            summary_present=False,
            summary_error=f"summary.json unusable: {str(exc).removeprefix(str(summary_path) + ': ')}",
            content_sha256=digest.hexdigest(),
        )
    except _Malformed as exc:
        return RunRecord(
            **base,
            summary_present=False,
            summary_error=f"summary.json malformed: {exc}",
            content_sha256=digest.hexdigest(),
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        return RunRecord(
            **base,
            summary_present=False,
            summary_error=f"summary.json unparseable (truncated?): {' '.join(str(exc).split())}",
            content_sha256=digest.hexdigest(),
        )

    def stat(name: str, which: str) -> float | None:
        return counts[(name, which)]

    values, thresholds = _summary_rows(metrics)
    demo_responses = _int(stat("demo_target_responses", "count")) or 0
    if demo_responses:
        # The target said it is the bundled demo target: a rehearsal, whatever run.json claims.
        base["target_kind"] = "demo"
    ok_reqs = _int(stat(SUCCESS_DURATION, "count"))
    error_count = _int(stat("errors", "passes"))  # a Rate's passes are the errors
    error_fails = _int(stat("errors", "fails"))
    error_total = None if error_count is None or error_fails is None else error_count + error_fails
    duration = _finite(duration_ms)
    return RunRecord(
        **base,
        summary_present=True,
        test_run_duration_s=None if duration is None else duration / 1000.0,
        http_reqs=_int(stat("http_reqs", "count")),
        ok_reqs=ok_reqs,
        achieved_rps=stat("http_reqs", "rate"),
        iterations=_int(stat("iterations", "count")),
        # k6 omits dropped_iterations when none were dropped.
        dropped_iterations=_int(stat("dropped_iterations", "count")) or 0,
        # No successful request means no success latency at all, not a 0 ms one.
        p95_ms=stat(SUCCESS_DURATION, "p(95)") if ok_reqs else None,
        p99_ms=stat(SUCCESS_DURATION, "p(99)") if ok_reqs else None,
        p95_all_ms=stat("http_req_duration", "p(95)"),
        error_count=error_count,
        error_total=error_total,
        error_rate=stat("errors", "rate"),
        thresholds_ok=all(t.ok for t in thresholds) if thresholds else None,
        demo_responses=demo_responses,
        content_sha256=digest.hexdigest(),
        metrics=values,
        thresholds=thresholds,
        checks=tuple(
            _checks(
                summary.get("root_group") if isinstance(summary.get("root_group"), dict) else {}
            )
        ),
    )
