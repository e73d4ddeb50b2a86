"""DuckDB connections and versioned migrations.

DuckDB allows one writer process per file, so connections are short: open, do one unit of work,
close. A file locked by another process is retried for a few seconds (a Dagster step finishing
its write), then reported with the holder's PID and command line, never as a hang.

Every connection checks what it opened before anything else happens:
- ownership: only a kgents history (its `schema_migrations` are ours) or a new, empty file is
  ever migrated or written; any other DuckDB file is refused and left byte-identical, and so is
  a file a reader is pointed at that holds no history at all;
- integrity: every block the tables use is read once (DuckDB checks each block's checksum as it
  reads it), so a corrupt history is refused on open, not trusted until a query happens to touch
  the damaged block. The check is skipped while the file is exactly as the last kgents writer
  left it (size, mtime and inode, kept in an extended attribute that does not touch its bytes).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import duckdb

from kgents_pipeline import settings
from kgents_pipeline.errors import HistoryError
from kgents_pipeline.filesystem import is_no_space, no_space_message

DEFAULT_DB = Path(settings.DB_PATH.default)
_LOCK_RE = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")
_VERIFIED_XATTR = "user.kgents.verified"
_REBUILD_HINT = (
    "`kgents-pipeline history rebuild` moves it aside and re-creates it from the archive"
)


class HistoryLocked(HistoryError):
    """Another process holds the history's DuckDB lock."""


class NotAHistory(HistoryError):
    """The file is not a kgents history (another application's DuckDB file, or an empty one)."""


class CorruptHistory(HistoryError):
    """The file cannot be opened as DuckDB, or one of its blocks fails its checksum."""


class StorageFull(HistoryError):
    """A write failed because the file system is full."""


def _holder(message: str) -> str:
    """Describe the process holding the DuckDB lock: PID and, when readable, its command line."""
    m = _LOCK_RE.search(message)
    if not m:
        return "another process"
    pid = m["pid"]
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        cmd = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    except OSError:
        cmd = m["exe"]
    return f"PID {pid} ({cmd[:200]})"


