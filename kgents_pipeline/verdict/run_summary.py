"""The one-screen summary of a run that `make run` and `loadtest run` print at the end.

Its marks are the run's per-run checks (`rules.slo.run_checks`), the same results the asset
checks of `metrics_history` report; the verdict adds the baseline, the streak and the rest.
"""

from __future__ import annotations

from kgents_pipeline.history.ingest import IngestResult
from kgents_pipeline.history.windows import WINDOW_S, WindowStat
from kgents_pipeline.verdict.model import State, VerdictPolicy
from kgents_pipeline.verdict.rules.slo import RunCheck, run_checks


def _ms(value: float | None) -> str:
    return "n/a (no successful request)" if value is None else f"{value:.1f} ms"


def _mark(check: RunCheck) -> str:
    """ok: every rule of the check passed; FAIL: one failed on evidence; n/a: cannot be told
    (too few requests for the error bound, no raw points)."""
    if all(r.passed for r in check.reasons):
        return "ok  "
    if any(not r.passed and r.blocks is not State.INSUFFICIENT_DATA for r in check.reasons):
        return "FAIL"
    return "n/a "


def run_summary(
    result: IngestResult,
    windows: tuple[WindowStat, ...] | None,
    *,
    history: str,
    policy: VerdictPolicy | None = None,
) -> str:
    policy = policy or VerdictPolicy()
    r = result.record
    checks = {c.name: c for c in run_checks(r, windows, result.invalid_reasons, policy)}
    p95, err_check, rate = (
        checks["p95_below_500ms"],
        checks["error_rate_below_1pct"],
        checks["sustained_rate"],
    )
    err = "n/a" if r.error_rate is None else f"{r.error_rate:.2%} ({r.error_count}/{r.error_total})"
    rps = "n/a" if r.achieved_rps is None else f"{r.achieved_rps:.1f} req/s"
    planned = "?" if r.rate is None else f"{r.rate:.0f}"
    lines = [
        f"run {r.run_id}  target {r.target_url} ({r.target_kind})  k6 {r.k6_version}",
        f"  outcome     {r.outcome} (exit {r.exit_code})",
        *(
            [f"  runners     {r.runners} (execution segments; figures from the union of points)"]
            if r.runners
            else []
        ),
        f"  {_mark(p95)} p95 (successful requests)  {_ms(r.p95_ms):>12}   "
        f"limit < {policy.p95_limit_ms:.0f} ms",
        f"       p99 (successful requests)  {_ms(r.p99_ms):>12}",
        f"  {_mark(err_check)} error rate                 {err:>12}   "
        f"limit < {policy.error_rate_limit:.0%} ({policy.confidence:.0%} upper bound)",
        f"  {_mark(rate)} achieved rate              {rps:>12}   planned {planned} req/s"
        f" (every {WINDOW_S} s window)",
        f"       requests / dropped         {r.http_reqs} / {r.dropped_iterations}",
    ]
    for t in r.thresholds:
        lines.append(f"  {'ok  ' if t.ok else 'FAIL'} k6 threshold {t.metric}: {t.expression}")
    for check in checks.values():
        for reason in check.reasons:
            if not reason.passed:
                lines.append(f"    {reason.rule}: {reason.message}")
    if result.valid:
        lines.append("  valid run: counts as evidence")
    else:
        lines.append("  INVALID run (not evidence either way):")
        lines.extend(f"    - {reason}" for reason in result.invalid_reasons)
    if result.points_error:
        lines.append(f"  points: {result.points_error}")
    if r.target_kind == "demo":
        lines.append("  rehearsal: demo target, never evidence for launch")
    lines.append(f"  archive  {r.run_dir}")
    lines.append(f"  history  {history}  (SELECT * FROM baseline_trend)")
    return "\n".join(lines)
