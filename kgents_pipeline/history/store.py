"""The storage seam: where the metrics history lives, and the only way into it.

The rest of the code holds a `HistoryStore` and asks it for a short-lived connection; it never
builds a path, opens a file or writes SQL. Every statement lives in `kgents_pipeline.history`,
in functions that take the connection a store hands out. A second backend (a shared catalog,
say) is a second kind of store behind `open_history`, chosen by the location's form.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import duckdb

from kgents_pipeline.history import db

P = ParamSpec("P")
T = TypeVar("T")
Unit = Callable[Concatenate[duckdb.DuckDBPyConnection, P], T]


@dataclass(frozen=True)
class HistoryStore:
    """A local DuckDB history file (one writer process at a time; short connections)."""

    location: str

    def __str__(self) -> str:
        return self.location

    def exists(self) -> bool:
        return Path(self.location).exists()

    @contextlib.contextmanager
    def reader(self, *, lock_wait_s: float = 5.0) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection; a history that does not exist is a `HistoryError`."""
        with db.connect(self.location, read_only=True, lock_wait_s=lock_wait_s) as con:
            yield con

    @contextlib.contextmanager
    def writer(
        self, *, create: bool = True, lock_wait_s: float = 5.0
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A writable connection, migrated to the current schema. With `create=False` a history
        that does not exist is refused (controls about runs that must already be there). Only
        a new file or a kgents history is ever written."""
        with db.connect(self.location, create=create, lock_wait_s=lock_wait_s) as con:
            yield con

    def read(self, unit: Unit[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """One read (a history function taking a connection) through a short reader."""
        with self.reader() as con:
            return unit(con, *args, **kwargs)

    def write(self, unit: Unit[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """One unit of work (a history function taking a connection) through a short writer."""
        with self.writer() as con:
            return unit(con, *args, **kwargs)

    def move_aside(self, suffix: str) -> str:
        """Rename an unreadable history (and its WAL) out of the way, never deleting it;
        returns where."""
        path = Path(self.location)
        aside = path.with_name(f"{path.name}.{suffix}")
        try:
            path.rename(aside)
            wal = db.wal_path(path)
            if wal.exists():
                wal.rename(db.wal_path(aside))
        except OSError as exc:
            raise db.storage_error(path, exc, "cannot move the history aside") from None
        return str(aside)

    def snapshot(self, out: str | os.PathLike[str], *, lock_wait_s: float = 60.0) -> dict[str, int]:
        """A consistent copy of the history in a new file `out`, to query while the pipeline
        writes this one (see `db.snapshot`); returns rows per table."""
        return db.snapshot(self.location, out, lock_wait_s=lock_wait_s)


def open_history(location: str | os.PathLike[str] | HistoryStore) -> HistoryStore:
    """The store at `location` (what `--db` and `KGENTS_DB_PATH` hold)."""
    if isinstance(location, HistoryStore):
        return location
    return HistoryStore(os.fspath(location))
