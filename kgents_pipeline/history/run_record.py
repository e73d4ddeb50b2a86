"""A k6 run as the history knows it: `run.json` (ours) + `summary.json` (k6's handleSummary).

Parsing is pure and tolerant: a missing or truncated summary yields a record with
`summary_present=False` and the reason, never an exception, so the run still enters the history
(as an invalid run) and nothing is lost.
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

from kgents_pipeline.errors import HistoryError

SUCCESS_DURATION = "http_req_duration{expected_response:true}"
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


def _parse_time(value: Any, where: str) -> dt.datetime:
    if not isinstance(value, str):
        raise HistoryError(f"{where}: expected an ISO-8601 timestamp, got {value!r}")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise HistoryError(f"{where}: not an ISO-8601 timestamp: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """The run's own record; a missing or corrupt one is an error naming the file."""
    path = run_dir / "run.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise HistoryError(f"{path}: missing (not a k6 run directory?)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HistoryError(f"{path}: unreadable: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise HistoryError(f"{path}: corrupt JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(meta, dict):
        raise HistoryError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    missing = [k for k in RUN_JSON_FIELDS if k not in meta]
    if missing:
        raise HistoryError(f"{path}: missing fields {', '.join(missing)}")
    if meta["run_id"] != run_dir.name:
        raise HistoryError(
            f"{path}: run_id {meta['run_id']!r} does not match its directory {run_dir.name!r}"
        )
    if meta["target_kind"] not in ("demo", "remote"):
        raise HistoryError(
            f"{path}: target_kind must be demo or remote, got {meta['target_kind']!r}"
        )
    _parse_time(meta["started_at"], f"{path}: started_at")
    return meta


def _summary_rows(
    metrics: dict[str, Any],
) -> tuple[tuple[MetricValue, ...], tuple[ThresholdResult, ...]]:
    values: list[MetricValue] = []
    thresholds: list[ThresholdResult] = []
    for name, body in sorted(metrics.items()):
        if not isinstance(body, dict):
            continue
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
    for check in group.get("checks") or []:
        if isinstance(check, dict) and "name" in check:
            name = str(check["name"])
            out.append(
                CheckResult(
                    path=str(check.get("path") or f"{group.get('path', '')}::{name}"),
                    name=name,
                    passes=_int(_finite(check.get("passes"))) or 0,
                    fails=_int(_finite(check.get("fails"))) or 0,
                )
            )
    for sub in group.get("groups") or []:
        if isinstance(sub, dict):
            out.extend(_checks(sub))
    return out


def _stat(metrics: dict[str, Any], name: str, stat: str) -> float | None:
    body = metrics.get(name)
    if not isinstance(body, dict):
        return None
    return _finite((body.get("values") or {}).get(stat))


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


def parse_run_dir(run_dir: str | Path) -> RunRecord:
    """Build the record of an archived run. Raises `HistoryError` only for a bad `run.json`."""
    run_dir = Path(run_dir)
    meta = read_run_json(run_dir)
    digest = hashlib.sha256((run_dir / "run.json").read_bytes())
    base: dict[str, Any] = dict(
        run_id=meta["run_id"],
        started_at=_parse_time(meta["started_at"], "started_at"),
        finished_at=(
            _parse_time(meta["finished_at"], "finished_at") if meta.get("finished_at") else None
        ),
        exit_code=meta["exit_code"] if isinstance(meta["exit_code"], int) else None,
        outcome=str(meta.get("outcome") or "unknown"),
        k6_version=meta["k6_version"],
        script_sha256=meta["script_sha256"],
        target_url=meta["target_url"],
        target_kind=meta["target_kind"],
        rate=_finite(meta["rate"]),
        duration_s=_finite(meta["duration_s"]),
        run_dir=str(run_dir.resolve()),
    )

    summary_path = run_dir / "summary.json"
    try:
        raw = summary_path.read_bytes()
        digest.update(raw)
        summary = json.loads(raw)
        if not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict):
            raise ValueError("no `metrics` object (not a handleSummary output)")
    except FileNotFoundError:
        return RunRecord(
            **base,
            summary_present=False,
            summary_error="summary.json missing (k6 killed, or handleSummary failed)",
            content_sha256=digest.hexdigest(),
        )
    except (ValueError, OSError) as exc:  # JSONDecodeError is a ValueError
        return RunRecord(
            **base,
            summary_present=False,
            summary_error=f"summary.json unparseable (truncated?): {exc}",
            content_sha256=digest.hexdigest(),
        )

    metrics = summary["metrics"]
    values, thresholds = _summary_rows(metrics)
    demo_responses = _int(_stat(metrics, "demo_target_responses", "count")) or 0
    if demo_responses:
        # The target said it is the bundled demo target: a rehearsal, whatever run.json claims.
        base["target_kind"] = "demo"
    raw_state = summary.get("state")
    state: dict[str, Any] = raw_state if isinstance(raw_state, dict) else {}
    duration_ms = _finite(state.get("testRunDurationMs"))
    ok_reqs = _int(_stat(metrics, SUCCESS_DURATION, "count"))
    error_count = _int(_stat(metrics, "errors", "passes"))  # a Rate's passes are the errors
    error_fails = _int(_stat(metrics, "errors", "fails"))
    error_total = None if error_count is None or error_fails is None else error_count + error_fails
    return RunRecord(
        **base,
        summary_present=True,
        test_run_duration_s=None if duration_ms is None else duration_ms / 1000.0,
        http_reqs=_int(_stat(metrics, "http_reqs", "count")),
        ok_reqs=ok_reqs,
        achieved_rps=_stat(metrics, "http_reqs", "rate"),
        iterations=_int(_stat(metrics, "iterations", "count")),
        # k6 omits dropped_iterations when none were dropped.
        dropped_iterations=_int(_stat(metrics, "dropped_iterations", "count")) or 0,
        # No successful request means no success latency at all, not a 0 ms one.
        p95_ms=_stat(metrics, SUCCESS_DURATION, "p(95)") if ok_reqs else None,
        p99_ms=_stat(metrics, SUCCESS_DURATION, "p(99)") if ok_reqs else None,
        p95_all_ms=_stat(metrics, "http_req_duration", "p(95)"),
        error_count=error_count,
        error_total=error_total,
        error_rate=_stat(metrics, "errors", "rate"),
        thresholds_ok=all(t.ok for t in thresholds) if thresholds else None,
        demo_responses=demo_responses,
        content_sha256=digest.hexdigest(),
        metrics=values,
        thresholds=thresholds,
        checks=tuple(_checks(summary.get("root_group") or {})),
    )
