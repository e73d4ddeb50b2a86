"""The verdict through every state with real k6 runs against the bundled demo target.

Runs against the demo target are rehearsals and can never be READY (its answers say
`"demo": true`, and k6 counts them). READY is reached honestly by the same real k6 against a
stand-in service (the demo server without that marker, as a remote service with the demo's
behaviour would be), plus a live policy verification row (no cluster can run here) and a
checklist with the security review signed off.
"""

from __future__ import annotations

import datetime as dt
import shutil
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kgents_pipeline.history.ingest import ingest_run_dirs
from kgents_pipeline.history.store import open_history
from kgents_pipeline.loadtest.runner import LoadTestRequest, RunResult, run_load_test
from kgents_pipeline.loadtest.target import DemoTarget, _Handler
from kgents_pipeline.verdict import State
from kgents_pipeline.verdict.usecase import evaluate_history
from tests.verdict.synth import capacity_search, verification

pytestmark = pytest.mark.k6


def _run(archive: Path, url: str, kind: str = "demo", **kw) -> RunResult:
    return run_load_test(LoadTestRequest(url, kind, **kw), archive_root=archive, log=lambda _: None)


def _demo(archive: Path, latency_ms: float = 0.0, error_rate: float = 0.0, **kw) -> RunResult:
    with DemoTarget(latency_ms=latency_ms, error_rate=error_rate) as demo:
        return _run(archive, demo.url, **kw)


class _ServiceHandler(_Handler):
    def _send(self, code: int, body: dict) -> None:
        super()._send(code, {k: v for k, v in body.items() if k != "demo"})


class _StandInService(DemoTarget):
    """The demo server's behaviour without its `"demo": true` marker: a stand-in for a real
    remote service (a run against the marked demo target is a rehearsal whatever its URL)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._server.RequestHandlerClass = _ServiceHandler


def _remote_series(archive: Path, n: int) -> list[RunResult]:
    # One server for the series: the same target URL, so the same fingerprint (a baseline).
    # 4 s at 100 req/s: 400 requests, the fewest whose 0-error Wilson bound is below 1 %.
    with _StandInService() as demo:
        return [_run(archive, demo.url, "remote", rate=100, duration="4s") for _ in range(n)]


def _refused(archive: Path) -> RunResult:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return _run(archive, f"http://127.0.0.1:{port}", rate=50, duration="2s")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """All real runs of this module, run concurrently once (each has its own demo server)."""
    archive = tmp_path_factory.mktemp("k6")
    jobs = {
        "healthy": lambda: _demo(archive, rate=100, duration="2s"),
        # Slow but within the VUs k6 pre-allocates (10 req/s x 0.6 s): every request is sent.
        "slow": lambda: _demo(archive, latency_ms=600, rate=10, duration="2s"),
        # Slow beyond them: k6 cannot deliver the planned load, the run measures nothing.
        "overloaded": lambda: _demo(archive, latency_ms=600, rate=50, duration="2s"),
        "failing": lambda: _demo(archive, error_rate=0.3, rate=50, duration="2s"),
        "refused": lambda: _refused(archive),
        # Stopped by the runner's timeout long before its 20 s: SIGTERM, partial summary.
        "killed": lambda: _demo(archive, rate=50, duration="20s", timeout_s=2.0),
        "remote": lambda: _remote_series(archive, 3),
    }
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(fn) for name, fn in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


def _judge(
    tmp_path: Path,
    results: list[RunResult],
    checklist: Path,
    *,
    live: bool = True,
    knee: float | None = 250.0,
):
    db = tmp_path / "metrics.duckdb"
    # Each history gets an archive of exactly its runs: the module's shared archive holds runs
    # this history does not, which the `archive` rule would (rightly) hold against it.
    archive = tmp_path / "k6"
    for r in results:
        shutil.copytree(r.run_dir, archive / r.run_id)
    records = ingest_run_dirs(open_history(db), [archive / r.run_id for r in results])
    if live:
        verification(db, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    if knee is not None:  # a capacity search of the same target (tests/verdict/test_capacity.py)
        first = records[0].record
        capacity_search(
            db,
            dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
            knee_rps=knee,
            target_kind=first.target_kind,
            target_url=first.target_url,
        )
    verdict, _ = evaluate_history(open_history(db), checklist=str(checklist))
    return verdict, db


def _failing(v) -> set[str]:
    return {r.rule for r in v.reasons if r.blocking}


def test_healthy_demo_run_is_a_rehearsal_never_ready(runs, tmp_path, checklist):
    v, _ = _judge(tmp_path, [runs["healthy"]], checklist)
    assert v.state is State.INSUFFICIENT_DATA and v.rehearsal
    assert {"rehearsal", "quantity", "regression.p95"} <= _failing(v)
    assert (
        v.reason("slo.p95").passed and v.reason("slo.rate").passed and v.reason("sustained").passed
    )
    assert "rehearsal" in v.to_json() and v.to_json()["rehearsal"] is True


def test_slow_target_fails_the_p95_slo(runs, tmp_path, checklist):
    assert runs["slow"].exit_code == 99  # k6's own threshold agrees
    v, _ = _judge(tmp_path, [runs["slow"]], checklist)
    assert v.state is State.NOT_READY
    r = v.reason("slo.p95")
    assert not r.passed and r.observed >= 500 and r.blocks is State.NOT_READY
    assert not v.reason("rehearsal").passed


def test_run_that_could_not_deliver_the_load_is_invalid(runs, tmp_path, checklist):
    v, _ = _judge(tmp_path, [runs["overloaded"]], checklist)
    assert v.state is State.INVALID_RUN
    r = v.reason("validity")
    assert not r.passed and "planned requests" in r.message


def test_failing_target_fails_the_error_rate_slo(runs, tmp_path, checklist):
    v, _ = _judge(tmp_path, [runs["failing"]], checklist)
    assert v.state is State.NOT_READY
    r = v.reason("slo.error_rate")
    assert not r.passed and r.blocks is State.NOT_READY and r.observed["rate"] > 0.1


def test_refused_connections_are_no_success_not_zero_ms(runs, tmp_path, checklist):
    v, _ = _judge(tmp_path, [runs["refused"]], checklist)
    assert v.state is State.NOT_READY
    r = v.reason("slo.p95")
    assert not r.passed and "no request succeeded" in r.message
    assert r.observed["ok_reqs"] == 0
    assert not v.reason("slo.error_rate").passed


def test_killed_run_is_invalid_run(runs, tmp_path, checklist):
    killed = runs["killed"]
    assert killed.exit_code not in (0, 99)
    v, _ = _judge(tmp_path, [killed], checklist)
    assert v.state is State.INVALID_RUN
    r = v.reason("validity")
    assert r.run_ids == (killed.run_id,) and f"exit code {killed.exit_code}" in r.message


def test_three_remote_runs_with_live_evidence_are_ready(runs, tmp_path, checklist):
    v, _ = _judge(tmp_path, runs["remote"], checklist)
    assert v.state is State.READY, [(r.rule, r.message) for r in v.reasons if not r.passed]
    assert not v.rehearsal and all(r.passed for r in v.reasons)
    assert v.reason("quantity").observed == 3
    # Loopback jitter between the runs is far below the 5 ms floor.
    assert not v.reason("regression.p95").observed[0]["regression"]
    # Without the live verification the same runs are not enough.
    v2, _ = _judge(tmp_path / "offline", runs["remote"], checklist, live=False)
    assert v2.state is State.INSUFFICIENT_DATA and {"policy", "pdb", "checklist"} == _failing(v2)
