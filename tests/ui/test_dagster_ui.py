"""The Dagster UI, through the GraphQL API it reads, after a missed night, a NOT_READY night and
a READY night; then `make dev` stopped with SIGTERM. One `make dev` for the module.

Each night runs the code location's own job on the instance the webserver serves (see
nights.py); the answers are read back the way the UI reads them."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from tests.ui.conftest import DagsterDev, chromium, keep, require_chromium
from tests.ui.nights import Nights

ASSET = """
query Asset($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      description
      owners { ... on TeamAssetOwner { team } }
      freshnessStatusInfo { freshnessStatus }
      assetChecksOrError { ... on AssetChecks { checks {
        name description blocking
        executionForLatestMaterialization { status runId evaluation { severity success } }
      } } }
      assetMaterializations(limit: 1) {
        runId
        metadataEntries { label __typename
          ... on IntMetadataEntry { intValue }
          ... on TextMetadataEntry { text }
          ... on PathMetadataEntry { path }
          ... on TableSchemaMetadataEntry { schema { columns { name type } } }
        }
      }
    }
  }
}"""

RUN = """
query Run($id: ID!) {
  runOrError(runId: $id) { ... on Run { status jobName tags { key value } } }
}"""

DEFINITIONS = """
{
  assetNodes { assetKey { path } description owners { ... on TeamAssetOwner { team } } }
  workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {
    ... on RepositoryLocation { repositories {
      jobs { name description }
      schedules { name description }
      sensors { name description }
    } } } } } }
}"""


def asset(dev: DagsterDev, key: str) -> dict[str, Any]:
    return dev.graphql(ASSET, key={"path": [key]})["assetNodeOrError"]


def metadata(node: dict[str, Any]) -> dict[str, Any]:
    [mat] = node["assetMaterializations"]
    return {e["label"]: e for e in mat["metadataEntries"]}


def check(node: dict[str, Any], name: str) -> dict[str, Any]:
    checks = node["assetChecksOrError"]["checks"]
    return next(c for c in checks if c["name"] == name)


def wait_freshness(dev: DagsterDev, status: str, timeout_s: float = 60.0) -> str:
    """The freshness the daemon last evaluated for launch_readiness, once it is `status`."""
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        seen = (asset(dev, "launch_readiness")["freshnessStatusInfo"] or {}).get("freshnessStatus")
        if seen == status:
            return seen
        time.sleep(0.5)
    return str(seen)


def tags(dev: DagsterDev, run_id: str) -> dict[str, str]:
    run = dev.graphql(RUN, id=run_id)["runOrError"]
    return {t["key"]: t["value"] for t in run["tags"]} | {"status": run["status"]}


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, artifacts) -> Iterator[dict[str, Any]]:
    """Start `make dev`, live three nights, and keep what the UI shows after each."""
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.test_utils import freeze_time

    require_chromium()
    root = tmp_path_factory.mktemp("ui")
    nights = Nights(root)
    dev = DagsterDev(root, nights.env())
    seen: dict[str, Any] = {"dev": dev}
    try:
        dev.wait_ready()
        instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dev.home)))
        nights.seed()

        # A missed night: the last verdict is 26 hours old.
        with freeze_time(nights.now - dt.timedelta(hours=26)):
            instance.report_runless_asset_event(dg.AssetMaterialization("launch_readiness"))
        seen["missed_freshness"] = wait_freshness(dev, "DEGRADED")

        # A failing night: 3% of the night's requests fail.
        failing = nights.night(instance, errors=60, hours_ago=4)
        seen["failing_run"] = failing.run_id
        seen["failing_freshness"] = wait_freshness(dev, "HEALTHY")
        seen["failing"] = {
            k: asset(dev, k) for k in ("launch_readiness", "metrics_history", "baseline")
        }
        seen["failing_tags"] = tags(dev, failing.run_id)
        seen["definitions"] = dev.graphql(DEFINITIONS)
        seen["failing_shots"] = screenshots(dev, root, artifacts, "not-ready")

        # Two more passing runs, then a passing night: three in a row, READY.
        nights.passing_history(2, first_hours_ago=3)
        passing = nights.night(instance, errors=0, hours_ago=1)
        seen["passing_run"] = passing.run_id
        seen["passing"] = {k: asset(dev, k) for k in ("launch_readiness", "metrics_history")}
        seen["passing_tags"] = tags(dev, passing.run_id)
        seen["passing_shots"] = screenshots(dev, root, artifacts, "ready")
        instance.dispose()
    except BaseException:
        dev.kill()
        raise
    yield seen
    # The last test stops it on purpose; after a failure (or -x) nothing may be left running.
    dev.kill()


def screenshots(dev: DagsterDev, root: Path, artifacts: Path, night: str) -> dict[str, str]:
    """The asset graph, the Runs list and the verdict's page, as text and as kept screenshots."""
    with chromium() as browser:
        return _screenshots(browser, dev, root, artifacts, night)


def _screenshots(
    browser, dev: DagsterDev, root: Path, artifacts: Path, night: str
) -> dict[str, str]:
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    out = {}
    try:
        for name, path, wait_for in (
            ("graph", "/locations/kgents_pipeline/asset-groups/verdict", "launch_readiness"),
            ("runs", "/runs", "kgents/verdict"),
            (
                "asset",
                "/assets/launch_readiness",
                "blocked by" if night == "not-ready" else "every rule passes",
            ),
        ):
            page.goto(dev.url + path)
            page.get_by_text(wait_for).first.wait_for(timeout=60_000)
            # Node statuses and check results load after the page itself.
            page.wait_for_function(
                "() => !document.body.innerText.includes('Loading...')", timeout=60_000
            )
            page.wait_for_timeout(1000)
            skip = page.get_by_role("button", name="Skip")  # the community dialog, first visit
            if skip.count():
                skip.first.click()
                page.wait_for_timeout(500)
            png = root / f"ui-{night}-{name}.png"
            page.screenshot(path=str(png))
            keep(png, artifacts)
            out[name] = page.inner_text("body")
    finally:
        page.close()
    return out


