"""One load test as a user asks for it: against a remote target, or the bundled demo target
started for the run on 127.0.0.1 when no target is given."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kgents_pipeline import settings
from kgents_pipeline.loadtest.runner import (
    DEFAULT_ARCHIVE,
    LoadTestRequest,
    RunResult,
    find_k6,
    parse_duration,
    run_load_test,
)
from kgents_pipeline.loadtest.segments import SegmentedRun, check_runners, run_segments
from kgents_pipeline.loadtest.target import DemoTarget


@dataclass(frozen=True)
class LoadTestPlan:
    target_url: str | None = None  # None/"" = the bundled demo target (rehearsal)
    rate: int = settings.LAUNCH_RATE_RPS
    duration: str = settings.DURATION.default
    auth_header: str | None = field(default=None, repr=False)
    timeout_s: float | None = None
    demo_latency_ms: float = 0.0
    demo_error_rate: float = 0.0
    archive_root: str | os.PathLike[str] = DEFAULT_ARCHIVE
    k6_bin: str | None = None
    runners: int = 1  # > 1: N k6 processes, one execution segment each

    @property
    def target_kind(self) -> str:
        return "remote" if self.target_url else "demo"


def run_plan(plan: LoadTestPlan, *, log: Callable[[str], None] = print) -> RunResult | SegmentedRun:
    # Bad settings and a missing k6 fail before anything starts, demo target included.
    find_k6(plan.k6_bin)
    parse_duration(plan.duration)
    check_runners(plan.runners)

    def go(url: str) -> RunResult | SegmentedRun:
        request = LoadTestRequest(
            target_url=url,
            target_kind=plan.target_kind,
            rate=plan.rate,
            duration=plan.duration,
            auth_header=plan.auth_header,
            timeout_s=plan.timeout_s,
        )
        if plan.runners > 1:
            return run_segments(
                request,
                plan.runners,
                archive_root=Path(plan.archive_root),
                log=log,
                k6_bin=plan.k6_bin,
            )
        return run_load_test(
            request, archive_root=Path(plan.archive_root), log=log, k6_bin=plan.k6_bin
        )

    if plan.target_url:
        return go(plan.target_url)
    with DemoTarget(latency_ms=plan.demo_latency_ms, error_rate=plan.demo_error_rate) as demo:
        log(f"no KGENTS_TARGET_URL: load-testing the bundled demo target at {demo.url} (rehearsal)")
        return go(demo.url)
