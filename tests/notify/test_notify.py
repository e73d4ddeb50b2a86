"""Notifications of a change of the verdict's state: the real sensor, real Dagster
materializations of `launch_readiness`, a real DuckDB history, and a real HTTP receiver on
127.0.0.1 (one that answers, one that answers 500, one that hangs)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from kgents_pipeline.defs.notify import notify_on_verdict_change
from kgents_pipeline.defs.resources import HistoryResource, NotifyResource
from kgents_pipeline.defs.verdict import launch_readiness
from kgents_pipeline.history import notifications
from kgents_pipeline.history.db import connect
from kgents_pipeline.history.store import open_history
from kgents_pipeline.notify.webhook import post_json
from tests.verdict.synth import history, signed_checklist, verification

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
UI = "http://dagster.example:3000"


class Receiver:
    """A webhook on 127.0.0.1: `mode` is "ok" (200), "500", "400", or "hang" (never answers
    until the test ends)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.bodies: list[dict] = []
        self.hits = 0
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            wbufsize = 1 << 16

            def do_POST(self) -> None:
                receiver.hits += 1
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.mode == "hang":
                    receiver.release.wait(30)
                    return
                code = {"ok": 200, "400": 400}.get(receiver.mode, 500)
                if code == 200:
                    receiver.bodies.append(json.loads(body))
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if code == 200 else b"no")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def night(tmp_path: Path):
    """A remote history that is READY with the signed checklist; `fail()` adds a failing run."""
    db, archive = tmp_path / "metrics.duckdb", tmp_path / "k6"
    history(db, archive, [{}] * 4, start=NOW - dt.timedelta(hours=5))
    verification(db, NOW - dt.timedelta(minutes=30))
    checklist = signed_checklist(tmp_path / "checklist.yaml")
    instance = dg.DagsterInstance.ephemeral()

    class Night:
        def __init__(self) -> None:
            self.db, self.instance = db, instance

        def verdict(self) -> dg.ExecuteInProcessResult:
            result = dg.materialize(
                [launch_readiness],
                instance=instance,
                resources={"history": HistoryResource(db_path=str(db))},
                run_config={"ops": {"launch_readiness": {"config": {"checklist": str(checklist)}}}},
            )
            assert result.success
            return result

        def fail(self) -> None:
            history(
                db,
                archive,
                [{"run_id": "run-bad", "errors": 60}],
                start=NOW - dt.timedelta(minutes=40),
            )

        def tick(self, url: str, cursor: str | None = None, **kw: float):
            context = dg.build_sensor_context(
                instance=instance,
                cursor=cursor,
                resources={
                    "history": HistoryResource(db_path=str(db)),
                    "notify": NotifyResource(webhook_url=url, ui_url=UI, **kw),
                },
            )
            return notify_on_verdict_change(context)

        def delivered(self) -> list[notifications.Notification]:
            return open_history(db).read(notifications.read_notifications)

    yield Night()
    instance.dispose()


def _cursor(result) -> str | None:
    return getattr(result, "cursor", None)


def test_a_state_change_is_posted_once_with_state_reasons_run_and_link(night, receiver):
    ready = night.verdict()
    first = night.tick(receiver.url)
    [body] = receiver.bodies
    assert body["text"].startswith("kgents launch readiness: READY")
    assert ready.run_id in body["text"] and f"{UI}/runs/{ready.run_id}" in body["text"]
    assert any("READY" in b["text"]["text"] for b in body["blocks"] if "text" in b)

    # Nothing new: no post. A new verdict in the same state: no post either.
    assert isinstance(night.tick(receiver.url, _cursor(first)), dg.SkipReason)
    night.verdict()
    same = night.tick(receiver.url, _cursor(first))
    assert len(receiver.bodies) == 1 and "state unchanged: READY" in same.skip_reason.skip_message

    # The state changes: posted, with what blocks it and what it was before.
    night.fail()
    failing = night.verdict()
    night.tick(receiver.url, _cursor(same))
    assert len(receiver.bodies) == 2
    text = receiver.bodies[1]["text"]
    assert "NOT_READY (was READY)" in text and "slo.error_rate" in text
    assert f"{UI}/runs/{failing.run_id}" in text
    rows = night.delivered()
    assert [(n.state, n.previous_state, n.delivered) for n in rows] == [
        ("READY", None, True),
        ("NOT_READY", "READY", True),
    ]
    # The webhook's path is a credential: only its host is recorded.
    assert all(n.target == receiver.url.split("/hooks")[0] for n in rows)
    assert "secret-token" not in json.dumps([n.target for n in rows])


def test_a_receiver_answering_500_is_retried_recorded_and_the_verdict_is_untouched(night, receiver):
    night.verdict()
    with connect(night.db, read_only=True) as con:
        before = con.execute("SELECT verdict_id, state, verdict FROM readiness_verdicts").fetchall()
    receiver.mode = "500"
    result = night.tick(receiver.url, backoff_s=0.05)
    assert isinstance(result, dg.SkipReason) and "failed after 3 attempt(s)" in result.skip_message
    assert receiver.hits == 3
    [row] = night.delivered()
    assert (row.delivered, row.attempts, row.status_code) == (False, 3, 500)
    with connect(night.db, read_only=True) as con:
        after = con.execute("SELECT verdict_id, state, verdict FROM readiness_verdicts").fetchall()
    assert after == before  # the verdict is neither lost nor altered

    # The next tick tries again (the cursor did not move) and delivers.
    receiver.mode = "ok"
    night.tick(receiver.url, _cursor(result), backoff_s=0.05)
    assert [n.delivered for n in night.delivered()] == [False, True]
    assert receiver.bodies[0]["text"].startswith("kgents launch readiness: READY")


def test_a_hanging_receiver_times_out_and_the_sensor_returns(night, receiver):
    night.verdict()
    receiver.mode = "hang"
    started = time.monotonic()
    result = night.tick(receiver.url, timeout_s=0.5, attempts=2, backoff_s=0.05)
    elapsed = time.monotonic() - started
    assert elapsed < 5, elapsed  # 2 attempts x 0.5 s, not the receiver's 30 s
    assert isinstance(result, dg.SkipReason) and "no answer within 0.5 s" in result.skip_message
    [row] = night.delivered()
    assert (row.delivered, row.attempts, row.status_code) == (False, 2, None)


def test_no_webhook_means_no_post_and_nothing_recorded(night):
    night.verdict()
    result = night.tick("")
    assert "KGENTS_NOTIFY_WEBHOOK_URL is unset" in result.skip_message
    assert night.delivered() == []


def test_backoff_doubles_and_a_refused_message_is_not_retried(receiver):
    waits: list[float] = []
    receiver.mode = "500"
    delivery = post_json(
        receiver.url, {"text": "x"}, attempts=3, backoff_s=0.01, sleep=waits.append
    )
    assert not delivery.delivered and delivery.attempts == 3 and waits == [0.01, 0.02]
    receiver.mode = "400"  # the receiver says the message itself is wrong: retrying cannot help
    delivery = post_json(
        receiver.url, {"text": "x"}, attempts=3, backoff_s=0.01, sleep=waits.append
    )
    assert (delivery.delivered, delivery.attempts, delivery.status_code) == (False, 1, 400)