def first_line(exc: BaseException | str) -> str:
    """A DuckDB (or any) error message's first line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_FILE_RE = re.compile(r'file "(?P<path>[^"]+)"')


def storage_error(path: str | Path, exc: BaseException, doing: str) -> HistoryError:
    """A DuckDB or OS error while reading or writing the history, as one line: a full disk names
    its device (and the file DuckDB could not write), a checksum failure says how to recover."""
    if is_no_space(exc):
        m = _FILE_RE.search(str(exc))
        return StorageFull(f"{doing}: {no_space_message(m['path'] if m else path)}")
    text = first_line(exc)
    if "corrupt" in text.lower() or "checksum" in text.lower():
        return CorruptHistory(f"{path} is corrupt ({text}): {_REBUILD_HINT}")
    return HistoryError(f"{doing} {path}: {text}")


@functools.cache
def migrations() -> tuple[tuple[int, str, str], ...]:
    """The bundled migrations as (version, name, sql), in version order (read once)."""
    found = []
    for entry in resources.files("kgents_pipeline.history").joinpath("migrations").iterdir():
        m = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if m:
            found.append((int(m[1]), m[2], entry.read_text()))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise HistoryError(f"duplicate migration versions: {versions}")
    return tuple(found)


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Tables and views of the opened database's main schema: name -> type."""
    rows = con.execute(
        "SELECT table_name, 'BASE TABLE' FROM duckdb_tables()"
        " WHERE database_name = current_database() AND schema_name = 'main'"
        " UNION ALL SELECT view_name, 'VIEW' FROM duckdb_views()"
        " WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal"
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    """The migration versions recorded in the file (empty for a new file)."""
    if "schema_migrations" not in _tables(con):
        return set()
    return {int(v) for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    return max(applied_versions(con), default=0)


def pending(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str, str]]:
    """The bundled migrations the file has not applied, in version order; a gap counts too (a
    migration merged after a newer one was applied still runs)."""
    done = applied_versions(con)
    return [m for m in migrations() if m[0] not in done]


def ownership(con: duckdb.DuckDBPyConnection, path: str | Path) -> int | None:
    """The schema version of a kgents history; None for a file holding nothing at all (new).

    Raises `NotAHistory` for anything else: tables without our `schema_migrations`, migrations
    that are not ours, or a schema newer than this code knows."""
    tables = _tables(con)
    if not tables:
        return None
    if "schema_migrations" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise NotAHistory(
            f"{path} is not a kgents history (it holds {shown} and no kgents "
            "schema_migrations): refused, the file is left untouched"
        )
    try:
        rows = con.execute(
            "SELECT version, name FROM schema_migrations ORDER BY version"
        ).fetchall()
    except duckdb.BinderException:  # a schema_migrations table, but not ours
        rows = [(None, None)]
    except duckdb.Error as exc:
        raise CorruptHistory(f"cannot read {path}: {first_line(exc)}: {_REBUILD_HINT}") from None
    if not rows and set(tables) == {"schema_migrations"}:
        return None  # an empty history whose first migration never completed
    ours = {v: n for v, n, _ in migrations()}
    foreign = [(v, n) for v, n in rows if v is None or ours.get(v) != n]
    if foreign:
        newest = max((v for v, _ in rows if isinstance(v, int)), default=0)
        if newest > max(ours) and all(ours.get(v) == n for v, n in rows if v in ours):
            raise NotAHistory(
                f"{path} was written by a newer kgents-pipeline (schema {newest}, this one knows "
                f"{max(ours)}): upgrade before using it"
            )
        raise NotAHistory(
            f"{path} is not a kgents history (its schema_migrations are not kgents-pipeline's): "
            "refused, the file is left untouched"
        )
    return max((int(v) for v, _ in rows), default=0)


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every migration the file has not applied, in version order, each in its own
    transaction (the first one creates `schema_migrations` with it: a failed first migration
    leaves nothing)."""
    applied = []
    for version, name, sql in pending(con):
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name]
            )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            rollback(con)
            if is_no_space(exc):
                raise storage_error("the history", exc, f"migration {version:04d} failed") from None
            raise HistoryError(f"migration {version:04d}_{name} failed: {first_line(exc)}") from exc
        applied.append(version)
    return applied


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, if DuckDB has not already aborted it (a failed COMMIT
    leaves no transaction to roll back)."""
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


# ---------------------------------------------------------------------------------------------
# Integrity


def _identity(path: Path) -> str | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def wal_path(path: str | Path) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".wal")


def _known_good(path: Path) -> bool:
    """The file is exactly as the last kgents writer left it, with no WAL to replay."""
    with contextlib.suppress(OSError):
        if wal_path(path).stat().st_size:
            return False
    try:
        mark = os.getxattr(path, _VERIFIED_XATTR).decode()
    except (OSError, UnicodeDecodeError):
        return False
    return mark == _identity(path)


def mark_verified(path: str | Path) -> None:
    """After a kgents writer closed the file cleanly: remember its identity (best effort; the
    mark is metadata only, never the file's bytes)."""
    p = Path(path)
    identity = _identity(p)
    wal = wal_path(p)
    if identity is None or (wal.exists() and wal.stat().st_size):
        return
    with contextlib.suppress(OSError):
        os.setxattr(p, _VERIFIED_XATTR, identity.encode())


def verify_blocks(con: duckdb.DuckDBPyConnection) -> None:
    """Read every column of every table once: DuckDB verifies each block's checksum as it loads
    it, so a damaged block raises here."""
    for name, kind in sorted(_tables(con).items()):
        if kind != "BASE TABLE":
            continue
        columns = [
            str(c)
            for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_catalog = current_database() AND table_schema = 'main'"
                " AND table_name = ? ORDER BY ordinal_position",
                [name],
            ).fetchall()
        ]
        hashes = ", ".join(f'sum(hash("{c}"))' for c in columns)
        con.execute(f'SELECT count(*){", " + hashes if hashes else ""} FROM "{name}"').fetchall()


