"""Item 4: the auth header is validated where it is read (a control character or a newline is
one line that never echoes the value); no output and no file ever holds it. A planted secret is
grepped in every stdout, stderr and file the commands produce."""

from __future__ import annotations

import secrets
from pathlib import Path

import dagster as dg
import pytest

from kgents_pipeline.loadtest.target import DemoTarget
from tests.faults.conftest import assert_not_ready, assert_nothing_lost, one_line

pytestmark = pytest.mark.k6


@pytest.fixture
def secret() -> str:
    return f"Bearer planted-{secrets.token_hex(12)}"


def _everything(root: Path) -> bytes:
    """Every byte of every file under `root` (archive, history, reports, logs)."""
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def _leaks(secret: str, *texts: str | bytes) -> list[int]:
    token = secret.split()[-1]
    return [
        i
        for i, text in enumerate(texts)
        if token in (text.decode(errors="replace") if isinstance(text, bytes) else text)
    ]


@pytest.mark.parametrize("bad", ["{}\n", "\r\n{}", "{}\x1b[2J"])
def test_a_header_with_a_control_character_is_one_line_that_never_shows_it(
    site, secret, free_port, bad
):
    env = {"KGENTS_AUTH_HEADER": bad.format(secret)}
    before = site.inventory()
    for extra in ((), ("--skip-preflight",)):
        proc = site.cli(
            "loadtest", "run", "--target", f"http://127.0.0.1:{free_port}", *extra,
            "--rate", "10", "--duration", "1s", "--db", site.db, "--archive", site.archive,
            env=env,
        )  # fmt: skip
        one_line(proc, 2, "KGENTS_AUTH_HEADER is not a valid HTTP header value")
        assert not _leaks(secret, proc.stdout, proc.stderr)
    assert not _leaks(secret, _everything(site.root))
    assert site.inventory().files == before.files  # nothing was run, nothing archived
    assert_nothing_lost(before, site.inventory())


def test_the_dagster_path_validates_it_without_showing_it(site, secret):
    from kgents_pipeline.defs.loadtest import health_preflight, load_test_run
    from kgents_pipeline.defs.resources import HistoryResource, LoadTestResource

    with DemoTarget() as demo, dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [health_preflight, load_test_run],
            resources={
                "history": HistoryResource(db_path=str(site.db), archive_dir=str(site.archive)),
                "loadtest": LoadTestResource(target_url=demo.url, auth_header=secret + "\n"),
            },
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success
        [failure] = result.get_step_failure_events()
        message = failure.event_specific_data.error.message
        logs = [str(r.user_message) for r in instance.all_logs(result.run_id)]
    assert "not a valid HTTP header value" in message
    assert not _leaks(secret, message, *logs)


def test_a_planted_secret_appears_in_no_output_and_no_file(site, secret, free_port):
    env = {"KGENTS_AUTH_HEADER": secret}
    before = site.inventory()
    outputs: list[str] = []
    with DemoTarget() as demo:
        proc = site.cli(
            "loadtest", "run", "--target", demo.url, "--rate", "20", "--duration", "1s",
            "--db", site.db, "--archive", site.archive, env=env,
        )  # fmt: skip
        outputs += [proc.stdout, proc.stderr]
        assert proc.returncode in (0, 1), proc.stderr  # ran (a rehearsal: the demo target)
    proc = site.cli(
        "loadtest", "run", "--target", f"http://127.0.0.1:{free_port}", "--skip-preflight",
        "--rate", "20", "--duration", "1s", "--db", site.db, "--archive", site.archive, env=env,
    )  # fmt: skip
    outputs += [proc.stdout, proc.stderr]
    assert proc.returncode == 1, proc.stderr  # a refused target: failed thresholds
    proc = site.cli(
        "loadtest", "run", "--target", f"http://127.0.0.1:{free_port}", "--rate", "20",
        "--duration", "1s", "--db", site.db, "--archive", site.archive, env=env,
    )  # fmt: skip
    outputs += [proc.stdout, proc.stderr]
    one_line(proc, 2, "health preflight")
    for args in (
        ("verdict", "--db", site.db, "--archive", site.archive, "--checklist", site.checklist),
        ("report", "--out", site.root / "report.html", "--db", site.db, "--archive", site.archive),
        ("trends", "--db", site.db, "--format", "json"),
        ("history", "rebuild", "--db", site.db, "--archive", site.archive),
        ("history", "snapshot", "--out", site.root / "snap.duckdb", "--db", site.db),
    ):
        proc = site.cli(*args, env=env)
        outputs += [proc.stdout, proc.stderr]
        assert "internal error" not in proc.stderr, proc.stderr
    assert not _leaks(secret, *outputs), [outputs[i][:300] for i in _leaks(secret, *outputs)]
    assert not _leaks(secret, _everything(site.root))
    assert (site.root / "report.html").exists() and (site.root / "snap.duckdb").exists()
    assert_not_ready(site)  # the newest run failed its thresholds
    assert_nothing_lost(before, site.inventory())
