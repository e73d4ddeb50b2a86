"""The shared history on DuckLake: a catalog in PostgreSQL, data as Parquet files under
`KGENTS_DUCKLAKE_DATA_PATH`, queried with the same DuckDB SQL as the local file.

DuckDB's `ducklake` and `postgres` extensions come from their packages on the package index
(`duckdb-extension-ducklake`, `duckdb-extension-postgres`), never downloaded at run time, and are
loaded with signature checking on: each packaged file is linked under its canonical name into an
extension directory (`<dir>/v<duckdb version>/<platform>/`), which `LOAD` then reads.

Many processes read and write at once: each transaction commits a new snapshot, a reader sees the
last committed one. Two transactions that delete from the same table conflict, and the second
commit fails whole (`is_conflict`): the caller retries it. DuckLake has no primary keys, unique
constraints, sequences or `RETURNING`: the schema's DDL is filtered here (`ducklake_ddl`) and ids
are made by `next_id`.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from importlib import util as importlib_util
from pathlib import Path
from typing import TypeVar

import duckdb

from kgents_pipeline import settings
from kgents_pipeline.errors import ConfigError, HistoryError

PREFIX = "ducklake:"
BACKEND = "postgres:"
ALIAS = "history"  # the catalog's name in SQL: history.main.runs
_EXTENSIONS = {  # canonical name -> (package, file the package ships)
    "postgres_scanner": ("duckdb_extension_postgres", "postgres.duckdb_extension"),
    "ducklake": ("duckdb_extension_ducklake", "ducklake.duckdb_extension"),
}
_PASSWORD_RE = re.compile(r"(^|\s)password\s*=", re.IGNORECASE)
CONFLICT_RETRIES = 8

T = TypeVar("T")


def is_ducklake(location: str) -> bool:
    return location.startswith(PREFIX)


def conninfo(location: str) -> str:
    """The libpq conninfo of a `ducklake:postgres:<conninfo>` location; refuses any other form
    and a conninfo holding a password (it would end up in logs and metadata: give it to libpq
    by PGPASSWORD or ~/.pgpass)."""
    rest = location[len(PREFIX) :]
    if not rest.startswith(BACKEND):
        raise ConfigError(
            f"unsupported DuckLake catalog {rest.split(':', 1)[0]!r}: expected "
            "ducklake:postgres:<conninfo> (for example ducklake:postgres:dbname=kgents host=db)"
        )
    info = rest[len(BACKEND) :].strip()
    if not info:
        raise ConfigError("ducklake:postgres: needs a conninfo (dbname=... host=... user=...)")
    if _PASSWORD_RE.search(info) or "://" in info or "@" in info:
        raise ConfigError(
            "the DuckLake location must not hold a password or a URI (it is shown in logs): "
            "use key=value pairs without password, and PGPASSWORD or ~/.pgpass for the password"
        )
    return info


def data_path() -> str | None:
    """Where DuckLake keeps the Parquet files (KGENTS_DUCKLAKE_DATA_PATH); None: as recorded in
    the catalog (enough for an existing history)."""
    raw = settings.DUCKLAKE_DATA_PATH.raw().strip()
    if not raw:
        return None
    if "://" in raw:
        return raw  # an object store URL, as DuckLake takes it
    return str(Path(raw).resolve())


def _packaged(package: str, name: str) -> Path:
    spec = importlib_util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise HistoryError(
            f"the Python package {package.replace('_', '-')} is not installed: the DuckLake "
            "history needs it (make venv installs it)"
        )
    version = f"v{duckdb.__version__}"
    path = Path(next(iter(spec.submodule_search_locations))) / "extensions" / version / name
    if not path.is_file():
        raise HistoryError(
            f"{package.replace('_', '-')} ships no extension for DuckDB {version} ({path} is "
            "missing): pin the extension packages to the DuckDB version"
        )
    return path


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    # One directory per Python environment: two virtualenvs never relink each other's files.
    env = hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]
    return Path(base) / "kgents-pipeline" / "duckdb-extensions" / env


@functools.cache
def extension_directory(platform: str) -> str:
    """An extension directory holding the packaged extensions under their canonical names
    (symbolic links: signature checking reads the file itself)."""
    sources = {name: _packaged(pkg, file) for name, (pkg, file) in _EXTENSIONS.items()}
    for root in (_cache_root(), Path(tempfile.gettempdir()) / f"kgents-ext-{os.getuid()}"):
        target = root / f"v{duckdb.__version__}" / platform
        try:
            target.mkdir(parents=True, exist_ok=True)
            for name, src in sources.items():
                link = target / f"{name}.duckdb_extension"
                if link.is_symlink() and os.readlink(link) == str(src):
                    continue
                tmp = link.with_name(f".{link.name}.{os.getpid()}")
                tmp.unlink(missing_ok=True)
                tmp.symlink_to(src)
                os.replace(tmp, link)
            return str(root)
        except OSError:
            continue
    raise HistoryError("cannot create a DuckDB extension directory (no writable cache or tmp)")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def attach(location: str, *, read_only: bool, create: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the DuckLake `location` attached as `history` and in
    use. A new catalog is created only by a writer with `create`, and needs
    KGENTS_DUCKLAKE_DATA_PATH.

    Two processes creating the same new catalog at once race in PostgreSQL (DuckLake creates
    its catalog tables without IF NOT EXISTS): the loser attaches again, to what the winner
    created."""
    for attempt in range(CONFLICT_RETRIES):
        try:
            return _attach_once(location, read_only=read_only, create=create)
        except _CreationRace:
            time.sleep(0.1 * (attempt + 1))
    return _attach_once(location, read_only=read_only, create=False)


