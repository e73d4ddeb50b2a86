"""DuckDB connections and versioned migrations.

DuckDB allows one writer process per file, so connections are short: open, do one unit of work,
close. A file locked by another process is retried for a few seconds (a Dagster step finishing
its write), then reported with the holder's PID and command line, never as a hang.
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import duckdb

from kgents_pipeline import settings
from kgents_pipeline.errors import HistoryError

DEFAULT_DB = Path(settings.DB_PATH.default)
_LOCK_RE = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")


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


def applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    """The migration versions recorded in the file (empty for a new file)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()
    if not exists or not exists[0]:
        return set()
    return {int(v) for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    return max(applied_versions(con), default=0)


def pending(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str, str]]:
    """The bundled migrations the file has not applied, by version; a gap counts too (a
    migration merged after a newer one was applied still runs)."""
    done = applied_versions(con)
    return [m for m in migrations() if m[0] not in done]


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every migration the file has not applied, in version order, each in its own
    transaction."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    applied = []
    for version, name, sql in pending(con):
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name]
            )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise HistoryError(f"migration {version:04d}_{name} failed: {exc}") from exc
        applied.append(version)
    return applied


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
    the file and its parent directory are created.
    """
    path = Path(db_path)
    if (read_only or not create) and not path.exists():
        raise HistoryError(f"no metrics history at {path}: run the load test or `history rebuild`")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_wait_s
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" not in text.lower():
                raise HistoryError(f"cannot open {path}: {text.splitlines()[0]}") from exc
            if time.monotonic() >= deadline:
                raise HistoryError(
                    f"{path} is locked by {_holder(text)}; DuckDB allows one writer process "
                    "per file: wait for it to finish or stop it"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        except duckdb.Error as exc:
            raise HistoryError(f"cannot open {path}: {str(exc).splitlines()[0]}") from exc
    try:
        con.execute("SET TimeZone = 'UTC'")
        if read_only:
            if pending(con):
                # An older file: migrate it through a short writable connection, then re-open.
                con.close()
                with connect(path, lock_wait_s=lock_wait_s):
                    pass
                con = duckdb.connect(str(path), read_only=True)
                con.execute("SET TimeZone = 'UTC'")
        else:
            migrate(con)
        yield con
    finally:
        con.close()
