"""A load test run through k6-operator: the run archived as `loadtest.segments` archives a local
run of N runners, the TestRun applied and watched by `kube.testrun`, each runner's exit code
recorded from its pod. The archive root must be the volume the runners write to (the shared
path of team mode); `history.merge` then ingests the run from the union of their points."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kgents_pipeline.errors import LoadTestError
from kgents_pipeline.kube.access import ClusterAccess
from kgents_pipeline.kube.client import KubeClient
from kgents_pipeline.kube.testrun import TestRunOutcome, TestRunPlan, run_testrun, runner_name
from kgents_pipeline.loadtest.runner import SCRIPT_NAME, LoadTestRequest, Outcome
from kgents_pipeline.loadtest.segments import finish_run_dir, prepare_run_dir, record_runner


@dataclass(frozen=True)
class OperatorRun:
    run_id: str
    run_dir: Path
    testrun: TestRunOutcome
    exit_code: int | None
    outcome: Outcome
    message: str

    @property
    def completed(self) -> bool:
        return self.testrun.final == "finished" and self.exit_code in (0, 99)


def run_with_k6_operator(
    request: LoadTestRequest,
    runners: int,
    access: ClusterAccess,
    *,
    namespace: str,
    shared_claim: str,
    archive_root: str | os.PathLike[str],
    archive_subpath: str = "",
    timeout_s: float | None = None,
    log: Callable[[str], None] = print,
    run_id: str | None = None,
) -> OperatorRun:
    """Run `request` as a TestRun of `runners` runners in `namespace` of the cluster `access`
    names; its results land under `archive_root/<run_id>/` (the claim's `archive_subpath`)."""
    if request.auth_header:
        raise LoadTestError(
            "an Authorization header cannot go into a TestRun's plain environment: "
            "unset KGENTS_AUTH_HEADER for a k6-operator run"
        )
    run_dir, record = prepare_run_dir(
        request, runners, archive_root=archive_root, run_id=run_id, mode="k6-operator"
    )
    plan = TestRunPlan(
        run_id=record["run_id"],
        namespace=namespace,
        script_name=SCRIPT_NAME,
        script_text=(run_dir / SCRIPT_NAME).read_text(),
        parallelism=runners,
        target_url=request.target_url,
        rate=request.rate,
        duration=request.duration,
        shared_claim=shared_claim,
        archive_subpath=archive_subpath,
    )
    limit = timeout_s or request.duration_s + 120.0
    log(f"TestRun {namespace}/{plan.name}: {runners} runners via k6-operator; run {plan.run_id}")
    with KubeClient(access) as client:
        outcome = run_testrun(
            client, plan, timeout_s=limit, on_stage=lambda s: log(f"TestRun stage: {s}")
        )
    for name, code in outcome.runner_exit_codes.items():
        started, finished = outcome.runner_times.get(name, (None, None))
        record_runner(run_dir, name, code, record, started_at=started, finished_at=finished)
    exit_code, result, message = finish_run_dir(run_dir, record, outcome.runner_exit_codes)
    if outcome.timed_out:
        message = f"TestRun did not finish within {limit:.0f} s (stages: {list(outcome.stages)})"
        result = Outcome.TIMED_OUT
    elif outcome.final == "error":
        message = f"TestRun ended in stage error; {message}"
    missing = [
        runner_name(plan, i)
        for i in range(1, runners + 1)
        if runner_name(plan, i) not in outcome.runner_exit_codes
    ]
    if missing and not outcome.timed_out:
        message += f"; no exit status from {', '.join(missing)}"
    log(f"run {plan.run_id}: {message}; deleted {', '.join(outcome.deleted) or 'nothing'}")
    return OperatorRun(plan.run_id, run_dir, outcome, exit_code, result, message)
