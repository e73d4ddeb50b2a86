"""A real PostgreSQL server for the tests: Debian's `postgresql` package (initdb, pg_ctl),
started by the test session itself in a temporary directory, listening on 127.0.0.1 only, with a
password that reaches libpq by PGPASSWORD only, and stopped by its PID.

A machine without the server binaries fails the tests that need it with one line saying what to
install (`.ci/run` installs it): the DuckLake history and the Dagster instance on PostgreSQL are
never skipped.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER = "kgents"
MISSING = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql "
    "package (apt-get install -y postgresql; .ci/run does)"
)


def bindir() -> Path | None:
    """The directory of initdb and pg_ctl: pg_config's, else the newest Debian
    /usr/lib/postgresql/<major>/bin, else PATH."""
    candidates: list[Path] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        candidates.append(Path(out))
    majors = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += [Path(p) for p in majors]
    if found := shutil.which("initdb"):
        candidates.append(Path(found).resolve().parent)
    for c in candidates:
        if (c / "initdb").is_file() and (c / "pg_ctl").is_file():
            return c
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """One running server: `conninfo(dbname)` is what libpq takes (never the password: that
    is in PGPASSWORD)."""

    root: Path
    port: int
    password: str
    pid: int
    bindir: Path

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"dbname={dbname} host=127.0.0.1 port={self.port} user={USER}"

    def env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.password}

    def admin(self):  # psycopg2 connection to the maintenance database, autocommit
        import psycopg2

        con = psycopg2.connect(self.conninfo(), password=self.password)
        con.autocommit = True
        return con

    def create_database(self, name: str, template: str | None = None) -> str:
        with contextlib.closing(self.admin()) as con, con.cursor() as cur:
            cur.execute(
                f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
            )
        return name

    def stop(self) -> None:
        """Fast shutdown by PID (SIGINT), then SIGKILL if it lingers; the directory goes."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{self.pid}").exists():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, os.WNOHANG)
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def start() -> PostgresServer:
    """initdb + pg_ctl start in a new temporary directory; raises RuntimeError(MISSING) when the
    binaries are not installed."""
    bin_dir = bindir()
    if bin_dir is None:
        raise RuntimeError(MISSING)
    root = Path(tempfile.mkdtemp(prefix="kgents-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the package's postgres user
        owner = "postgres"
        try:
            pwd.getpwnam(owner)
        except KeyError:
            owner = "nobody"
        shutil.chown(root, owner)
        as_user = ["runuser", "-u", owner, "--"]
    password = secrets.token_urlsafe(18)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")  # read once by initdb, deleted at once
    if as_user:
        shutil.chown(pwfile, pwd.getpwnam(as_user[2]).pw_name)
    try:
        subprocess.run(
            [*as_user, str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", USER,
             "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {exc.stderr.strip().splitlines()[-1:]}") from None
    finally:
        pwfile.unlink(missing_ok=True)
    port = _free_port()
    options = (
        f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    proc = subprocess.run(
        [*as_user, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-o", options,
         "-l", str(root / "server.log"), "-w", "-t", "60", "start"],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    if proc.returncode != 0:
        log = (root / "server.log").read_text(errors="replace")[-2000:]
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"pg_ctl start failed: {proc.stderr.strip()} {log}")
    pid = int((root / "data" / "postmaster.pid").read_text().splitlines()[0])
    return PostgresServer(root, port, password, pid, bin_dir)