# After a missed night -----------------------------------------------------------------------


def test_a_missed_night_shows_the_verdict_as_stale(ui):
    assert ui["missed_freshness"] == "DEGRADED"


# After a failing night ----------------------------------------------------------------------


def test_a_not_ready_night_is_a_red_error_check_on_launch_readiness(ui):
    launch_ready = check(ui["failing"]["launch_readiness"], "launch_ready")
    execution = launch_ready["executionForLatestMaterialization"]
    assert execution["status"] == "FAILED" and execution["runId"] == ui["failing_run"]
    assert execution["evaluation"] == {"severity": "ERROR", "success": False}
    assert launch_ready["blocking"] is False  # the history row is written whatever the state


def test_a_not_ready_night_tags_its_run_with_the_state(ui):
    assert ui["failing_tags"]["kgents/verdict"] == "NOT_READY"
    assert ui["failing_tags"]["status"] == "SUCCESS"  # the steps ran; the tag tells the verdict
    assert "kgents/verdict: NOT_READY" in ui["failing_shots"]["runs"]


def test_the_state_and_blocking_rules_open_the_verdicts_metadata(ui):
    entries = list(metadata(ui["failing"]["launch_readiness"]).values())
    assert entries[0]["label"] == "verdict"
    assert entries[0]["text"].startswith("NOT_READY: blocked by slo.error_rate")
    assert entries[1]["label"] == "blocking"
    assert entries[2]["label"] == "report_html" and Path(entries[2]["path"]).is_file()
    assert "NOT_READY: blocked by slo.error_rate" in ui["failing_shots"]["asset"]


def test_the_failing_runs_slo_check_is_an_error_too(ui):
    error_rate = check(ui["failing"]["metrics_history"], "error_rate_below_1pct")
    assert error_rate["executionForLatestMaterialization"]["evaluation"] == {
        "severity": "ERROR",
        "success": False,
    }


def test_row_counts_count_history_rows_and_points_have_their_own_name(ui):
    history = metadata(ui["failing"]["metrics_history"])
    assert history["dagster/row_count"]["intValue"] == 5  # 4 seeded runs + the night's
    assert history["dagster/table_name"]["text"] == "metrics.main.runs"
    assert history["raw_points_this_run"]["intValue"] == 4000  # 2,000 requests x 2 metrics
    assert history["raw_points_in_history"]["intValue"] == 5 * 4000
    columns = {c["name"]: c["type"] for c in history["dagster/column_schema"]["schema"]["columns"]}
    assert columns["p95_ms"] == "DOUBLE" and columns["started_at"] == "TIMESTAMP WITH TIME ZONE"
    trend = metadata(ui["failing"]["baseline"])
    assert trend["dagster/table_name"]["text"] == "metrics.main.baseline_trend"
    assert trend["dagster/row_count"]["intValue"] == 5
    assert {"run_id", "p95_ms", "error_rate", "valid"} <= {
        c["name"] for c in trend["dagster/column_schema"]["schema"]["columns"]
    }
    verdicts = metadata(ui["failing"]["launch_readiness"])
    assert verdicts["dagster/row_count"]["intValue"] == 1  # one recorded verdict


def test_every_asset_check_job_schedule_and_sensor_is_described_and_owned(ui):
    defs = ui["definitions"]
    for node in defs["assetNodes"]:
        assert node["description"], node["assetKey"]
        assert node["owners"] == [{"team": "platform"}], node["assetKey"]
    for key in ("launch_readiness", "metrics_history"):
        for c in ui["failing"][key]["assetChecksOrError"]["checks"]:
            assert c["description"], c["name"]
    [location] = defs["workspaceOrError"]["locationEntries"]
    [repo] = location["locationOrLoadError"]["repositories"]
    described = repo["jobs"] + repo["schedules"] + repo["sensors"]
    # Jobs Dagster makes itself (named __...) are not ours to describe.
    assert not [d["name"] for d in described if not d["description"] and d["name"][:2] != "__"]
    assert {"launch_readiness_job", "nightly_launch_readiness", "notify_on_verdict_change"} <= {
        d["name"] for d in described
    }


def test_a_verdict_fresh_from_tonight_is_not_stale(ui):
    assert ui["failing_freshness"] == "HEALTHY"


# After a passing night ----------------------------------------------------------------------


def test_a_ready_night_passes_the_check_and_tags_its_run_ready(ui):
    execution = check(ui["passing"]["launch_readiness"], "launch_ready")[
        "executionForLatestMaterialization"
    ]
    assert execution["status"] == "SUCCEEDED" and execution["runId"] == ui["passing_run"]
    assert ui["passing_tags"]["kgents/verdict"] == "READY"
    assert ui["passing_tags"]["kgents/rehearsal"] == "false"
    entries = metadata(ui["passing"]["launch_readiness"])
    assert entries["verdict"]["text"] == "READY: every rule passes"
    assert "kgents/verdict: READY" in ui["passing_shots"]["runs"]
    assert metadata(ui["passing"]["metrics_history"])["dagster/row_count"]["intValue"] == 8


# make dev stops -----------------------------------------------------------------------------


def test_make_dev_stops_on_sigterm_within_10_s_children_included(ui):
    dev = ui["dev"]
    assert len(dev.tree()) >= 5  # make, the wrapper, dg dev, webserver, daemon, code server
    assert dev.stop("sigterm") < 10
