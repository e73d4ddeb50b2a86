"""One load test spread over N k6 runners, each running one execution segment.

`--execution-segment` and `--execution-segment-sequence` are k6's own way to split one test:
runner i of N runs segment `(i-1)/N:i/N` of the sequence `0,1/N,...,1`, so the N runners together
send exactly the planned arrival rate. k6-operator gives its runners the same two flags for a
`TestRun` with `parallelism: N`; the local runners here get them from the same function.

A run of N runners is archived as one run directory:

    <run_id>/run.json             the run as planned and as it ended (runners, segments, thresholds)
    <run_id>/saas-health.js       the exact script
    <run_id>/runners/<i>/...      each runner's own archive (run.json, summary.json, points, k6.log)

Nothing is merged here: `history.merge` computes the run's figures from the union of the
runners' raw points when the run is ingested.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgents_pipeline.errors import LoadTestError
from kgents_pipeline.loadtest.runner import (
    DEFAULT_ARCHIVE,
    SCRIPT_NAME,
    LoadTestRequest,
    Outcome,
    RunResult,
    describe_exit,
    find_k6,
    k6_version,
    new_run_id,
    run_load_test,
    script_path,
)

RUNNERS_DIR = "runners"
_INDEX = re.compile(r"(\d+)$")
MAX_RUNNERS = 64


def segment_bounds(index: int, runners: int) -> str:
    """Runner `index` (1-based) of `runners`: its execution segment, e.g. `1/2:1`."""
    if not 1 <= index <= runners:
        raise LoadTestError(f"runner index {index} outside 1..{runners}")

    def point(i: int) -> str:
        return "0" if i == 0 else "1" if i == runners else f"{i}/{runners}"

    return f"{point(index - 1)}:{point(index)}"


def segment_sequence(runners: int) -> str:
    """`0,1/N,...,1`: the sequence every runner is given, so their segments tile the test."""
    return ",".join(["0", *(f"{i}/{runners}" for i in range(1, runners)), "1"])


def segment_args(index: int, runners: int) -> list[str]:
    """The two flags k6 needs to run one runner's share of the test (none for a single runner,
    as k6-operator does)."""
    if runners == 1:
        return []
    return [
        f"--execution-segment={segment_bounds(index, runners)}",
        f"--execution-segment-sequence={segment_sequence(runners)}",
    ]


def segment_fraction(index: int, runners: int) -> float:
    """The share of the planned iterations runner `index` sends."""
    segment_bounds(index, runners)
    return 1.0 / runners


def check_runners(runners: int) -> int:
    if not isinstance(runners, int) or not 1 <= runners <= MAX_RUNNERS:
        raise LoadTestError(f"runners must be an integer from 1 to {MAX_RUNNERS}, got {runners!r}")
    return runners


def script_thresholds(
    k6: Path, script: Path, env: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """The script's thresholds as k6 itself parses them from its `options` (`k6 inspect`): the
    expressions the merged run is judged by, never a copy kept by hand."""
    try:
        out = subprocess.run(
            [str(k6), "inspect", str(script)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env=dict(env) if env is not None else None,
        ).stdout
        options = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise LoadTestError(
            f"cannot read the thresholds of {script} (`k6 inspect`): {exc}"
        ) from exc
    raw = options.get("thresholds") if isinstance(options, dict) else None
    out_map: dict[str, list[str]] = {}
    for metric, entries in (raw or {}).items():
        exprs = []
        for entry in entries or []:
            # A threshold is a string, or {"threshold": "...", "abortOnFail": ...}.
            expr = entry.get("threshold") if isinstance(entry, dict) else entry
            if isinstance(expr, str):
                exprs.append(expr)
        out_map[str(metric)] = exprs
    return out_map


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _write_json(path: Path, data: Mapping[str, object]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def runner_env(request: LoadTestRequest) -> dict[str, str]:
    """What the script reads from its environment for this request (no secret)."""
    return {
        "KGENTS_TARGET_URL": request.target_url,
        "KGENTS_RATE": str(request.rate),
        "KGENTS_DURATION": request.duration,
        "K6_NO_USAGE_REPORT": "true",
    }


def prepare_run_dir(
    request: LoadTestRequest,
    runners: int,
    *,
    archive_root: str | os.PathLike[str] = DEFAULT_ARCHIVE,
    k6_bin: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    mode: str = "local",
) -> tuple[Path, dict[str, Any]]:
    """Create `<run_id>/` with the script and a run.json naming the runners and the thresholds;
    returns (run_dir, the record) for `finish_run_dir`."""
    check_runners(runners)
    k6 = find_k6(k6_bin)
    version = k6_version(k6)
    script = script_path()
    script_bytes = script.read_bytes()
    run_id = run_id or new_run_id()
    run_dir = Path(archive_root) / run_id
    try:
        (run_dir / RUNNERS_DIR).mkdir(parents=True, exist_ok=False)
    except OSError as exc:
        raise LoadTestError(f"cannot create run directory {run_dir}: {exc}") from exc
    (run_dir / SCRIPT_NAME).write_bytes(script_bytes)
    env = dict(os.environ)
    env.update(runner_env(request))
    record: dict[str, Any] = {
        "run_id": run_id,
        "started_at": _now(),
        "finished_at": None,
        "exit_code": None,
        "outcome": None,
        "k6_version": version,
        "script_sha256": hashlib.sha256(script_bytes).hexdigest(),
        "target_url": request.target_url,
        "target_kind": request.target_kind,
        "rate": request.rate,
        "duration_s": request.duration_s,
        "runners": runners,
        "mode": mode,
        "segments": [segment_bounds(i, runners) for i in range(1, runners + 1)],
        "segment_sequence": segment_sequence(runners),
        "thresholds": script_thresholds(k6, run_dir / SCRIPT_NAME, env),
        "runner_exit_codes": {},
    }
    _write_json(run_dir / "run.json", record)
    return run_dir, record


def finish_run_dir(
    run_dir: Path, record: dict[str, Any], exit_codes: Mapping[str, int | None]
) -> tuple[int | None, Outcome, str]:
    """Record how every runner ended. The run's exit code is the first runner's that did not
    finish, else 99 if any runner's own thresholds failed, else 0 (the merged thresholds are
    judged again at ingest, on the union of the points)."""
    runners = int(record["runners"])
    exit_code: int | None = 0
    outcome, message = Outcome.PASSED, "every runner finished and passed its own thresholds"
    for name in sorted(exit_codes, key=_runner_order):
        code = exit_codes[name]
        if code not in (0, 99):
            out, why = describe_exit(code)
            exit_code, outcome = code, out
            message = f"runner {name} of {runners}: {why}"
            break
        if code == 99 and exit_code == 0:
            exit_code, outcome = 99, Outcome.THRESHOLDS_FAILED
            message = f"runner {name} of {runners} crossed its own thresholds"
    missing = [str(i) for i in range(1, runners + 1) if not _has_runner(exit_codes, i)]
    if missing and exit_code in (0, 99):
        exit_code, outcome = None, Outcome.K6_ERROR
        message = f"runner {', '.join(missing)} of {runners} reported no exit status"
    record.update(
        finished_at=_now(),
        exit_code=exit_code,
        outcome=str(outcome),
        runner_exit_codes=dict(exit_codes),
        message=message,
    )
    _write_json(run_dir / "run.json", record)
    return exit_code, outcome, message


def record_runner(
    run_dir: Path,
    name: str,
    exit_code: int | None,
    record: Mapping[str, Any],
    *,
    started_at: str | None = None,
    finished_at: str | None = None,
) -> Path:
    """The run.json of a runner that did not write its own (a k6-operator runner pod: plain k6),
    from its exit status as the cluster reported it; an existing one is left as it is."""
    own = run_dir / RUNNERS_DIR / name
    own.mkdir(parents=True, exist_ok=True)
    path = own / "run.json"
    if not path.exists():
        outcome, _ = describe_exit(exit_code)
        _write_json(
            path,
            {
                "run_id": name,
                "started_at": started_at or record["started_at"],
                "finished_at": finished_at,
                "exit_code": exit_code,
                "outcome": str(outcome),
                **{
                    k: record[k]
                    for k in (
                        "k6_version",
                        "script_sha256",
                        "target_url",
                        "target_kind",
                        "rate",
                        "duration_s",
                    )
                },
            },
        )
    return path


def runner_index(name: str) -> int | None:
    """The index of a runner from its directory name: `2` here, `<testrun>-2` under k6-operator."""
    m = _INDEX.search(name)
    return int(m[1]) if m else None


def _runner_order(name: str) -> tuple[int, str]:
    index = runner_index(name)
    return (index if index is not None else 1 << 30, name)


def _has_runner(exit_codes: Mapping[str, int | None], index: int) -> bool:
    return any(runner_index(name) == index for name in exit_codes)


@dataclass(frozen=True)
class SegmentedRun:
    """A run of N runners, as it ended (before anything is merged)."""

    run_id: str
    run_dir: Path
    runners: tuple[RunResult, ...]
    exit_code: int | None
    outcome: Outcome
    message: str

    @property
    def completed(self) -> bool:
        return all(r.completed for r in self.runners)


def run_segments(
    request: LoadTestRequest,
    runners: int,
    *,
    archive_root: str | os.PathLike[str] = DEFAULT_ARCHIVE,
    log: Callable[[str], None] = print,
    k6_bin: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
) -> SegmentedRun:
    """Run `runners` local k6 processes at once, runner i on segment i; archive each under
    `<run_id>/runners/<i>/`. Raises `LoadTestError` only when k6 cannot be started."""
    run_dir, record = prepare_run_dir(
        request, runners, archive_root=archive_root, k6_bin=k6_bin, run_id=run_id
    )
    log(
        f"{runners} k6 runners, one execution segment each ({record['segment_sequence']}); "
        f"run {record['run_id']}"
    )
    results: dict[int, RunResult] = {}
    errors: list[BaseException] = []

    def one(index: int) -> None:
        prefix = f"[runner {index}/{runners}] "
        try:
            results[index] = run_load_test(
                request,
                archive_root=run_dir / RUNNERS_DIR,
                log=lambda line: log(prefix + line),
                k6_bin=k6_bin,
                run_id=str(index),
                extra_args=segment_args(index, runners),
            )
        except BaseException as exc:  # reported after every runner has ended
            errors.append(exc)

    threads = [
        threading.Thread(target=one, args=(i,), name=f"k6-runner-{i}", daemon=True)
        for i in range(1, runners + 1)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    exit_codes = {str(i): r.exit_code for i, r in sorted(results.items())}
    exit_code, outcome, message = finish_run_dir(run_dir, record, exit_codes)
    if errors:
        raise errors[0]
    log(f"run {record['run_id']}: {message}")
    return SegmentedRun(
        record["run_id"],
        run_dir,
        tuple(results[i] for i in sorted(results)),
        exit_code,
        outcome,
        message,
    )
