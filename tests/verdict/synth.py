"""Synthetic k6 run directories in k6's real formats (run.json as the runner writes it,
handleSummary JSON, `--out json` points gzipped), ingested by the real ingest, so the statistical
rules can be driven precisely without waiting for real load tests."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import numpy as np
import yaml

from kgents_pipeline.history.db import connect
from kgents_pipeline.history.ingest import ingest_run_dirs
from kgents_pipeline.history.store import open_history
from kgents_pipeline.verdict.checklist import DEFAULT_CHECKLIST

SCRIPT_SHA = "0" * 63 + "1"
T0 = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
REMOTE = "https://kgents.example.com"


def _trend(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {
            "avg": 0,
            "min": 0,
            "med": 0,
            "max": 0,
            "p(90)": 0,
            "p(95)": 0,
            "p(99)": 0,
            "count": 0,
        }
    q = np.quantile(values, [0.5, 0.9, 0.95, 0.99])
    return {
        "avg": float(values.mean()),
        "min": float(values.min()),
        "med": float(q[0]),
        "max": float(values.max()),
        "p(90)": float(q[1]),
        "p(95)": float(q[2]),
        "p(99)": float(q[3]),
        "count": len(values),
    }


def write_run(
    root: Path,
    run_id: str,
    started_at: dt.datetime,
    *,
    rate: int = 100,
    duration_s: float = 20.0,
    latency_ms: float = 20.0,
    jitter_ms: float = 2.0,
    errors: int = 0,
    target_url: str = REMOTE,
    target_kind: str = "remote",
    exit_code: int = 0,
    seed: int = 1,
    slow_window: tuple[int, float, float] | None = None,  # (window, fraction slow, latency ms)
    stall_window: tuple[int, float] | None = None,  # (window, fraction delayed to the next one)
    summary: bool = True,
    points: bool = True,
    drop_metrics: tuple[str, ...] = (),
) -> Path:
    """One archived run with `rate * duration_s` requests at ~`latency_ms`; `errors` of them 503."""
    rng = np.random.default_rng(seed)
    n = int(rate * duration_s)
    offsets = np.arange(n) / rate
    latency = np.clip(rng.normal(latency_ms, jitter_ms, n), 0.05, None)
    if slow_window is not None:
        w, frac, slow_ms = slow_window
        idx = np.flatnonzero((offsets >= w * 10) & (offsets < (w + 1) * 10))
        latency[rng.choice(idx, int(len(idx) * frac), replace=False)] = slow_ms
    if stall_window is not None:
        # A stall: the VUs hang, those requests complete in a burst in the next window. Nothing is
        # dropped and the run's overall rate is intact; that window's rate is not.
        w, frac = stall_window
        idx = np.flatnonzero((offsets >= w * 10) & (offsets < (w + 1) * 10))
        moved = np.sort(rng.choice(idx, int(len(idx) * frac), replace=False))
        offsets[moved] = (w + 1) * 10 + np.linspace(0.0, 1.0, len(moved))
        order = np.argsort(offsets, kind="stable")
        offsets, latency = offsets[order], latency[order]
    ok = np.ones(n, dtype=bool)
    if errors:
        ok[rng.choice(n, errors, replace=False)] = False

    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    k6_start = started_at + dt.timedelta(seconds=0.5)
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "run_id": run_id,
                "started_at": started_at.isoformat(timespec="milliseconds"),
                "finished_at": (k6_start + dt.timedelta(seconds=duration_s + 0.2)).isoformat(
                    timespec="milliseconds"
                ),
                "exit_code": exit_code,
                "outcome": {0: "passed", 99: "thresholds_failed"}.get(exit_code, "interrupted"),
                "k6_version": "1.1.0",
                "script_sha256": SCRIPT_SHA,
                "target_url": target_url,
                "target_kind": target_kind,
                "rate": rate,
                "duration_s": duration_s,
            },
            indent=2,
        )
    )
    if summary:
        err_count = int((~ok).sum())
        metrics = {
            "http_reqs": {
                "type": "counter",
                "contains": "default",
                "values": {"count": n, "rate": n / duration_s},
            },
            "iterations": {
                "type": "counter",
                "contains": "default",
                "values": {"count": n, "rate": n / duration_s},
            },
            "http_req_duration": {"type": "trend", "contains": "time", "values": _trend(latency)},
            "errors": {
                "type": "rate",
                "contains": "default",
                "values": {"rate": err_count / n, "passes": err_count, "fails": n - err_count},
                "thresholds": {"rate<0.01": {"ok": err_count / n < 0.01}},
            },
            "http_req_failed": {
                "type": "rate",
                "contains": "default",
                "values": {"rate": err_count / n, "passes": err_count, "fails": n - err_count},
            },
        }
        if ok.any():  # k6 omits the submetric when no request succeeded
            metrics["http_req_duration{expected_response:true}"] = {
                "type": "trend",
                "contains": "time",
                "values": _trend(latency[ok]),
                "thresholds": {"p(95)<500": {"ok": bool(np.quantile(latency[ok], 0.95) < 500)}},
            }
        for name in drop_metrics:
            metrics.pop(name, None)
        doc = {
            "root_group": {"name": "", "path": "", "id": "x", "groups": [], "checks": []},
            "options": {
                "summaryTrendStats": [
                    "avg",
                    "min",
                    "med",
                    "max",
                    "p(90)",
                    "p(95)",
                    "p(99)",
                    "count",
                ]
            },
            "state": {
                "isStdOutTTY": False,
                "isStdErrTTY": False,
                "testRunDurationMs": duration_s * 1000 + 3.2,
            },
            "metrics": metrics,
        }
        (run_dir / "summary.json").write_text(json.dumps(doc, indent=1))
    if points:
        lines = [
            json.dumps(
                {
                    "type": "Metric",
                    "data": {
                        "name": m,
                        "type": t,
                        "contains": c,
                        "thresholds": [],
                        "submetrics": None,
                    },
                    "metric": m,
                }
            )
            for m, t, c in (
                ("http_reqs", "counter", "default"),
                ("http_req_duration", "trend", "time"),
            )
        ]
        base = k6_start.timestamp()
        for off, lat, good in zip(offsets, latency, ok, strict=True):
            ts = (
                dt.datetime.fromtimestamp(base + off + lat / 1000, dt.UTC)
                .isoformat()
                .replace("+00:00", "Z")
            )
            tags = (
                f'{{"expected_response":"{"true" if good else "false"}","group":"","method":"GET",'
                f'"name":"health_saas","proto":"HTTP/1.1","scenario":"health","status":"{200 if good else 503}"}}'
            )
            lines.append(
                f'{{"metric":"http_reqs","type":"Point","data":{{"time":"{ts}","value":1,"tags":{tags}}}}}'
            )
            lines.append(
                f'{{"metric":"http_req_duration","type":"Point","data":{{"time":"{ts}","value":{lat:.6f},"tags":{tags}}}}}'
            )
        with gzip.open(run_dir / "points.ndjson.gz", "wt") as fh:
            fh.write("\n".join(lines) + "\n")
    return run_dir


def history(
    db: Path,
    root: Path,
    specs: list[dict],
    *,
    start: dt.datetime = T0,
    every_h: float = 1.0,
    knee: float | None = 250.0,
) -> list[str]:
    """Write and ingest one run per spec, `every_h` hours apart; returns the run ids.

    Like a history a team keeps, it also holds a capacity search of the first run's target,
    started with the first run (knee 250 req/s: 2.5x the launch rate), unless `knee` is None."""
    ids, dirs = [], []
    for i, spec in enumerate(specs):
        spec = dict(spec)
        run_id = spec.pop("run_id", f"run-{i:03d}")
        started = spec.pop("started_at", start + dt.timedelta(hours=every_h * i))
        spec.setdefault("seed", i + 1)
        dirs.append(write_run(root, run_id, started, **spec))
        ids.append(run_id)
    ingest_run_dirs(open_history(db), dirs)
    if knee is not None and specs:
        first = specs[0]
        capacity_search(
            db,
            first.get("started_at", start),
            knee_rps=knee,
            target_kind=first.get("target_kind", "remote"),
            target_url=first.get("target_url", REMOTE),
        )
    return ids


def capacity_search(
    db: Path,
    started_at: dt.datetime,
    *,
    knee_rps: float | None = 250.0,
    target_kind: str = "remote",
    target_url: str = REMOTE,
    valid: bool = True,
    search_id: str | None = None,
    reached_max: bool = False,
) -> str:
    """A capacity search as `loadtest capacity` records it: steps from 50 req/s x 1.5 up to the
    knee, then one failing step (none when it `reached_max`)."""
    from kgents_pipeline.history.capacity import CapacitySearch, CapacityStepRow, record_search

    search_id = search_id or f"cap-{started_at:%m%d%H%M%S}-{int(knee_rps or 0)}"
    rates, rate = [], 50.0
    while knee_rps is not None and rate < knee_rps:
        rates.append(rate)
        rate = round(rate * 1.5)
    if knee_rps is not None:
        rates.append(knee_rps)
    failed = None if reached_max else (knee_rps or 50.0) * 1.5 if knee_rps else 50.0
    steps = [
        CapacityStepRow(i, r, f"{i:02d}-{r:.0f}rps", 0, r, int(r * 10), 0, 20.0, 0.0, True, "held")
        for i, r in enumerate(rates, start=1)
    ]
    if failed is not None:
        steps.append(
            CapacityStepRow(
                len(steps) + 1, failed, "x", 99, failed * 0.8, 100, 40, 900.0, 0.0, False, "p95"
            )
        )
    search = CapacitySearch(
        search_id=search_id,
        started_at=started_at,
        finished_at=started_at + dt.timedelta(minutes=2),
        target_url="demo" if target_kind == "demo" else target_url,
        target_kind=target_kind,
        k6_version="1.1.0",
        script_sha256=SCRIPT_SHA,
        runners=1,
        start_rps=50.0,
        factor=1.5,
        max_rps=(knee_rps or 50.0) if reached_max else 1000.0,
        step_s=10.0,
        knee_rps=knee_rps,
        first_failed_rps=failed,
        failed_because=None if failed is None else f"p95 900 ms >= 500 ms at {failed:.0f} req/s",
        valid=valid,
        invalid_reasons=() if valid else ("step 2 is no measurement: k6 exit 137",),
    )
    with connect(db) as con:
        record_search(con, search, steps)
    return search_id


def verification(
    db: Path,
    verified_at: dt.datetime,
    *,
    mode: str = "live",
    intent_holds: bool = True,
    drift_count: int = 0,
    pdb_ok: bool = True,
    violations: list | None = None,
    ref: str | None = None,
    labels_ok: bool = True,
    unmatched_selectors: int = 0,
    passed: bool | None = None,
) -> None:
    """A row of `policy_verifications` (migration 0002), as the cluster assets record it:
    `passed` is the conjunction of every check unless given."""
    if passed is None:
        passed = intent_holds and drift_count == 0 and pdb_ok and labels_ok
        passed = passed and not unmatched_selectors
    with connect(db) as con:
        con.execute(
            "INSERT INTO policy_verifications (run_id, verified_at, mode, context, rendered_sha256, passed,"
            " intent_holds, drift_count, pdb_ok, labels_ok, unmatched_selectors, violations, report)"
            " VALUES (?, ?, ?, ?, 'abc', ?, ?, ?, ?, ?, ?, ?, '{}')",
            [
                ref or f"verify-{verified_at:%H%M%S}-{mode}",
                verified_at,
                mode,
                "prod" if mode == "live" else None,
                passed,
                intent_holds,
                drift_count,
                pdb_ok,
                labels_ok,
                unmatched_selectors,
                json.dumps(violations or []),
            ],
        )


def signed_checklist(path: Path, at: object = "2026-11-20") -> Path:
    """The repository checklist with the security review signed off (dated `at`)."""
    data = yaml.safe_load(DEFAULT_CHECKLIST.read_text())
    for item in data["items"]:
        if item["id"] == "security-review":
            item["signoff"] = {
                "by": "sec-lead",
                "at": at,
                "note": "reviewed and approved",
            }
    path.write_text(yaml.safe_dump(data))
    return path
