"""`make dev`: run `dg dev` (webserver, daemon, code servers) and stop all of it on Ctrl-C or
SIGTERM within 10 s.

`dg dev` runs in its own session (setsid), so this wrapper alone decides how it stops: on
SIGINT or SIGTERM it sends SIGTERM to every process of that session (children reparented to
init included) and to any descendant that left it, waits a few seconds for a clean shutdown,
then SIGKILLs whatever is left. Standard library only: it runs before anything is imported.

    python tools/dev.py COMMAND [ARGS...]
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

GRACE_S = 6.0  # clean shutdown time before SIGKILL; the whole stop stays under 10 s


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, session id) of a live process, None when it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[3])


def _processes() -> dict[int, tuple[int, int]]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            out[int(entry.name)] = st
    return out


def tree(root: int) -> set[int]:
    """`root`, its descendants, and every process of its session: what must stop with it."""
    procs = _processes()
    found = {pid for pid, (_, sid) in procs.items() if sid == root}
    found.add(root)
    grew = True
    while grew:
        more = {pid for pid, (ppid, _) in procs.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    return {pid for pid in found if pid in procs or pid == root}


def _signal(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def stop(proc: subprocess.Popen[bytes], grace_s: float = GRACE_S) -> None:
    """SIGTERM to the whole tree, SIGKILL to what is left after `grace_s`."""
    pids = tree(proc.pid)
    _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        proc.poll()
        pids = {p for p in pids | tree(proc.pid) if _stat(p) is not None}
        if not pids:
            break
        time.sleep(0.1)
    else:
        print(
            f"dev: {len(pids)} process(es) still running after {grace_s:g} s: SIGKILL", flush=True
        )
        _signal(pids | tree(proc.pid), signal.SIGKILL)
    proc.wait()


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    proc = subprocess.Popen(argv, start_new_session=True)
    while proc.poll() is None and not received:
        time.sleep(0.2)
    if received:
        name = signal.Signals(received[0]).name
        print(f"dev: {name} received: stopping {argv[0]} and its children", flush=True)
        stop(proc)
        return 128 + received[0]
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
