"""The HTML report launch_readiness writes, opened in Debian's Chromium: the state, every rule
and the chart are visible, and the page asks for nothing beyond itself."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from kgents_pipeline.history.store import open_history
from kgents_pipeline.verdict.report import write_report_files
from kgents_pipeline.verdict.rules import RULE_IDS
from kgents_pipeline.verdict.usecase import evaluate_history
from tests.ui.conftest import keep, require_chromium
from tests.verdict.synth import history, signed_checklist, verification

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.mark.parametrize(
    ("night", "state"), [("not-ready", "NOT_READY"), ("ready", "READY")], ids=str
)
def test_the_report_shows_state_rules_and_chart_and_loads_nothing_from_outside(
    tmp_path: Path, browser, artifacts, night: str, state: str
):
    db, archive = tmp_path / "metrics.duckdb", tmp_path / "k6"
    last = {"errors": 60, "latency_ms": 30} if night == "not-ready" else {}
    history(db, archive, [{}] * 4 + [last], start=NOW - dt.timedelta(hours=5))
    verification(db, NOW - dt.timedelta(minutes=30))
    checklist = signed_checklist(tmp_path / "checklist.yaml")
    verdict, _ = evaluate_history(open_history(db), checklist=str(checklist), record=False)
    assert str(verdict.state) == state
    _, latest = write_report_files(verdict, tmp_path / "reports")

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requested: list[str] = []

    def only_the_page(route):
        requested.append(route.request.url)
        if route.request.url.startswith(("file://", "data:")):
            route.continue_()
        else:
            route.abort()

    page.route("**/*", only_the_page)
    try:
        page.goto(latest.as_uri())
        assert page.locator("#state").inner_text() == state
        assert page.locator("#state").is_visible() and page.locator("#blocking").is_visible()
        for rule in RULE_IDS:
            row = page.locator(f"#rules tr[data-rule='{rule}']")
            assert row.is_visible(), rule
        chart = page.locator("#trend-chart")
        chart.scroll_into_view_if_needed()
        assert chart.is_visible()
        width = chart.evaluate("img => img.complete ? img.naturalWidth : 0")
        assert width >= 700  # decoded, at the size it was drawn to be read
        if state == "NOT_READY":
            assert "slo.error_rate (NOT_READY)" in page.locator("#blocking").inner_text()
        shot = tmp_path / f"report-{night}.png"
        page.screenshot(path=str(shot), full_page=True)
        keep(shot, artifacts)
    finally:
        page.close()
    assert [u for u in requested if not u.startswith(("file://", "data:"))] == []
    assert requested and requested[0] == latest.as_uri()


def test_without_chromium_the_page_tests_fail_and_say_what_to_install(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        require_chromium(str(tmp_path / "no-chromium"))
