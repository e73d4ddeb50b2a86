"""The message sent when the verdict's state changes: Slack's incoming-webhook JSON (`text` for
clients that show only that, `blocks` for the rest), built from plain values so that neither
the verdict nor Dagster is imported here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_ICON = {
    "READY": ":large_green_circle:",
    "NOT_READY": ":red_circle:",
    "INVALID_RUN": ":red_circle:",
    "INSUFFICIENT_DATA": ":large_yellow_circle:",
}


@dataclass(frozen=True)
class StateChange:
    """A verdict whose state differs from the last one told."""

    state: str
    previous_state: str | None  # None: nothing was told before
    rehearsal: bool
    blocking: tuple[str, ...]  # one line per blocking rule: "rule (STATE): observed; needs limit"
    run_id: str  # the Dagster run that evaluated the verdict
    run_url: str
    verdict_id: int | None = None
    evaluated_at: str = ""


def summary(change: StateChange) -> str:
    """One line: the new state, the old one, the run."""
    was = f" (was {change.previous_state})" if change.previous_state else ""
    rehearsal = " (rehearsal)" if change.rehearsal else ""
    return f"kgents launch readiness: {change.state}{rehearsal}{was}; run {change.run_id}"


def slack_payload(change: StateChange, *, max_lines: int = 10) -> dict[str, Any]:
    """The Slack-compatible JSON body: state, blocking reasons, run id, a link to the run."""
    lines = list(change.blocking[:max_lines])
    if len(change.blocking) > max_lines:
        lines.append(f"... and {len(change.blocking) - max_lines} more")
    reasons = "\n".join(f"- {line}" for line in lines) if lines else "Every rule passes."
    text = f"{summary(change)}\n{reasons}\n{change.run_url}"
    icon = _ICON.get(change.state, ":white_circle:")
    return {
        "text": text,
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"{icon} *Launch readiness: {change.state}*"
                    + (" (rehearsal)" if change.rehearsal else "")
                    + (f", was {change.previous_state}" if change.previous_state else ""),
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": ("*Blocking:*\n" + reasons) if lines else reasons,
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"Dagster run <{change.run_url}|{change.run_id}>"
                        + (f" · verdict #{change.verdict_id}" if change.verdict_id else "")
                        + (f" · evaluated {change.evaluated_at}" if change.evaluated_at else ""),
                    }
                ],
            },
        ],
    }