class _CreationRace(Exception):
    pass


def _attach_once(location: str, *, read_only: bool, create: bool) -> duckdb.DuckDBPyConnection:
    info = conninfo(location)
    con = duckdb.connect(
        config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
    )
    try:
        platform = str(con.execute("PRAGMA platform").fetchone()[0])  # type: ignore[index]
        con.execute(f"SET extension_directory = {_quote(extension_directory(platform))}")
        con.execute("LOAD postgres")
        con.execute("LOAD ducklake")
        options = ["READ_ONLY"] if read_only else []
        path = data_path()
        if path is not None:
            options.append(f"DATA_PATH {_quote(path)}")
        if not read_only and (path is None or not create):
            options.append("CREATE_IF_NOT_EXISTS false")
        attach_sql = f"ATTACH {_quote(PREFIX + BACKEND + info)} AS {ALIAS}"
        con.execute(attach_sql + (f" ({', '.join(options)})" if options else ""))
        con.execute(f"USE {ALIAS}")
        con.execute("SET TimeZone = 'UTC'")
    except duckdb.Error as exc:
        con.close()
        text = str(exc)
        if not read_only and ("duplicate key" in text or "already exists" in text):
            raise _CreationRace() from None
        raise _attach_error(location, exc) from None
    except BaseException:
        con.close()
        raise
    return con


def _attach_error(location: str, exc: duckdb.Error) -> HistoryError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "does not exist" in text and ("creating a new DuckLake" in text or "CREATE" in text):
        hint = (
            "run the load test or `history rebuild` (a new DuckLake history needs "
            f"{settings.DUCKLAKE_DATA_PATH.env})"
        )
        return HistoryError(f"no metrics history at {location}: {hint}")
    if "data path" in text.lower() or "data_path" in text.lower():
        return HistoryError(f"{location}: {text} (check {settings.DUCKLAKE_DATA_PATH.env})")
    return HistoryError(f"cannot open the DuckLake history {location}: {text}")


def is_conflict(exc: BaseException) -> bool:
    """A DuckLake commit that lost to a concurrent one (nothing of it was written)."""
    return isinstance(exc, duckdb.TransactionException) and "DuckLake" in str(exc)


def retry_conflicts(unit: Callable[[], T], *, retries: int = CONFLICT_RETRIES) -> T:
    """Run `unit` (one whole transaction), again after a DuckLake commit conflict."""
    delay = 0.02
    for attempt in range(retries + 1):
        try:
            return unit()
        except duckdb.TransactionException as exc:
            if not is_conflict(exc) or attempt == retries:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------
