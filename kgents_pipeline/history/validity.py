"""Run validity (verdict rule 1): is this run evidence at all?

An invalid run is never evidence either way: not a pass, not a failure, not a baseline.
Evaluated at ingest (stored in `runs.valid`) and again by the verdict with its own limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

VALID_EXIT_CODES = (0, 99)  # finished; 99 = thresholds crossed, which is still a measurement


@dataclass(frozen=True)
class ValidityLimits:
    min_achieved_fraction: float = 0.95  # achieved requests / planned requests
    max_dropped_fraction: float = 0.01  # dropped iterations / planned iterations
    min_duration_fraction: float = 0.98  # measured duration / planned duration


class RunLike(Protocol):
    @property
    def exit_code(self) -> int | None: ...
    @property
    def outcome(self) -> str: ...
    @property
    def summary_present(self) -> bool: ...
    @property
    def summary_error(self) -> str | None: ...
    @property
    def http_reqs(self) -> int | None: ...
    @property
    def iterations(self) -> int | None: ...
    @property
    def dropped_iterations(self) -> int | None: ...
    @property
    def rate(self) -> float | None: ...
    @property
    def duration_s(self) -> float | None: ...
    @property
    def test_run_duration_s(self) -> float | None: ...
    @property
    def archive_note(self) -> str | None: ...
    @property
    def runner_problems(self) -> str | None: ...


def run_validity(run: RunLike, limits: ValidityLimits = ValidityLimits()) -> tuple[str, ...]:
    """Why the run is not evidence; empty when it is valid."""
    reasons: list[str] = []
    if run.archive_note:  # the load test was killed, or could not write its directory whole
        reasons.append(run.archive_note)
    if run.exit_code not in VALID_EXIT_CODES and not (run.archive_note and run.exit_code is None):
        reasons.append(f"k6 exit code {run.exit_code} ({run.outcome}): the run did not finish")
    if run.runner_problems:  # a run of N runners: one runner's share not evidence spoils it all
        reasons.append(run.runner_problems)
    if not run.summary_present:
        reasons.append(run.summary_error or "no k6 summary")
        return tuple(reasons)
    if not run.http_reqs or not run.iterations:
        reasons.append("k6 counted no requests (count = 0)")
        return tuple(reasons)
    if not run.rate or not run.duration_s:
        reasons.append("planned rate/duration unknown: cannot tell whether the run was complete")
        return tuple(reasons)
    planned = run.rate * run.duration_s
    if run.http_reqs < limits.min_achieved_fraction * planned:
        reasons.append(
            f"achieved {run.http_reqs} of {planned:.0f} planned requests "
            f"(< {limits.min_achieved_fraction:.0%})"
        )
    dropped = run.dropped_iterations or 0
    if dropped > limits.max_dropped_fraction * planned:
        reasons.append(
            f"{dropped} dropped iterations (> {limits.max_dropped_fraction:.0%} of {planned:.0f})"
        )
    measured = run.test_run_duration_s
    if measured is None or measured < limits.min_duration_fraction * run.duration_s:
        shown = "unknown" if measured is None else f"{measured:.1f} s"
        reasons.append(
            f"ran {shown} of {run.duration_s:.0f} s planned (< {limits.min_duration_fraction:.0%})"
        )
    return tuple(reasons)
