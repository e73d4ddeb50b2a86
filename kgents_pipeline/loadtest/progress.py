"""k6's console output, quieted for a log people read: the banner goes, the per-second progress
becomes one line every 10 s of the test (and one when it ends), everything else passes through
(k6's options, warnings, errors, our own lines). The full output stays in the archive
(`k6.log`, written by the runner before this filter sees a line)."""

from __future__ import annotations

import re
from collections.abc import Callable

# "running (01m02.0s), 00/10 VUs, 620 complete and 0 interrupted iterations"
_RUNNING = re.compile(
    r"^running \((?:(?P<m>\d+)m)?(?P<s>[\d.]+)s\), (?P<vus>\S+) VUs, (?P<rest>.*)$"
)
# "health   [  42% ] 00/10 VUs  05.0s/12s  20.00 iters/s" and the last one, with ✓ or ✗
_BAR = re.compile(r"^\S+\s+(?P<mark>[✓✗]\s+)?\[\s*\d+%\s*\]")


def _is_banner(line: str) -> bool:
    """k6's logo: nothing but drawing characters around the word Grafana."""
    return not re.search(r"[A-Za-z0-9]", line.replace("Grafana", "")) and bool(line.strip())


class K6Progress:
    """A `log` callback for the k6 runner that forwards a quiet version of k6's output."""

    def __init__(self, log: Callable[[str], None], every_s: float = 10.0) -> None:
        self.log = log
        self.every_s = every_s
        self.next_at = every_s
        self.last = ""  # the newest progress line, told when the run ends
        self.dropped = 0

    def __call__(self, line: str) -> None:
        m = _RUNNING.match(line)
        if m:
            self.dropped += 1
            elapsed = int(m["m"] or 0) * 60 + float(m["s"])
            self.last = f"k6 progress at {elapsed:.0f} s: {m['rest']}, {m['vus']} VUs"
            if elapsed >= self.next_at:
                self.log(self.last)
                while self.next_at <= elapsed:
                    self.next_at += self.every_s
            return
        bar = _BAR.match(line)
        if bar:
            self.dropped += 1
            if bar["mark"] and self.last:  # the scenario finished (✓) or was cut short (✗)
                self.log(self.last.replace("k6 progress at", "k6 finished at", 1))
                self.last = ""
            return
        if _is_banner(line):
            self.dropped += 1
            return
        self.log(line)
