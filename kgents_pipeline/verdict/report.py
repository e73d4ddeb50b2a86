"""The verdict as a readable report: Markdown (Dagster metadata) and a self-contained HTML page.

Both show the state, every rule with its evidence, the waivers, and the trend of p95 and error
rate over the last runs as a table and a PNG chart embedded as a base64 data URI (no external
assets). Pillow draws the chart, imported lazily.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from kgents_pipeline.errors import VerdictError
from kgents_pipeline.verdict.model import Reason, Verdict, VerdictPolicy

_MARK = {True: "pass", False: "FAIL"}


def _fmt(value: Any, nd: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{nd}f}"
    return str(value)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _result(r: Reason) -> str:
    if r.passed:
        return "pass"
    if r.waiver_id is not None:
        return f"FAIL (waived #{r.waiver_id})"
    return f"FAIL -> {r.blocks}"


def _evidence(value: Any, limit: int = 300) -> str:
    if value is None:
        return ""
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_WIDTH, _PANEL_H, _LEFT, _RIGHT, _TOP, _BOTTOM = 640, 150, 70, 16, 22, 34
_BLUE, _RED, _GREY, _INK = (74, 111, 165), (192, 57, 43), (225, 225, 225), (40, 40, 40)


def trend_chart_png(
    trend: tuple[dict[str, Any], ...] | list[dict[str, Any]], policy: VerdictPolicy | None = None
) -> bytes | None:
    """p95 (ms) and error rate (%) per run, oldest to newest, each panel with its SLO limit
    (`policy.p95_limit_ms`, `policy.error_rate_limit`); invalid runs hollow red. None when there
    is nothing to plot.

    Drawn with Pillow: matplotlib costs ~1.6 s of import on every job run for two line plots.
    """
    if not trend:
        return None
    from PIL import Image, ImageDraw, ImageFont

    policy = policy or VerdictPolicy()

    font = ImageFont.load_default(size=11)
    height = 2 * _PANEL_H + _BOTTOM
    image = Image.new("RGB", (_WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    n = len(trend)
    plot_w = _WIDTH - _LEFT - _RIGHT

    def x_of(i: int) -> float:
        return _LEFT + (plot_w * (i + 0.5) / n)

    panels = (
        ("p95_ms", "p95 ms (successful)", 1.0, policy.p95_limit_ms, "{:.1f}"),
        ("error_rate", "error rate %", 100.0, policy.error_rate_limit * 100.0, "{:.2f}"),
    )
    for index, (key, title, scale, limit, fmt) in enumerate(panels):
        top = index * _PANEL_H + _TOP
        bottom = (index + 1) * _PANEL_H - 8
        values = [None if t[key] is None else t[key] * scale for t in trend]
        present = [v for v in values if v is not None]
        # Scale to the data; the limit line is drawn only when it is within reach, else named.
        y_max = max([*present, 0.0]) * 1.2 or 1.0
        if limit <= y_max * 1.5:
            y_max = max(y_max, limit * 1.1)

        def y_of(v: float, top: int = top, bottom: int = bottom, y_max: float = y_max) -> float:
            return bottom - (bottom - top) * v / y_max

        draw.text((_LEFT, top - 16), title, fill=_INK, font=font)
        for frac in (0.0, 0.5, 1.0):
            y = y_of(y_max * frac)
            draw.line([(_LEFT, y), (_WIDTH - _RIGHT, y)], fill=_GREY)
            draw.text((4, y - 6), fmt.format(y_max * frac), fill=_INK, font=font)
        if limit <= y_max:
            y = y_of(limit)
            for x in range(_LEFT, _WIDTH - _RIGHT, 8):
                draw.line([(x, y), (min(x + 4, _WIDTH - _RIGHT), y)], fill=_RED)
        else:
            note = f"limit {limit:g}{'%' if key == 'error_rate' else ' ms'} (off scale)"
            draw.text((_WIDTH - _RIGHT - 130, top - 16), note, fill=_RED, font=font)
        points = [
            (x_of(i), y_of(v), t["valid"])
            for i, (v, t) in enumerate(zip(values, trend, strict=True))
            if v is not None
        ]
        if len(points) > 1:
            draw.line([(x, y) for x, y, _ in points], fill=_BLUE, width=1)
        for px, py, valid in points:
            box = [(px - 3, py - 3), (px + 3, py + 3)]
            if valid:
                draw.ellipse(box, fill=_BLUE)
            else:
                draw.ellipse(box, outline=_RED, width=2)
        draw.rectangle([(_LEFT, top), (_WIDTH - _RIGHT, bottom)], outline=_INK)
    every = max(1, n // 8)  # at most ~8 run labels along the bottom
    for i in range(0, n, every):
        draw.text(
            (x_of(i) - 18, height - _BOTTOM + 8), str(trend[i]["run_id"])[-6:], fill=_INK, font=font
        )
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def chart_data_uri(verdict: Verdict) -> str | None:
    """The trend chart with the limits of the policy the verdict was evaluated with."""
    png = trend_chart_png(verdict.trend, verdict.policy)
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode()


def render_markdown(verdict: Verdict, *, chart: bool = True) -> str:
    """The report as Markdown (rendered by the Dagster UI)."""
    rehearsal = " (rehearsal)" if verdict.rehearsal else ""
    lines = [
        f"# Launch readiness: **{verdict.state}**{rehearsal}",
        "",
        f"- evaluated at: {verdict.evaluated_at.isoformat(timespec='seconds')}",
        f"- latest run: {verdict.latest_run_id or '-'}",
        f"- inputs sha256: `{verdict.inputs_sha256[:16]}...`",
        "",
        "## Rules",
        "",
        "| rule | result | message | observed | limit |",
        "|---|---|---|---|---|",
    ]
    for r in verdict.reasons:
        cells = [r.rule, _result(r), r.message, _evidence(r.observed, 200), _evidence(r.limit, 120)]
        lines.append(
            "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
        )
    lines += ["", "## Waivers", ""]
    if verdict.waivers:
        lines += [
            "| id | rule | until | by | reason | active | applied |",
            "|---|---|---|---|---|---|---|",
        ]
        for w in verdict.waivers:
            lines.append(
                f"| {w['waiver_id']} | {w['rule']} | {w['until'][:16]} | {w['by']} | "
                f"{w['reason']}{' (' + w['note'] + ')' if w['note'] else ''} | {w['active']} | {w['applied']} |"
            )
    else:
        lines.append("none")
    lines += ["", f"## Trend (last {len(verdict.trend)} runs)", ""]
    if verdict.trend:
        lines += [
            "| run | started | target | p95 ms | error rate | req/s | valid |",
            "|---|---|---|---|---|---|---|",
        ]
        for t in verdict.trend:
            lines.append(
                f"| {t['run_id']} | {t['started_at']} | {t['target_kind']} | {_fmt(t['p95_ms'])} | "
                f"{_rate(t['error_rate'])} | {_fmt(t['achieved_rps'])} | {t['valid']} |"
            )
        uri = chart_data_uri(verdict) if chart else None
        if uri:
            lines += ["", f"![p95 and error rate trend]({uri})"]
    else:
        lines.append("no runs")
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#222;max-width:75rem}
h1 .s{padding:.1rem .5rem;border-radius:.3rem;color:#fff}
.READY{background:#2e7d32}.NOT_READY{background:#c62828}.INSUFFICIENT_DATA{background:#ef6c00}
.INVALID_RUN{background:#6a1b9a}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
td,th{border:1px solid #ccc;padding:.25rem .5rem;font-size:.85rem;vertical-align:top;text-align:left}
tr.fail td:nth-child(2){color:#c62828;font-weight:600}tr.waived td:nth-child(2){color:#ef6c00}
code,.ev{font-family:ui-monospace,monospace;font-size:.75rem;word-break:break-all}
"""


