"""`kgents-pipeline loadtest run` and `kgents-pipeline target serve`."""

from __future__ import annotations

import contextlib

import click

from kgents_pipeline import settings
from kgents_pipeline.cli.options import archive_option, db_option, from_setting
from kgents_pipeline.errors import HistoryError, LoadTestError
from kgents_pipeline.history.store import open_history


@click.group()
def loadtest() -> None:
    """Run the k6 load test of /health/saas."""


@loadtest.command("run")
@from_setting(
    settings.TARGET_URL,
    "--target",
    "target_url",
    help="Base URL of the service; unset = the bundled demo target on 127.0.0.1 (a rehearsal).",
)
@from_setting(
    settings.RATE,
    "--rate",
    type=click.IntRange(min=1),
    help="Requests per second (constant arrival rate).",
)
@from_setting(settings.DURATION, "--duration", help="k6 duration: 30s, 2m, 1h.")
@from_setting(
    settings.RUNNERS,
    "--runners",
    type=click.IntRange(1, 64),
    help="k6 processes, one execution segment each; the run's figures come from the union of "
    "their raw points.",
)
@db_option
@archive_option
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=1),
    default=None,
    help="Stop k6 after this many seconds [default: duration + 60].",
)
@click.option("--skip-preflight", is_flag=True, help="Send load even if /health/saas is unhealthy.")
@click.option(
    "--lock-wait",
    "lock_wait_s",
    type=click.FloatRange(min=0, max=3600),
    default=settings.INGEST_LOCK_WAIT_S,
    show_default=True,
    help="Seconds to wait for the history's lock before giving up on the ingest (the run stays "
    "archived and the error says how to ingest it).",
)
def run_command(
    target_url: str,
    rate: int,
    duration: str,
    runners: int,
    db: str,
    archive_root: str,
    timeout_s: float | None,
    skip_preflight: bool,
    lock_wait_s: float,
) -> None:
    """Run k6, archive the run, ingest it into the history and print a summary.

    The Authorization header, if the target needs one, comes from KGENTS_AUTH_HEADER only (a
    flag would show in the process list). Exit 0 when the run passed its thresholds, 1 when it
    failed them or is not valid evidence, 2 when it could not run or could not be ingested (it
    stays archived; the error names the command that ingests it).
    """
    from kgents_pipeline.history.ingest import ingest_run_dir
    from kgents_pipeline.history.windows import read_windows
    from kgents_pipeline.loadtest.preflight import check_health
    from kgents_pipeline.loadtest.session import LoadTestPlan, run_plan
    from kgents_pipeline.verdict.run_summary import run_summary

    auth = settings.AUTH_HEADER.header() or None
    if target_url and not skip_preflight:
        report = check_health(target_url, auth_header=auth)
        click.echo(f"preflight: {report.url} {report.status} in {report.latency_ms:.0f} ms")
        if report.demo:
            click.echo("preflight: this is the bundled demo target: the run is a rehearsal")
    plan = LoadTestPlan(
        target_url=target_url or None,
        rate=rate,
        duration=duration,
        auth_header=auth,
        timeout_s=timeout_s,
        archive_root=archive_root,
        runners=runners,
    )
    result = run_plan(plan, log=click.echo)
    store = open_history(db)
    try:
        ingested = ingest_run_dir(store, result.run_dir, lock_wait_s=lock_wait_s)
        with store.reader() as con:
            windows = read_windows(con, [ingested.run_id]).get(ingested.run_id)
    except HistoryError as exc:
        raise HistoryError(
            f"run {result.run_id} is archived in {result.run_dir} but not in the history "
            f"({exc}); until it is ingested the verdict is not READY. Ingest it with: "
            f"kgents-pipeline history ingest {result.run_dir} --db {db}"
        ) from None
    click.echo()
    click.echo(run_summary(ingested, windows, history=str(store)))
    if not ingested.valid or result.exit_code != 0:
        raise SystemExit(1)


