"""The run archive against the history: which archived runs the history lacks, or holds in an
older form than the archive does.

The archive (`data/k6/<run_id>/`) is the source of truth: a run is archived before anything is
parsed, so a run that was never ingested (the history was locked, the load test was killed) is
still there. The verdict must not be more optimistic than the archive, so it compares them on
every read. Cheaply: the archive is listed by name only (one directory read); only the names the
history lacks are looked at further, and only the runs the verdict uses are checked for files
changed after their ingest. A writer that ingests records the listing (`archive_listings`); while
the archive directory's mtime says nothing was added, removed or renamed since, the verdict
re-checks only the names that listing lacked, instead of listing 100,000 directories again.
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
# A listing is trusted only if the directory had not changed for this long before it was taken:
# file-system timestamps are coarse, and a directory created in the same tick as the listing
# would not change the mtime it recorded.
_QUIET_NS = 2_000_000_000
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
    """The entry names of an archive: one directory read, no per-entry stat (what is not a run
    directory is told apart later, and only among the names the history lacks)."""
    return [name for name in os.listdir(root) if not name.startswith(".")]


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


def _used_rows(
    con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]
) -> list[tuple[str, str, int | None]]:
    """(run_id, run_dir, ingested_at in epoch µs) of these runs."""
    if not run_ids:
        return []
    marks = ", ".join("?" * len(run_ids))
    rows = con.execute(
        f"SELECT run_id, run_dir, epoch_us(ingested_at) FROM runs WHERE run_id IN ({marks})",
        list(run_ids),
    ).fetchall()
    return [(str(r), str(d), u) for r, d, u in rows]


def history_roots(rows: Iterable[tuple[str, str, int | None]]) -> list[str]:
    """The archives these runs were ingested from (the parents of their run directories)."""
    return sorted({str(Path(d).parent) for _, d, _ in rows if d})


def _not_in_history(con: duckdb.DuckDBPyConnection, names: Iterable[str]) -> list[str]:
    """The names that are no run id of the history, newest name first."""
    wanted = set(names)
    if not wanted:
        return []
    if len(wanted) <= 64:
        held = {
            str(r)
            for (r,) in con.execute(
                "SELECT run_id FROM runs WHERE run_id IN (SELECT unnest($n))", {"n": list(wanted)}
            ).fetchall()
        }
    else:  # one narrow column as an array beats passing 100,000 names into SQL
        held = set(con.execute("SELECT run_id FROM runs").fetchnumpy()["run_id"].tolist())
    return sorted(wanted - held, reverse=True)


@dataclass(frozen=True)
class _Listing:
    entries: int
    lacking: list[str]  # names the history lacks (at most MAX_EXAMINED)
    more_lacking: int


def _list(con: duckdb.DuckDBPyConnection, root: Path) -> _Listing:
    names = _names(root)
    lacking = _not_in_history(con, names)
    return _Listing(len(names), lacking[:MAX_EXAMINED], max(0, len(lacking) - MAX_EXAMINED))


def _recorded(con: duckdb.DuckDBPyConnection, root: Path) -> _Listing | None:
    """The listing a writer recorded, if the directory has not changed since it was taken."""
    try:
        mtime_ns = root.stat().st_mtime_ns
        row = con.execute(
            "SELECT mtime_ns, epoch_us(listed_at), entries, lacking, more_lacking"
            " FROM archive_listings WHERE root = ?",
            [str(root.resolve())],
        ).fetchone()
    except (OSError, duckdb.Error):  # no such table (an older history): list it
        return None
    if row is None or row[0] != mtime_ns or mtime_ns > row[1] * 1000 - _QUIET_NS:
        return None
    return _Listing(int(row[2]), _not_in_history(con, row[3]), int(row[4]))


def record_listing(con: duckdb.DuckDBPyConnection, root: str | os.PathLike[str]) -> None:
    """Record what the archive `root` holds against the history (a writer, after an ingest).
    Best effort: the verdict lists the archive itself when this is missing or out of date."""
    path = Path(root).resolve()
    try:
        mtime_ns = path.stat().st_mtime_ns  # before the listing: a change after it shows
        listing = _list(con, path)
        con.execute(
            "INSERT OR REPLACE INTO archive_listings VALUES (?, ?, now(), ?, ?, ?)",
            [str(path), mtime_ns, listing.entries, listing.lacking, listing.more_lacking],
        )
    except (OSError, duckdb.Error):
        return


def _stale(
    con: duckdb.DuckDBPyConnection,
    used: Sequence[tuple[str, str, int | None]],
    where: dict[str, Path],
) -> list[ArchivedRun]:
    """Runs the verdict uses (and runs ingested unfinished) whose archived files changed after
    they were ingested."""
    unfinished = con.execute(
        "SELECT run_id, run_dir, epoch_us(ingested_at) FROM runs"
        " WHERE exit_code IS NULL AND finished_at IS NULL AND archive_note IS NULL"
        " ORDER BY started_at DESC LIMIT 1000"
    ).fetchall()
    rows = {str(r): (str(d), u) for r, d, u in (*used, *unfinished)}
    out = []
    for run_id, (stored_dir, ingested_us) in sorted(rows.items()):
        run_dir = where.get(run_id) or Path(stored_dir)
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
                    run_id,
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
    used_rows = _used_rows(con, used)
    roots: dict[str, bool] = {}  # root -> the history names it (must exist)
    for root in history_roots(used_rows):
        roots[root] = True
    if configured is not None:
        roots.setdefault(str(Path(configured).resolve()), False)
    gone: list[str] = []
    unreadable: list[str] = []
    absent: list[str] = []
    entries = more = 0
    lacking: dict[str, Path] = {}
    for root, named_by_history in sorted(roots.items()):
        path = Path(root)
        if not path.exists():
            (gone if named_by_history else absent).append(root)
            continue
        try:
            listing = _recorded(con, path) or _list(con, path)
        except OSError as exc:
            unreadable.append(f"{root}: {exc.strerror or exc}")
            continue
        entries += listing.entries
        more += listing.more_lacking
        for name in listing.lacking:
            lacking.setdefault(name, path / name)
    # A what-if verdict as of a past `now` is not held to runs archived after it (by their id);
    # a verdict of the present is held to every archived run, whatever its name says.
    what_if = now < dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    missing = []
    for name in sorted(lacking, reverse=True)[:MAX_EXAMINED]:
        run_dir = lacking[name]
        started = _started(run_dir)
        if what_if and started is not None and started > now:
            continue
        if _is_run_dir(run_dir):
            missing.append(ArchivedRun(name, str(run_dir), "archived but not in the history"))
    where = {r: Path(root) / r for root in roots for r in used if (Path(root) / r).is_dir()}
    return ArchiveCheck(
        roots=tuple(sorted(roots)),
        archived=entries,
        missing=tuple(missing),
        more_missing=more,
        stale=tuple(_stale(con, used_rows, where)),
        gone=tuple(gone),
        unreadable=tuple(unreadable),
        absent=tuple(absent),
    )