def check_integrity(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a history with a damaged block (`CorruptHistory`), unless known good."""
    if _known_good(path):
        return
    try:
        verify_blocks(con)
    except duckdb.Error as exc:
        raise CorruptHistory(f"{path} is corrupt ({first_line(exc)}): {_REBUILD_HINT}") from None


# ---------------------------------------------------------------------------------------------
# A failed write leaves the file no larger than before

_HEADERS = 3 * 4096  # DuckDB's main header and its two database headers


def _file_state(path: Path) -> tuple[int, bytes, int | None] | None:
    """(size, headers, WAL size or None) of an existing history, before a writer starts."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            headers = fh.read(_HEADERS)
    except OSError:
        return None
    try:
        wal: int | None = wal_path(path).stat().st_size or None  # an empty WAL holds nothing
    except OSError:
        wal = None
    return size, headers, wal


def _shrink_back(path: Path, before: tuple[int, bytes, int | None] | None) -> None:
    """After a writer failed: if nothing was committed (the headers and the WAL are as they
    were), the blocks past the old end are the failed transaction's and DuckDB never frees them
    to the file system: cut them off, so a full disk does not stay full."""
    if before is None:
        return
    size, headers, wal = before
    empty_wal = wal_path(path)
    if wal is None and empty_wal.exists() and empty_wal.stat().st_size == 0:
        empty_wal.unlink(missing_ok=True)  # DuckDB cut the failed commit out of it
    after = _file_state(path)
    if after is None or after[0] <= size or after[1] != headers or after[2] != wal:
        return
    import fcntl

    try:
        with open(path, "r+b") as fh:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody opened it in between
            if fh.read(_HEADERS) == headers:
                fh.truncate(size)
    except OSError:
        pass


def _environmental(exc: duckdb.Error) -> bool:
    """A DuckDB error about the disk or the file (full, unreadable, corrupt), not about SQL."""
    text = str(exc).lower()
    return (
        is_no_space(exc)
        or isinstance(exc, duckdb.IOException)
        or "corrupt" in text
        or "checksum" in text
        or "could not write" in text
    )


# ---------------------------------------------------------------------------------------------
# Connections


def _open(
    path: Path,
    *,
    read_only: bool,
    lock_wait_s: float,
    attach: duckdb.DuckDBPyConnection | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open `path` (or, with `attach`, ATTACH it read-only as `src` to that connection),
    retrying while another process holds the lock."""
    deadline = time.monotonic() + lock_wait_s
    delay = 0.05
    while True:
        try:
            if attach is not None:
                attach.execute("ATTACH ? AS src (READ_ONLY)", [str(path)])
                return attach
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" not in text.lower():
                if is_no_space(text):
                    raise HistoryError(f"cannot open {path}: {no_space_message(path)}") from None
                raise CorruptHistory(
                    f"cannot open {path}: {first_line(text)}: {_REBUILD_HINT}"
                ) from None
            if time.monotonic() >= deadline:
                raise HistoryLocked(
                    f"{path} is locked by {_holder(text)}; DuckDB allows one writer process "
                    "per file: wait for it to finish or stop it"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        except duckdb.Error as exc:
            raise CorruptHistory(
                f"cannot open {path}: {first_line(exc)}: {_REBUILD_HINT}"
            ) from None


def _checked(con: duckdb.DuckDBPyConnection, path: Path, *, read_only: bool) -> int | None:
    """Ownership and integrity of what `con` opened; its schema version (None: empty file)."""
    try:
        con.execute("SET TimeZone = 'UTC'")
        version = ownership(con, path)
    except duckdb.Error as exc:
        raise CorruptHistory(f"cannot read {path}: {first_line(exc)}: {_REBUILD_HINT}") from None
    if version is None:
        if read_only:
            raise NotAHistory(
                f"{path} holds no kgents history (an empty DuckDB file): run the load test or "
                "`history rebuild`"
            )
        return None
    check_integrity(con, path)
    return version


@contextlib.contextmanager
def connect(
    db_path: str | Path = DEFAULT_DB,
    *,
    read_only: bool = False,
    create: bool = True,
    lock_wait_s: float = 5.0,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection to the history, migrated to the current schema.

    Read-only connections, and writable ones with `create=False` (operator controls on runs
    that must already exist), raise `HistoryError` for a file that does not exist; otherwise
    the file and its parent directory are created. Only a new file or a kgents history is ever
    written (`NotAHistory` otherwise); a damaged one is `CorruptHistory`.
    """
    path = Path(db_path)
    if path.is_dir():
        raise HistoryError(f"{path} is a directory, not a history file")
    if (read_only or not create) and not path.exists():
        raise HistoryError(f"no metrics history at {path}: run the load test or `history rebuild`")
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(path.parent, exc, "cannot create the history's directory") from None
    before = None if read_only else _file_state(path)
    con = _open(path, read_only=read_only, lock_wait_s=lock_wait_s)
    try:
        version = _checked(con, path, read_only=read_only)
        behind = version is None or bool(pending(con))
        if read_only and version is not None and behind:
            # An older kgents history: migrate it through a short writer, then re-open.
            con.close()
            with connect(path, lock_wait_s=lock_wait_s):
                pass
            con = _open(path, read_only=True, lock_wait_s=lock_wait_s)
            con.execute("SET TimeZone = 'UTC'")
        elif not read_only and behind:
            migrate(con)
        yield con
    except BaseException as exc:
        with contextlib.suppress(duckdb.Error):
            con.close()
        if not read_only:
            _shrink_back(path, before)
        if isinstance(exc, duckdb.Error) and _environmental(exc):
            doing = "cannot read" if read_only else "cannot write"
            raise storage_error(path, exc, f"{doing} the history") from None
        raise
    try:
        con.close()  # a writer checkpoints here: a full disk can fail it
    except duckdb.Error as exc:
        raise storage_error(path, exc, "cannot checkpoint") from None
    if not read_only:
        mark_verified(path)


def snapshot(
    db_path: str | os.PathLike[str], out: str | os.PathLike[str], *, lock_wait_s: float
) -> dict[str, int]:
    """Copy the history, consistently, into a new DuckDB file `out`; returns rows per table.

    DuckDB refuses any other process, readers included, while a writer holds the file; the
    pipeline's writers are short, so this waits up to `lock_wait_s` for a gap, then copies the
    whole database under a read lock (`COPY FROM DATABASE`) into a file nobody else uses, which
    can be queried with any tool while the pipeline goes on writing. `out` is written beside its
    final name and renamed into place; an existing `out` is replaced only if it is a kgents
    history (an earlier snapshot), never another file."""
    path, target = Path(db_path), Path(out)
    if not path.exists():
        raise HistoryError(f"no metrics history at {path}: nothing to snapshot")
    if target.exists() and target.resolve() == path.resolve():
        raise HistoryError(f"--out {target} is the history itself: choose another file")
    if target.is_dir():
        raise HistoryError(f"--out {target} is a directory, not a file")
    if target.exists():
        with connect(target, read_only=True, lock_wait_s=0):
            pass  # refuses (NotAHistory, CorruptHistory) anything but a kgents history
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise storage_error(target, exc, "cannot write the snapshot") from None
    con = duckdb.connect()
    try:
        _open(path, read_only=True, lock_wait_s=lock_wait_s, attach=con)
        con.execute("USE src")
        con.execute("SET TimeZone = 'UTC'")
        try:
            version = ownership(con, path)
        except duckdb.Error as exc:
            raise CorruptHistory(
                f"cannot read {path}: {first_line(exc)}: {_REBUILD_HINT}"
            ) from None
        if version is None:
            raise NotAHistory(f"{path} holds no kgents history (an empty DuckDB file)")
        check_integrity(con, path)
        counts = {
            name: int(con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])  # type: ignore[index]
            for name, kind in sorted(_tables(con).items())
            if kind == "BASE TABLE"
        }
        con.execute("ATTACH ? AS snap", [str(tmp)])
        con.execute("COPY FROM DATABASE src TO snap")
        con.execute("DETACH snap")
    except duckdb.Error as exc:
        raise storage_error(tmp, exc, "cannot write the snapshot") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
            wal_path(tmp).unlink(missing_ok=True)
        raise
    finally:
        con.close()
    try:
        os.replace(tmp, target)
    except OSError as exc:
        raise storage_error(target, exc, "cannot write the snapshot") from None
    mark_verified(target)
    return counts
