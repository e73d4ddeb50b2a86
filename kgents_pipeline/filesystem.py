"""What a failed write tells a user: which device is full, which path could not be written.

A full disk is an environment problem a user fixes, not a bug: it is reported in one line naming
the device, its mount point and "no space left", never as an internal error.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

_NO_SPACE_TEXT = "no space left on device"


def is_no_space(exc: BaseException | str) -> bool:
    """Did this error (an OSError, or a library's message about one) come from a full disk?"""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return _NO_SPACE_TEXT in str(exc).lower() or "disk quota exceeded" in str(exc).lower()


def mount_of(path: str | os.PathLike[str]) -> tuple[str, str, str]:
    """(device, file system type, mount point) of the file system holding `path` (or its nearest
    existing parent), from /proc/self/mountinfo; ("?", "?", "/") when it cannot be read."""
    target = Path(path).absolute()
    while not target.exists() and target != target.parent:
        target = target.parent
    target = target.resolve()
    best = ("?", "?", "/")
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return best
    best_len = -1
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 2:
            continue
        point = fields[4].replace("\\040", " ")
        inside = target == Path(point) or Path(point) in target.parents
        if inside and len(point) > best_len:
            best, best_len = (rest[1], rest[0], point), len(point)
    return best


def no_space_message(path: str | os.PathLike[str]) -> str:
    """One line: no space left, on which device, writing what."""
    device, fstype, point = mount_of(path)
    try:
        free = os.statvfs(point)
        room = f", {free.f_bavail * free.f_frsize // 1024} KiB free"
    except OSError:
        room = ""
    return f"no space left on device {device} ({fstype} mounted at {point}{room}) writing {path}"


def os_error_line(exc: OSError, path: str | os.PathLike[str] | None = None) -> str:
    """An OSError as one line a user can act on (a full disk names its device)."""
    where = path if path is not None else exc.filename
    if is_no_space(exc):
        return no_space_message(where if where is not None else ".")
    what = exc.strerror or str(exc)
    return f"{where}: {what}" if where is not None else what


# A run directory is locked (flock on the directory itself) by the load test writing it, for as
# long as it runs. The kernel drops the lock when that process dies, however it dies, so a reader
# tells a run in progress from one whose writer was killed without trusting PIDs or clocks.


def lock_dir(path: str | os.PathLike[str]) -> int:
    """Hold an exclusive lock on a directory; returns the descriptor (close it to release)."""
    import fcntl

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def dir_locked(path: str | os.PathLike[str]) -> bool:
    """Is another open description holding `lock_dir` on this directory right now?"""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing drops our shared lock, if we took it
    return False
