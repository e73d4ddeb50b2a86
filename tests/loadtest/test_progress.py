"""k6's console output quieted for the Dagster log: banner out, progress every 10 s of the test,
everything else through."""

from __future__ import annotations

from kgents_pipeline.loadtest.progress import K6Progress

BANNER = [
    "         /\\      Grafana   /‾‾/",
    "    /\\  /  \\     |\\  __   /  /",
    "   /  \\/    \\    | |/ /  /   ‾‾\\",
    "  /          \\   |   (  |  (‾)  |",
    " / __________ \\  |_|\\_\\  \\_____/",
]
OPTIONS = [
    "     execution: local",
    "     scenarios: (100.00%) 1 scenario, 200 max VUs, 35s max duration (incl. graceful stop):",
    "              * health: 100.00 iterations/s for 30s (maxVUs: 10-200, gracefulStop: 5s)",
]


def k6_console(seconds: int = 30) -> list[str]:
    """What k6 v1.1 prints for a `seconds`-long constant-arrival-rate run, in its format."""
    lines = ["k6 1.1.0: 100 req/s for 30s against http://127.0.0.1:1 (demo); run r1"]
    lines += BANNER + OPTIONS
    for s in range(1, seconds + 1):
        lines.append(
            f"running (00m{s:02d}.0s), 00/10 VUs, {s * 100} complete and 0 interrupted iterations"
        )
        lines.append(
            f"health   [ {100 * s // seconds:3d}% ] 00/10 VUs  {s:02d}.0s/30s  100.00 iters/s"
        )
    lines.append('time="..." level=warning msg="Request Failed" error="connection refused"')
    lines.append(
        f"running ({seconds:02d}.0s), 00/10 VUs, {seconds * 100} complete and 0 interrupted iterations"
    )
    lines.append("health ✓ [ 100% ] 00/10 VUs  30s  100.00 iters/s")
    lines.append("k6 exit 0: k6 finished and every threshold passed")
    return lines


def test_banner_and_per_second_progress_are_dropped_and_progress_told_every_10_s():
    told: list[str] = []
    quiet = K6Progress(told.append)
    console = k6_console()
    for line in console:
        quiet(line)
    assert not [t for t in told if "Grafana" in t or t.startswith(("running (", "health "))]
    progress = [t for t in told if t.startswith("k6 progress at")]
    assert [p.split(":")[0] for p in progress] == [
        "k6 progress at 10 s",
        "k6 progress at 20 s",
        "k6 progress at 30 s",
    ]
    assert "1000 complete and 0 interrupted iterations" in progress[0]
    assert told[-2].startswith("k6 finished at 30 s: 3000 complete")
    # What is not progress or banner passes through untouched: our lines, options, warnings.
    assert told[0] == console[0] and told[1:4] == OPTIONS and told[-1] == console[-1]
    assert any("level=warning" in t for t in told)
    assert len(told) < len(console) // 5