@loadtest.command("capacity")
@from_setting(
    settings.TARGET_URL,
    "--target",
    "target_url",
    help="Base URL of the service; unset = the bundled demo target on 127.0.0.1 (a rehearsal).",
)
@from_setting(settings.CAPACITY_START, "--start", type=click.IntRange(min=1))
@from_setting(settings.CAPACITY_FACTOR, "--factor", type=click.FloatRange(min=1.01))
@from_setting(settings.CAPACITY_MAX, "--max", "max_rps", type=click.IntRange(min=1))
@from_setting(settings.CAPACITY_STEP, "--step", help="Duration of each step: 10s, 1m.")
@from_setting(
    settings.DEMO_WORKERS,
    "--demo-workers",
    type=click.IntRange(min=0),
    help="Demo target only: requests served at once (0: no capacity limit).",
)
@from_setting(
    settings.DEMO_SERVICE_MS,
    "--demo-service-ms",
    type=click.FloatRange(min=0),
    help="Demo target only: each worker's time per request.",
)
@db_option
@archive_option
def capacity_command(
    target_url: str,
    start: int,
    factor: float,
    max_rps: int,
    step: str,
    demo_workers: int,
    demo_service_ms: float,
    db: str,
    archive_root: str,
) -> None:
    """Step the arrival rate up until a step fails p95, errors or drops; record every step and
    the knee (the highest rate that held) in the history (view capacity_knee).

    Exit 0 when the knee gives the headroom capacity.headroom asks for (KGENTS_HEADROOM_FACTOR x
    the launch rate), 1 when it does not or the search is invalid, 2 when it could not run.
    """
    from kgents_pipeline.verdict.capacity import (
        CapacityPlan,
        capacity_summary,
        run_capacity_search,
    )
    from kgents_pipeline.verdict.model import VerdictPolicy

    policy = VerdictPolicy()
    plan = CapacityPlan(
        start_rps=start,
        factor=factor,
        max_rps=max_rps,
        step=step,
        target_url=target_url or None,
        auth_header=settings.AUTH_HEADER.raw() or None,
        demo_workers=demo_workers,
        demo_service_ms=demo_service_ms,
        archive_root=archive_root,
        policy=policy,
    )
    result = run_capacity_search(plan, open_history(db), log=click.echo)
    click.echo()
    click.echo(capacity_summary(result, policy))
    knee = result.search.knee_rps
    if not result.search.valid or knee is None:
        raise SystemExit(1)
    if knee < policy.headroom_factor * policy.launch_rate_rps:
        raise SystemExit(1)


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Loopback address to bind (the demo target is never served beyond this machine).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Delay added to every response.",
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of responses that are 503 unhealthy.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Requests served at once (0: no capacity limit); needs --service-ms.",
)
@click.option(
    "--service-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Each worker's time per request: capacity = workers x 1000 / service-ms req/s.",
)
def target(
    host: str, port: int, latency_ms: float, error_rate: float, workers: int, service_ms: float
) -> None:
    """Serve the demo /health/saas target until interrupted."""
    import ipaddress

    from kgents_pipeline.loadtest.target import DemoTarget

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise LoadTestError(f"--host must be a loopback address (127.0.0.1, ::1), got {host!r}")
    try:
        demo = DemoTarget(
            latency_ms=latency_ms,
            error_rate=error_rate,
            host=host,
            port=port,
            workers=workers,
            service_ms=service_ms,
        )
    except OSError as exc:
        raise LoadTestError(f"cannot bind {host}:{port}: {exc.strerror}") from exc
    except ValueError as exc:
        raise LoadTestError(str(exc)) from exc
    limit = f", capacity {demo.capacity_rps:.0f} req/s" if demo.capacity_rps else ""
    click.echo(
        f"demo target on {demo.url}/health/saas (latency {latency_ms} ms, "
        f"error rate {error_rate}{limit}); Ctrl-C to stop"
    )
    with contextlib.suppress(KeyboardInterrupt):
        demo.serve_forever()


@click.group(name="target")
def target_group() -> None:
    """The bundled demo target (a local stand-in for /health/saas)."""


target_group.add_command(target, name="serve")
