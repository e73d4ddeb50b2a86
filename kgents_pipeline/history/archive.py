"""The run archive against the history: which archived runs the history lacks, or holds in an
older form than the archive does.

The archive (`data/k6/<run_id>/`) is the source of truth: a run is archived before anything is
parsed, so a run that was never ingested (the history was locked, the load test was killed) is
still there. The verdict must not be more optimistic than the archive, so it compares them on
every read. Cheaply: the archive is listed by name only (one directory read); only the names the
history lacks are looked at further, and only the runs the verdict uses are checked for files
changed after their ingest.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from kgents_pipeline.history.run_record import INCOMPLETE_MARKER
from kgents_pipeline.history.timestamps import from_epoch_us

MAX_EXAMINED = 1_000  # names the history lacks that are looked at one by one
_RUN_ID_TIME = re.compile(r"^(\d{8}T\d{6}Z)-")
_ARCHIVED_FILES = ("run.json", "summary.json", INCOMPLETE_MARKER)


@dataclass(frozen=True)
class ArchivedRun:
    run_id: str
    run_dir: str
    problem: str  # why the verdict cannot use what the history holds of it


@dataclass(frozen=True)
class ArchiveCheck:
    """What the verdict's `archive` rule judges. Every field is plain data (hashable, printable):
    it enters the verdict's inputs hash."""

    roots: tuple[str, ...]  # archive directories examined
    archived: int  # run directories found in them
    missing: tuple[ArchivedRun, ...]  # archived, not in the history (the first MAX_EXAMINED)
    more_missing: int  # further names the history lacks, not looked at one by one
    stale: tuple[ArchivedRun, ...]  # in the history, but changed in the archive since
    gone: tuple[str, ...]  # archives the history's runs came from that are no longer there
    unreadable: tuple[str, ...]  # archives that could not be listed, and why
    absent: tuple[str, ...] = ()  # configured archives that do not exist (nothing archived yet)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.more_missing or self.stale or self.gone or self.unreadable)


def _names(root: Path) -> list[str]:
    """The subdirectory names of an archive: one directory read, no per-entry stat."""
    with os.scandir(root) as entries:
        return [e.name for e in entries if not e.name.startswith(".") and e.is_dir()]


def _is_run_dir(path: Path) -> bool:
    return any((path / name).exists() for name in ("run.json", INCOMPLETE_MARKER))


def _started(run_dir: Path) -> dt.datetime | None:
    """When a run started, from its id when the load test named it (no file read)."""
    m = _RUN_ID_TIME.match(run_dir.name)
    if not m:
        return None
    try:
        return dt.datetime.strptime(m[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def history_roots(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> list[str]:
    """The archives these runs were ingested from (the parents of their run directories)."""
    if not run_ids:
        return []
    rows = con.execute(
        "SELECT DISTINCT run_dir FROM runs WHERE run_id IN (SELECT unnest($ids)) AND run_dir <> ''",
        {"ids": list(run_ids)},
    ).fetchall()
    return sorted({str(Path(str(d)).parent) for (d,) in rows})


def _not_in_history(con: duckdb.DuckDBPyConnection, names: Iterable[str]) -> list[str]:
    wanted = sorted(set(names))
    if not wanted:
        return []
    rows = con.execute(
        "SELECT name FROM (SELECT unnest($names) AS name)"
        " WHERE name NOT IN (SELECT run_id FROM runs) ORDER BY name DESC",
        {"names": wanted},
    ).fetchall()
    return [str(r[0]) for r in rows]


def _stale(
    con: duckdb.DuckDBPyConnection, run_ids: Sequence[str], where: dict[str, Path]
) -> list[ArchivedRun]:
    """Runs the verdict uses (and runs ingested unfinished) whose archived files changed after
    they were ingested."""
    rows = con.execute(
        "SELECT run_id, run_dir, epoch_us(ingested_at) FROM runs"
        " WHERE run_id IN (SELECT unnest($ids))"
        " OR (exit_code IS NULL AND finished_at IS NULL AND archive_note IS NULL)"
        " ORDER BY started_at DESC LIMIT 1000",
        {"ids": list(run_ids)},
    ).fetchall()
    out = []
    for run_id, stored_dir, ingested_us in rows:
        run_dir = where.get(run_id) or Path(str(stored_dir))
        newest = 0
        for name in _ARCHIVED_FILES:
            try:
                newest = max(newest, (run_dir / name).stat().st_mtime_ns // 1000)
            except OSError:
                continue
        if ingested_us is not None and newest > ingested_us:
            changed = from_epoch_us(newest)
            ingested = from_epoch_us(ingested_us)
            assert changed is not None and ingested is not None
            out.append(
                ArchivedRun(
                    str(run_id),
                    str(run_dir),
                    f"changed in the archive at {changed:%Y-%m-%d %H:%M:%S}Z, after it was "
                    f"ingested at {ingested:%Y-%m-%d %H:%M:%S}Z",
                )
            )
    return out


def check_archive(
    con: duckdb.DuckDBPyConnection,
    *,
    configured: str | os.PathLike[str] | None,
    used: Sequence[str],
    now: dt.datetime,
) -> ArchiveCheck:
    """Compare the archive with the history as of `now`.

    The archives examined are `configured` (the `--archive` / `KGENTS_ARCHIVE_DIR` the pipeline
    writes to; one that does not exist yet holds nothing) and the archives the runs the verdict
    `used` were ingested from (one of those that is gone blocks). A run archived after a past
    `now` (by its id) is not held against a what-if verdict as of `now`."""
    roots: dict[str, bool] = {}  # root -> the history names it (must exist)
    for root in history_roots(con, used):
        roots[root] = True
    if configured is not None:
        roots.setdefault(str(Path(configured).absolute()), False)
    names: dict[str, Path] = {}
    gone: list[str] = []
    unreadable: list[str] = []
    absent: list[str] = []
    for root, named_by_history in sorted(roots.items()):
        path = Path(root)
        if not path.exists():
            (gone if named_by_history else absent).append(root)
            continue
        try:
            for name in _names(path):
                names.setdefault(name, path / name)
        except OSError as exc:
            unreadable.append(f"{root}: {exc.strerror or exc}")
    lacking = _not_in_history(con, names)
    # A what-if verdict as of a past `now` is not held to runs archived after it (by their id);
    # a verdict of the present is held to every archived run, whatever its name says.
    what_if = now < dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    missing = []
    for name in lacking[:MAX_EXAMINED]:
        run_dir = names[name]
        started = _started(run_dir)
        if what_if and started is not None and started > now:
            continue
        if _is_run_dir(run_dir):
            missing.append(ArchivedRun(name, str(run_dir), "archived but not in the history"))
    return ArchiveCheck(
        roots=tuple(sorted(roots)),
        archived=len(names),
        missing=tuple(missing),
        more_missing=max(0, len(lacking) - MAX_EXAMINED),
        stale=tuple(_stale(con, used, names)),
        gone=tuple(gone),
        unreadable=tuple(unreadable),
        absent=tuple(absent),
    )