def render_html(verdict: Verdict) -> str:
    """The report as one self-contained HTML page (inline CSS, chart as a data URI)."""
    e = html.escape
    rows = []
    for r in verdict.reasons:
        cls = "pass" if r.passed else ("waived" if r.waiver_id is not None else "fail")
        rows.append(
            f"<tr class='{cls}'><td>{e(r.rule)}</td><td>{e(_result(r))}</td><td>{e(r.message)}</td>"
            f"<td class='ev'>{e(_evidence(r.observed, 600))}</td><td class='ev'>{e(_evidence(r.limit))}</td>"
            f"<td class='ev'>{e(', '.join(r.run_ids))}</td></tr>"
        )
    waivers = "".join(
        f"<tr><td>{w['waiver_id']}</td><td>{e(w['rule'])}</td><td>{e(w['until'])}</td><td>{e(w['by'])}</td>"
        f"<td>{e(w['reason'])}{e(' (' + w['note'] + ')') if w['note'] else ''}</td>"
        f"<td>{w['active']}</td><td>{w['applied']}</td></tr>"
        for w in verdict.waivers
    )
    trend = "".join(
        f"<tr><td>{e(t['run_id'])}</td><td>{e(t['started_at'])}</td><td>{e(t['target_kind'])}</td>"
        f"<td>{_fmt(t['p95_ms'])}</td><td>{_rate(t['error_rate'])}</td><td>{_fmt(t['achieved_rps'])}</td>"
        f"<td>{t['valid']}</td></tr>"
        for t in verdict.trend
    )
    uri = chart_data_uri(verdict)
    chart = f"<img alt='p95 and error rate trend' src='{uri}'>" if uri else "<p>no runs</p>"
    rehearsal = " (rehearsal)" if verdict.rehearsal else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>kgents launch readiness: {e(str(verdict.state))}</title><style>{_CSS}</style></head>