# The schema, as DuckLake takes it

_SEQUENCE_RE = re.compile(r"CREATE\s+SEQUENCE[^;]*;", re.IGNORECASE)
_NEXTVAL_RE = re.compile(r"\s+PRIMARY\s+KEY\s+DEFAULT\s+nextval\('[^']*'\)", re.IGNORECASE)
_TABLE_KEY_RE = re.compile(r",\s*PRIMARY\s+KEY\s*\([^)]*\)", re.IGNORECASE)
_COLUMN_KEY_RE = re.compile(r"\s+PRIMARY\s+KEY\b", re.IGNORECASE)


def ducklake_ddl(sql: str) -> str:
    """A migration's DDL as DuckLake takes it: the same tables and columns without primary keys,
    unique constraints and sequences (ids come from `next_id`)."""
    sql = _SEQUENCE_RE.sub("", sql)
    sql = _NEXTVAL_RE.sub("", sql)
    sql = _TABLE_KEY_RE.sub("", sql)
    return _COLUMN_KEY_RE.sub("", sql)


def is_ducklake_connection(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT type FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return bool(row and row[0] == "ducklake")


def next_id(con: duckdb.DuckDBPyConnection, table: str, column: str) -> int:
    """An id for a new row where DuckLake has no sequence: greater than every id in the table
    and than the transaction's start time in microseconds, so two machines that record at once
    (their inserts do not conflict) still get distinct ids, in the order they recorded."""
    row = con.execute(
        f"SELECT greatest(coalesce(max({column}), 0) + 1, epoch_us(now())) FROM {table}"
    ).fetchone()
    assert row is not None
    return int(row[0])


# Attaching costs ~0.5-1 s (the extensions load, the catalog is read from PostgreSQL), so each
# process keeps a few attached databases and hands out a cursor per short connection: every
# transaction still starts from the newest committed snapshot.
_KEEP = 4
_attached: collections.OrderedDict[tuple[str, bool, str | None], _Attached] = (
    collections.OrderedDict()
)
_lock = threading.Lock()


class _Attached:
    def __init__(self, con: duckdb.DuckDBPyConnection, read_only: bool) -> None:
        self.con = con
        self.read_only = read_only
        self.checked = False  # ownership and migrations were checked through it


def _cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    cur = con.cursor()
    cur.execute(f"USE {ALIAS}")
    cur.execute("SET TimeZone = 'UTC'")
    return cur


@contextlib.contextmanager
def cursor(
    location: str, *, read_only: bool, create: bool
) -> Iterator[tuple[duckdb.DuckDBPyConnection, _Attached]]:
    """A short connection (a cursor) to the DuckLake `location`, on a database attached once
    per process; with it, whether the schema was already checked through that database.

    A writer's database serves readers too (what a reader does never writes); a reader alone
    attaches READ_ONLY (a role that may only read the catalog can still read)."""
    path = data_path()
    with _lock:
        held = _attached.get((location, False, path))
        if held is None and read_only:
            held = _attached.get((location, True, path))
        key = (location, read_only if held is None else held.read_only, path)
        if held is not None:
            _attached.move_to_end(key)
    if held is None:
        held = _Attached(attach(location, read_only=read_only, create=create), read_only)
        with _lock:
            _attached[key] = held
            while len(_attached) > _KEEP:
                _, old = _attached.popitem(last=False)
                with contextlib.suppress(duckdb.Error):
                    old.con.close()
    try:
        cur = _cursor(held.con)
    except duckdb.Error:
        forget(location)
        raise
    try:
        yield cur, held
    finally:
        with contextlib.suppress(duckdb.Error):
            cur.close()


def forget(location: str) -> None:
    """Close and drop the databases attached to `location` (after it failed, or was dropped)."""
    with _lock:
        for key in [k for k in _attached if k[0] == location]:
            with contextlib.suppress(duckdb.Error):
                _attached.pop(key).con.close()
