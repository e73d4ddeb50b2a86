"""Real pages in a real browser: Debian's Chromium driven headless by Playwright (never a
browser of Playwright's own), and the Dagster UI as `make dev` serves it.

Without /usr/bin/chromium these tests fail and say so: CI installs it (`.ci/run`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Screenshots are kept for people to look at after the run (data/ is git-ignored).
ARTIFACTS = REPO / "data" / "reports" / "test-artifacts"


def require_chromium(path: str = CHROMIUM) -> None:
    """Fail (never skip) when the browser is missing, saying what to install."""
    if not Path(path).exists():
        pytest.fail(
            f"Debian's Chromium is not installed ({path}): the page tests need a real browser."
            " Install it with `apt-get update && apt-get install -y chromium` (.ci/run does).",
            pytrace=False,
        )


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright. Playwright's event loop runs while
    this is open: keep Dagster executions outside it (they clean up their own loop)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def keep(png: Path, artifacts: Path) -> Path:
    """Copy a screenshot out of pytest's temporary folder and say where it is."""
    kept = artifacts / png.name
    shutil.copyfile(png, kept)
    print(f"screenshot: {kept}")
    return kept


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DagsterDev:
    """`make dev` on a free port of 127.0.0.1 with its own DAGSTER_HOME: the webserver, the
    daemon and the code server, as a person starts them."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.home = root / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "make-dev.log"
        full_env = {
            **os.environ,
            **env,
            # The freshness daemon evaluates every second instead of every 30.
            "FRESHNESS_DAEMON_INTERVAL_SECONDS": "1",
        }
        with self.log.open("w") as out:
            # Its own session, as a terminal would give it: Ctrl-C goes to the whole group.
            self.proc = subprocess.Popen(
                ["make", "dev", f"DEV_PORT={self.port}", f"DAGSTER_HOME={self.home}"],
                cwd=REPO,
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float = 240.0) -> None:
        """Until the code location has loaded in the webserver."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"make dev exited {self.proc.returncode}:\n{self.tail()}")
            try:
                doc = self.graphql(
                    "{ workspaceOrError { ... on Workspace { locationEntries {"
                    " locationOrLoadError { __typename } } } } }"
                )
                entries = doc["workspaceOrError"]["locationEntries"]
                if (
                    entries
                    and entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation"
                ):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"make dev did not serve the code location:\n{self.tail()}")

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        """One query to the webserver's /graphql, the API the UI reads."""
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            doc = json.load(response)
        assert not doc.get("errors"), doc["errors"]
        return doc["data"]

    def tree(self) -> set[int]:
        from tools.dev import tree

        return tree(self.proc.pid)

    def tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else ""

    def stop(self, how: str) -> float:
        """Stop as a person does: "ctrl-c" (SIGINT to the terminal's process group) or
        "sigterm" (to make). Returns the seconds until every process of the tree is gone."""
        from tools.dev import _stat

        pids = self.tree()
        started = time.monotonic()
        if how == "ctrl-c":
            os.killpg(self.proc.pid, signal.SIGINT)
        else:
            os.kill(self.proc.pid, signal.SIGTERM)
        while time.monotonic() - started < 30 and any(_stat(p) is not None for p in pids):
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        left = [p for p in pids if _stat(p) is not None]
        for pid in left:  # never leave a stray server behind a failing test
            os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        assert not left, f"still running after {elapsed:.1f} s: {left}\n{self.tail()}"
        return elapsed

    def kill(self) -> None:
        """SIGKILL whatever is left of the tree (nothing, after a clean stop)."""
        from tools.dev import _stat

        for pid in self.tree():
            if _stat(pid) is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
