"""The capacity search: how far the service is from falling over.

The arrival rate is stepped up geometrically (start, factor, up to max; each step a real k6 run
of the same script for the step's duration) until a step fails: p95 of successful requests at or
above the SLO limit, errors at or above 1%, or more than 1% of the step's iterations dropped (k6
could not start them: the service held every VU). The knee is the highest rate that held. Every
step is archived under `<archive>/<search_id>/steps/` and recorded with the search in the
history (`capacity_searches`, `capacity_steps`, view `capacity_knee`); steps never enter `runs`.
The verdict's `capacity.headroom` judges the newest valid search.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kgents_pipeline import settings
from kgents_pipeline.errors import LoadTestError
from kgents_pipeline.history.capacity import CapacitySearch, CapacityStepRow, record_search
from kgents_pipeline.history.run_record import RunRecord, parse_run_dir
from kgents_pipeline.history.store import HistoryStore
from kgents_pipeline.loadtest.runner import (
    DEFAULT_ARCHIVE,
    LoadTestRequest,
    find_k6,
    new_run_id,
    parse_duration,
    run_load_test,
)
from kgents_pipeline.loadtest.target import DemoTarget
from kgents_pipeline.verdict.model import VerdictPolicy


@dataclass(frozen=True)
class CapacityPlan:
    """How to search. No `target_url`: the bundled demo target (a rehearsal), with its
    capacity limit (`demo_workers` x 1000 / `demo_service_ms` req/s) when one is given."""

    start_rps: int = int(settings.CAPACITY_START.default)
    factor: float = float(settings.CAPACITY_FACTOR.default)
    max_rps: int = int(settings.CAPACITY_MAX.default)
    step: str = settings.CAPACITY_STEP.default
    target_url: str | None = None
    auth_header: str | None = None
    demo_workers: int = 0
    demo_service_ms: float = 0.0
    demo_latency_ms: float = 0.0
    archive_root: str | os.PathLike[str] = DEFAULT_ARCHIVE
    k6_bin: str | None = None
    policy: VerdictPolicy = field(default_factory=VerdictPolicy)

    def __post_init__(self) -> None:
        if self.start_rps < 1 or self.max_rps < self.start_rps:
            raise LoadTestError(
                f"capacity search needs 1 <= start <= max, got {self.start_rps}, {self.max_rps}"
            )
        if not self.factor > 1.0:
            raise LoadTestError(f"capacity search factor must be > 1, got {self.factor}")
        parse_duration(self.step)

    @property
    def target_kind(self) -> str:
        return "remote" if self.target_url else "demo"

    def rates(self) -> list[int]:
        """start, start x factor, ... while below max, then max itself (integers: k6's rate)."""
        out = [self.start_rps]
        while out[-1] < self.max_rps:
            nxt = max(out[-1] + 1, math.floor(out[-1] * self.factor))
            out.append(min(nxt, self.max_rps))
        return out


def judge_step(run: RunRecord, policy: VerdictPolicy) -> tuple[bool | None, str]:
    """(held, why) for one step; held None: the step is no measurement (k6 did not finish)."""
    if run.exit_code not in (0, 99) or not run.summary_present:
        return None, f"k6 exit {run.exit_code} ({run.outcome}): {run.summary_error or 'no result'}"
    planned = (run.rate or 0) * (run.duration_s or 0)
    failures = []
    if not run.ok_reqs or run.p95_ms is None:
        failures.append("no request succeeded")
    elif run.p95_ms >= policy.p95_limit_ms:
        failures.append(f"p95 {run.p95_ms:.0f} ms >= {policy.p95_limit_ms:.0f} ms")
    if run.error_rate is not None and run.error_rate >= policy.error_rate_limit:
        failures.append(f"errors {run.error_rate:.2%} >= {policy.error_rate_limit:.0%}")
    dropped = run.dropped_iterations or 0
    if planned and dropped > policy.validity.max_dropped_fraction * planned:
        failures.append(f"{dropped} of {planned:.0f} iterations dropped")
    if planned and (run.http_reqs or 0) < policy.validity.min_achieved_fraction * planned:
        failures.append(f"achieved {run.http_reqs or 0} of {planned:.0f} requests")
    if failures:
        return False, "; ".join(failures)
    return True, f"p95 {run.p95_ms:.1f} ms, errors {run.error_rate or 0:.2%}, {dropped} dropped"


@dataclass(frozen=True)
class CapacityResult:
    search: CapacitySearch
    steps: tuple[CapacityStepRow, ...]
    demo_capacity_rps: float | None = None  # the demo target's configured capacity, if any


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def run_capacity_search(
    plan: CapacityPlan,
    store: HistoryStore | None,
    *,
    log: Callable[[str], None] = print,
    search_id: str | None = None,
) -> CapacityResult:
    """Step the arrival rate up until a step fails; record the search (when `store` is given)."""
    find_k6(plan.k6_bin)
    search_id = search_id or new_run_id()
    search_dir = Path(plan.archive_root) / search_id
    steps_dir = search_dir / "steps"
    steps_dir.mkdir(parents=True, exist_ok=False)
    started = _now()
    step_s = parse_duration(plan.step)
    rows: list[CapacityStepRow] = []
    knee: float | None = None
    failed: tuple[float, str] | None = None
    invalid: list[str] = []
    k6_version = script_sha = None
    demo: DemoTarget | None = None
    if plan.target_url:
        url = plan.target_url
    else:
        demo = DemoTarget(
            workers=plan.demo_workers,
            service_ms=plan.demo_service_ms,
            latency_ms=plan.demo_latency_ms,
        ).start()
        url = demo.url
        limit = f", capacity {demo.capacity_rps:.0f} req/s" if demo.capacity_rps else ""
        log(f"capacity search against the bundled demo target at {url} (rehearsal{limit})")
    try:
        for i, rate in enumerate(plan.rates(), start=1):
            log(f"step {i}: {rate} req/s for {plan.step}")
            request = LoadTestRequest(
                url, plan.target_kind, rate=rate, duration=plan.step, auth_header=plan.auth_header
            )
            result = run_load_test(
                request,
                archive_root=steps_dir,
                log=lambda line: None,
                k6_bin=plan.k6_bin,
                run_id=f"{i:02d}-{rate}rps",
            )
            run = parse_run_dir(result.run_dir)
            k6_version, script_sha = run.k6_version, run.script_sha256
            held, why = judge_step(run, plan.policy)
            rows.append(
                CapacityStepRow(
                    i,
                    float(rate),
                    result.run_id,
                    run.exit_code,
                    run.achieved_rps,
                    run.http_reqs,
                    run.dropped_iterations,
                    run.p95_ms,
                    run.error_rate,
                    bool(held),
                    why,
                )
            )
            log(f"step {i}: {rate} req/s {'held' if held else 'FAILED'}: {why}")
            if held is None:
                invalid.append(f"step {i} ({rate} req/s) is no measurement: {why}")
                break
            if not held:
                failed = (float(rate), why)
                break
            knee = float(rate)
    finally:
        if demo is not None:
            demo.stop()
    search = CapacitySearch(
        search_id=search_id,
        started_at=started,
        finished_at=_now(),
        target_url=url if plan.target_url else "demo",
        target_kind=plan.target_kind,
        k6_version=k6_version,
        script_sha256=script_sha,
        runners=1,
        start_rps=float(plan.start_rps),
        factor=plan.factor,
        max_rps=float(plan.max_rps),
        step_s=step_s,
        knee_rps=knee,
        first_failed_rps=failed[0] if failed else None,
        failed_because=failed[1] if failed else None,
        valid=not invalid,
        invalid_reasons=tuple(invalid),
        archive_dir=str(search_dir.resolve()),
    )
    (search_dir / "capacity.json").write_text(
        json.dumps(
            {
                **{k: v for k, v in vars(search).items() if k not in ("started_at", "finished_at")},
                "started_at": search.started_at.isoformat(),
                "finished_at": search.finished_at.isoformat() if search.finished_at else None,
                "steps": [vars(r) for r in rows],
            },
            indent=2,
        )
        + "\n"
    )
    if store is not None:
        store.write(record_search, search, rows)
    return CapacityResult(search, tuple(rows), demo.capacity_rps if demo else None)


def capacity_summary(result: CapacityResult, policy: VerdictPolicy | None = None) -> str:
    """A few lines for the terminal and the asset's log."""
    policy = policy or VerdictPolicy()
    s = result.search
    need = policy.headroom_factor * policy.launch_rate_rps
    lines = [f"capacity search {s.search_id}  target {s.target_url} ({s.target_kind})"]
    for r in result.steps:
        p95 = "-" if r.p95_ms is None else f"{r.p95_ms:.1f} ms"
        lines.append(
            f"  {'ok  ' if r.held else 'FAIL'} {r.rate:>7.0f} req/s  achieved "
            f"{r.achieved_rps or 0:>7.1f}  p95 {p95:>10}  dropped {r.dropped_iterations or 0:>5}"
            f"  {r.why}"
        )
    if not s.valid:
        lines.append("  INVALID search: " + "; ".join(s.invalid_reasons))
    elif s.knee_rps is None:
        lines.append(f"  knee: none (the first step, {s.start_rps:.0f} req/s, failed)")
    else:
        bound = " (at least: the search reached its max)" if s.reached_max else ""
        lines.append(
            f"  knee: {s.knee_rps:.0f} req/s{bound}; headroom needs >= {need:.0f} req/s "
            f"({policy.headroom_factor:g}x the launch rate)"
        )
    if result.demo_capacity_rps:
        lines.append(
            f"  demo target capacity (workers x 1000 / service ms): {result.demo_capacity_rps:.0f} req/s"
        )
    if s.target_kind == "demo":
        lines.append("  rehearsal: demo target, never evidence for launch")
    return "\n".join(lines)