<body>
<h1>Launch readiness: <span class="s {e(str(verdict.state))}">{e(str(verdict.state))}</span>{rehearsal}</h1>
<p>Evaluated at {e(verdict.evaluated_at.isoformat(timespec="seconds"))}; latest run
{e(verdict.latest_run_id or "-")}; inputs sha256 <code>{e(verdict.inputs_sha256)}</code></p>
<h2>Rules</h2>
<table><tr><th>rule</th><th>result</th><th>message</th><th>observed</th><th>limit</th><th>runs</th></tr>
{"".join(rows)}</table>
<h2>Waivers</h2>
{"<table><tr><th>id</th><th>rule</th><th>until</th><th>by</th><th>reason</th><th>active</th><th>applied</th></tr>" + waivers + "</table>" if waivers else "<p>none</p>"}
<h2>Trend (last {len(verdict.trend)} runs)</h2>
{chart}
<table><tr><th>run</th><th>started</th><th>target</th><th>p95 ms</th><th>error rate</th><th>req/s</th><th>valid</th></tr>
{trend}</table>
</body></html>
"""


def write_html(verdict: Verdict, out: str | Path) -> Path:
    """Write the HTML report (creating its folder); any OS error is one line naming the file."""
    path = Path(out)
    page = render_html(verdict)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page)
    except OSError as exc:
        raise VerdictError(
            f"cannot write the report to {path}: {exc.strerror or type(exc).__name__}"
        ) from None
    return path


def render_table(verdict: Verdict) -> str:
    """Plain-text table for `verdict --format table`."""
    rehearsal = " (rehearsal)" if verdict.rehearsal else ""
    out = [
        f"verdict: {verdict.state}{rehearsal}   evaluated at {verdict.evaluated_at.isoformat(timespec='seconds')}"
    ]
    width = max(len(r.rule) for r in verdict.reasons)
    for r in verdict.reasons:
        status = _result(r)
        out.append(f"  {r.rule:<{width}}  {status:<28}  {r.message}")
    for w in verdict.waivers:
        state = "active" if w["active"] else "inactive"
        out.append(
            f"  waiver #{w['waiver_id']} {w['rule']} until {w['until'][:16]} by {w['by']} ({state}): {w['reason']}"
        )
    out.append(f"inputs sha256 {verdict.inputs_sha256}")
    return "\n".join(out)
