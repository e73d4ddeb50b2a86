"""The one-screen summary of a run that `make run` and `loadtest run` print at the end.

Observed figures against the verdict's limits; the verdict itself adds the statistics
(Wilson bound, windows, baseline).
"""

from __future__ import annotations

from kgents_pipeline.history.ingest import IngestResult
from kgents_pipeline.verdict.evaluate import VerdictPolicy

_POLICY = VerdictPolicy()
P95_LIMIT_MS = _POLICY.p95_limit_ms
ERROR_RATE_LIMIT = _POLICY.error_rate_limit
RATE_FRACTION = _POLICY.validity.min_achieved_fraction


def _ms(value: float | None) -> str:
    return "n/a (no successful request)" if value is None else f"{value:.1f} ms"


def _mark(ok: bool | None) -> str:
    return {True: "ok  ", False: "FAIL", None: "n/a "}[ok]


def run_summary(result: IngestResult, *, db_path: str) -> str:
    r = result.record
    p95_ok = None if r.p95_ms is None else r.p95_ms < P95_LIMIT_MS
    if r.p95_ms is None and r.summary_present:
        p95_ok = False  # nothing succeeded: the SLO failed, it is not "fast"
    err_ok = None if r.error_rate is None else r.error_rate < ERROR_RATE_LIMIT
    rate_ok = (
        None if r.achieved_rps is None or not r.rate else r.achieved_rps >= RATE_FRACTION * r.rate
    )
    err = "n/a" if r.error_rate is None else f"{r.error_rate:.2%} ({r.error_count}/{r.error_total})"
    rps = "n/a" if r.achieved_rps is None else f"{r.achieved_rps:.1f} req/s"
    lines = [
        f"run {r.run_id}  target {r.target_url} ({r.target_kind})  k6 {r.k6_version}",
        f"  outcome     {r.outcome} (exit {r.exit_code})",
        f"  {_mark(p95_ok)} p95 (successful requests)  {_ms(r.p95_ms):>12}   limit < {P95_LIMIT_MS:.0f} ms",
        f"       p99 (successful requests)  {_ms(r.p99_ms):>12}",
        f"  {_mark(err_ok)} error rate                 {err:>12}   limit < {ERROR_RATE_LIMIT:.0%}",
        f"  {_mark(rate_ok)} achieved rate              {rps:>12}   planned {r.rate:.0f} req/s",
        f"       requests / dropped         {r.http_reqs} / {r.dropped_iterations}",
    ]
    for t in r.thresholds:
        lines.append(f"  {_mark(t.ok)} k6 threshold {t.metric}: {t.expression}")
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
    lines.append(f"  history  {db_path}  (SELECT * FROM baseline_trend)")
    return "\n".join(lines)
