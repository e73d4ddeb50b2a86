"""The verdict as a readable report: Markdown (Dagster metadata) and a self-contained HTML page.

Both show the state, every rule with its evidence, the waivers, and the trend of p95 and error
rate over the last runs as a table and a PNG chart embedded as a base64 data URI (no external
assets). Pillow draws the chart, imported lazily.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
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


# ---------------------------------------------------------------------------------------------
# Observed and limit in words: rounded figures with their units, never raw JSON.


def _num(value: float, nd: int = 1) -> str:
    """A figure rounded for people: thousands separated, `nd` decimals unless it is whole."""
    if float(value).is_integer() and abs(value) >= 10:
        return f"{int(value):,}"
    return f"{value:,.{nd}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _pct_short(value: float | None) -> str:
    """A policy's fraction as people write it: 0.2 -> 20%, 0.002 -> 0.2%."""
    return "-" if value is None else f"{value * 100:.2f}".rstrip("0").rstrip(".") + "%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{_num(value)} ms"


def _rps(value: float | None) -> str:
    return "-" if value is None else f"{_num(value)} req/s"


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{_num(value)} h"


def _yes(value: Any) -> str:
    return {True: "yes", False: "no", None: "unknown"}.get(value, str(value))


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _generic(value: Any) -> str:
    """Any evidence value as words: keys named after their unit get it (`_ms`, `rate`, `_rps`,
    `_h`); booleans are yes/no; lists are joined; long text is cut."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return _yes(value)
    if isinstance(value, float):
        return _num(value, 3 if abs(value) < 1 else 1)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return "; ".join(_generic(v) for v in value[:10]) + ("; ..." if len(value) > 10 else "")
    if isinstance(value, dict):
        parts = []
        for key, v in value.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if key.endswith("_ms"):
                    text = _ms(v)
                elif key.endswith("_rps"):
                    text = _rps(v)
                elif key.endswith("_h"):
                    text = _hours(v)
                elif key.endswith("_s"):
                    text = f"{_num(v)} s"
                elif "rate" in key or key.endswith("fraction"):
                    text = _pct(v)
                else:
                    text = _generic(v)
            else:
                text = _generic(v)
            parts.append(f"{key.replace('_', ' ')} {text}")
        return ", ".join(parts)
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _comparisons(comps: Any, what: str) -> str:
    """regression.*: each baseline compared with, as a sentence."""
    if not isinstance(comps, list) or not comps:
        return _generic(comps)
    out = []
    for c in comps:
        if not isinstance(c, dict):
            out.append(_generic(c))
            continue
        runs = c.get("run_ids") or []
        base = f"vs {c.get('baseline', 'baseline')} ({_plural(len(runs), 'run')})"
        if what == "p95":
            text = f"{base}: p95 {_ms(c.get('current_p95_ms'))} vs {_ms(c.get('baseline_p95_ms'))}"
            if c.get("diff_ms") is not None:
                text += f", {c['diff_ms']:+.1f} ms"
            if c.get("ci_low_ms") is not None and c.get("ci_high_ms") is not None:
                text += f" (CI {c['ci_low_ms']:+.1f} to {c['ci_high_ms']:+.1f} ms)"
        else:
            text = f"{base}: {_pct(c.get('current_rate'))} vs {_pct(c.get('baseline_rate'))}"
            if c.get("diff") is not None:
                text += f", {c['diff'] * 100:+.2f} points"
            if c.get("p_value") is not None:
                text += f" (p = {c['p_value']:.3f})"
        if c.get("regression"):
            text += ": regression"
        out.append(text)
    return "; ".join(out)


def _checklist_rows(rows: Any) -> str:
    if not isinstance(rows, list):
        return _generic(rows)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.get("status", "?")] = counts.get(row.get("status", "?"), 0) + 1
    text = f"{_plural(len(rows), 'item')}: " + ", ".join(f"{n} {s}" for s, n in counts.items())
    still = [f"{r['id']} ({r['priority']})" for r in rows if r.get("status") == "open"]
    return text + (f"; open: {', '.join(still)}" if still else "")


def describe_observed(r: Reason) -> str:
    """What the rule saw, in words and rounded numbers with units."""
    v = r.observed
    if v is None:
        return "-"
    if r.rule in ("slo.p95",) and isinstance(v, (int, float)):
        return f"p95 {_ms(v)}"
    if r.rule == "slo.p95" and isinstance(v, dict):
        return (
            f"{_plural(int(v.get('ok_reqs') or 0), 'successful request')} "
            f"(p95 of all requests {_ms(v.get('p95_all_ms'))})"
        )
    if r.rule == "slo.error_rate" and isinstance(v, dict):
        return (
            f"{_pct(v.get('rate'))} errors ({v.get('errors', 0):,} of {v.get('requests', 0):,} "
            f"requests); upper bound {_pct(v.get('upper_bound'))}"
        )
    if r.rule == "slo.rate" and isinstance(v, (int, float)):
        return _rps(v)
    if r.rule == "sustained" and isinstance(v, dict):
        failing = v.get("failing") or []
        text = (
            f"{_plural(int(v.get('windows') or 0), 'window')}: slowest rate "
            f"{_rps(v.get('min_rps'))}, highest p95 {_ms(v.get('max_p95_ms'))}"
        )
        if failing:
            text += "; failing at " + ", ".join(f"+{w['start_s']} s" for w in failing)
        return text
    if r.rule == "regression.p95":
        return _comparisons(v, "p95")
    if r.rule == "regression.error_rate":
        return _comparisons(v, "error")
    if r.rule == "quantity" and isinstance(v, int):
        return _plural(v, "consecutive passing run")
    if r.rule == "staleness" and isinstance(v, (int, float)):
        return f"newest valid run {_hours(v)} old"
    if r.rule == "policy" and isinstance(v, dict):
        return (
            f"{v.get('context') or '?'} verified {_hours(v.get('age_h'))} ago: passed "
            f"{_yes(v.get('passed'))}, intent holds {_yes(v.get('intent_holds'))}, "
            f"{_plural(int(v.get('drift_count') or 0), 'drifted object')}, labels ok "
            f"{_yes(v.get('labels_ok'))}, "
            f"{_plural(int(v.get('unmatched_selectors') or 0), 'unmatched selector')}, "
            f"{_plural(len(v.get('violations') or []), 'violation')}"
        )
    if r.rule == "pdb" and isinstance(v, dict):
        return f"{v.get('context') or '?'}: protects quorum {_yes(v.get('pdb_ok'))}"
    if r.rule == "checklist":
        return _checklist_rows(v)
    return _generic(v)


def describe_limit(r: Reason) -> str:
    """What the rule demands, in words and numbers with units."""
    v = r.limit
    if r.rule == "pdb" and v is None:
        return "the NATS PDB keeps a quorum of the replicas"
    if v is None:
        return "-"
    if r.rule == "slo.p95" and isinstance(v, (int, float)):
        return f"p95 below {_ms(v)}"
    if r.rule == "slo.error_rate" and isinstance(v, (int, float)):
        return f"upper bound below {_pct_short(v)}"
    if r.rule == "slo.rate" and isinstance(v, (int, float)):
        return f"at least {_rps(v)}"
    if r.rule == "sustained" and isinstance(v, dict):
        return (
            f"every {_num(v.get('window_s', 10))} s window at least {_rps(v.get('min_rps'))} "
            f"with p95 below {_ms(v.get('p95_ms'))}"
        )
    if r.rule == "regression.p95" and isinstance(v, dict):
        return (
            f"no rise above +{_pct_short(v.get('relative'))} and +{_ms(v.get('absolute_ms'))} "
            f"({_pct_short(v.get('lower_bound_confidence'))} confidence)"
        )
    if r.rule == "regression.error_rate" and isinstance(v, dict):
        absolute = float(v.get("absolute") or 0.0) * 100
        return (
            f"no rise above +{_pct_short(v.get('relative'))} relative and "
            f"+{absolute:g} points (p < {v.get('alpha')})"
        )
    if r.rule == "quantity" and isinstance(v, int):
        return f"at least {_plural(v, 'run')}"
    if r.rule == "staleness" and isinstance(v, (int, float)):
        return f"at most {_hours(v)} old"
    if r.rule == "policy" and isinstance(v, dict) and "max_age_h" not in v:
        return "verification passed, intent holds, no drift, no violation"
    if isinstance(v, dict) and set(v) == {"max_age_h"}:
        return f"verified at most {_hours(v['max_age_h'])} ago"
    if r.rule == "validity" and isinstance(v, dict):
        return (
            f"k6 exit {' or '.join(str(c) for c in v.get('exit_codes', []))}; at least "
            f"{_pct_short(v.get('min_achieved_fraction'))} of planned requests; at most "
            f"{_pct_short(v.get('max_dropped_fraction'))} dropped; at least "
            f"{_pct_short(v.get('min_duration_fraction'))} of the planned duration"
        )
    return _generic(v)


def headline(verdict: Verdict) -> str:
    """One line: the state and what blocks it (the first line people read)."""
    rehearsal = " (rehearsal)" if verdict.rehearsal else ""
    blocking = verdict.blocking
    if not blocking:
        return f"{verdict.state}{rehearsal}: every rule passes"
    return f"{verdict.state}{rehearsal}: blocked by {', '.join(r.rule for r in blocking)}"


def blocking_lines(verdict: Verdict) -> list[str]:
    """Each blocking rule: its id, what it saw against what it demands."""
    return [
        f"{r.rule} ({r.blocks}): {describe_observed(r)}; needs {describe_limit(r)}"
        for r in verdict.blocking
    ]


# Sized to be read where it is shown (the Dagster UI's Markdown view, the HTML page) without
# zooming: 14 px text, a 760 px wide image.
_WIDTH, _PANEL_H, _LEFT, _RIGHT, _TOP, _BOTTOM = 760, 150, 64, 16, 26, 44
_FONT = 14
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

    font = ImageFont.load_default(size=_FONT)
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

        draw.text((_LEFT, top - 20), title, fill=_INK, font=font)
        for frac in (0.0, 0.5, 1.0):
            y = y_of(y_max * frac)
            draw.line([(_LEFT, y), (_WIDTH - _RIGHT, y)], fill=_GREY)
            draw.text((4, y - 8), fmt.format(y_max * frac), fill=_INK, font=font)
        if limit <= y_max:
            y = y_of(limit)
            for x in range(_LEFT, _WIDTH - _RIGHT, 8):
                draw.line([(x, y), (min(x + 4, _WIDTH - _RIGHT), y)], fill=_RED)
        else:
            note = f"limit {limit:g}{'%' if key == 'error_rate' else ' ms'} (off scale)"
            draw.text((_WIDTH - _RIGHT - 190, top - 20), note, fill=_RED, font=font)
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
    every = max(1, -(-n // 6))  # at most 6 labels along the bottom: the run's start, UTC
    for i in range(0, n, every):
        draw.text((x_of(i) - 40, height - _BOTTOM + 10), _when(trend[i]), fill=_INK, font=font)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _when(row: dict[str, Any]) -> str:
    """A trend row's start as a short UTC label (month-day hour:minute)."""
    at = row.get("started_at")
    try:
        moment = at if isinstance(at, dt.datetime) else dt.datetime.fromisoformat(str(at))
    except ValueError:
        return str(row.get("run_id", ""))[-11:]
    return f"{moment:%m-%d %H:%M}"


def chart_data_uri(verdict: Verdict) -> str | None:
    """The trend chart with the limits of the policy the verdict was evaluated with."""
    png = trend_chart_png(verdict.trend, verdict.policy)
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(verdict: Verdict, *, chart: bool = True) -> str:
    """The report as Markdown (rendered by the Dagster UI): the state and what blocks it first,
    then every rule with what it saw and what it demands, in words and rounded figures."""
    rehearsal = " (rehearsal)" if verdict.rehearsal else ""
    lines = [f"# Launch readiness: **{verdict.state}**{rehearsal}", ""]
    blocking = blocking_lines(verdict)
    if blocking:
        lines += ["**Blocking:**", ""] + [f"- {line}" for line in blocking] + [""]
    else:
        lines += ["Every rule passes.", ""]
    lines += [
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
        cells = [r.rule, _result(r), r.message, describe_observed(r), describe_limit(r)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
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
        uri = chart_data_uri(verdict) if chart else None
        if uri:
            lines += [f"![p95 and error rate trend]({uri})", ""]
        lines += [
            "| run | started | target | p95 | error rate | rate | valid |",
            "|---|---|---|---|---|---|---|",
        ]
        for t in verdict.trend:
            lines.append(
                f"| {t['run_id']} | {t['started_at']} | {t['target_kind']} | {_ms(t['p95_ms'])} | "
                f"{_rate(t['error_rate'])} | {_rps(t['achieved_rps'])} | {_yes(t['valid'])} |"
            )
    else:
        lines.append("no runs")
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#222;max-width:80rem}
h1 .s{padding:.1rem .6rem;border-radius:.3rem;color:#fff}
.READY{background:#2e7d32}.NOT_READY{background:#c62828}.INSUFFICIENT_DATA{background:#ef6c00}
.INVALID_RUN{background:#6a1b9a}
.banner{padding:.75rem 1rem;border-radius:.4rem;margin:0 0 1rem;font-size:1rem}
.banner.ok{background:#e8f5e9;border:1px solid #2e7d32}
.banner.block{background:#ffebee;border:1px solid #c62828}
.banner ul{margin:.4rem 0 0;padding-left:1.2rem}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
td,th{border:1px solid #ccc;padding:.3rem .5rem;font-size:.9rem;vertical-align:top;text-align:left}
th{background:#f4f4f4}
tr.fail td:nth-child(2){color:#c62828;font-weight:600}tr.waived td:nth-child(2){color:#ef6c00}
tr.pass td:nth-child(2){color:#2e7d32}
td.num{white-space:nowrap}
code,.runs{font-family:ui-monospace,monospace;font-size:.75rem;word-break:break-all}
img.chart{max-width:100%;height:auto;border:1px solid #ddd}
"""


def render_html(verdict: Verdict) -> str:
    """The report as one self-contained HTML page (inline CSS, chart as a data URI): the state
    and what blocks it first, then every rule in words and rounded figures."""
    e = html.escape
    state = e(str(verdict.state))
    rows = []
    for r in verdict.reasons:
        cls = "pass" if r.passed else ("waived" if r.waiver_id is not None else "fail")
        rows.append(
            f"<tr class='{cls}' data-rule='{e(r.rule)}'><td>{e(r.rule)}</td><td>{e(_result(r))}</td>"
            f"<td>{e(r.message)}</td><td>{e(describe_observed(r))}</td>"
            f"<td>{e(describe_limit(r))}</td><td class='runs'>{e(', '.join(r.run_ids))}</td></tr>"
        )
    waivers = "".join(
        f"<tr><td>{w['waiver_id']}</td><td>{e(w['rule'])}</td><td>{e(w['until'])}</td><td>{e(w['by'])}</td>"
        f"<td>{e(w['reason'])}{e(' (' + w['note'] + ')') if w['note'] else ''}</td>"
        f"<td>{w['active']}</td><td>{w['applied']}</td></tr>"
        for w in verdict.waivers
    )
    trend = "".join(
        f"<tr><td class='runs'>{e(t['run_id'])}</td><td>{e(str(t['started_at']))}</td>"
        f"<td>{e(str(t['target_kind']))}</td><td class='num'>{_ms(t['p95_ms'])}</td>"
        f"<td class='num'>{_rate(t['error_rate'])}</td><td class='num'>{_rps(t['achieved_rps'])}</td>"
        f"<td>{_yes(t['valid'])}</td></tr>"
        for t in verdict.trend
    )
    uri = chart_data_uri(verdict)
    chart = (
        f"<img class='chart' id='trend-chart' alt='p95 and error rate trend' src='{uri}'>"
        if uri
        else "<p>no runs</p>"
    )
    blocking = blocking_lines(verdict)
    if blocking:
        banner = (
            "<div class='banner block' id='blocking'><strong>Blocking:</strong><ul>"
            + "".join(f"<li>{e(line)}</li>" for line in blocking)
            + "</ul></div>"
        )
    else:
        banner = "<div class='banner ok' id='blocking'>Every rule passes.</div>"
    rehearsal = " (rehearsal)" if verdict.rehearsal else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>kgents launch readiness: {state}</title><style>{_CSS}</style></head>
<body>
<h1>Launch readiness: <span class="s {state}" id="state">{state}</span>{rehearsal}</h1>
{banner}
<p>Evaluated at {e(verdict.evaluated_at.isoformat(timespec="seconds"))}; latest run
{e(verdict.latest_run_id or "-")}; inputs sha256 <code>{e(verdict.inputs_sha256)}</code></p>
<h2>Rules</h2>
<table id="rules"><tr><th>rule</th><th>result</th><th>message</th><th>observed</th><th>limit</th><th>runs</th></tr>
{"".join(rows)}</table>
<h2>Waivers</h2>
{"<table><tr><th>id</th><th>rule</th><th>until</th><th>by</th><th>reason</th><th>active</th><th>applied</th></tr>" + waivers + "</table>" if waivers else "<p>none</p>"}
<h2>Trend (last {len(verdict.trend)} runs)</h2>
{chart}
<table><tr><th>run</th><th>started</th><th>target</th><th>p95</th><th>error rate</th><th>rate</th><th>valid</th></tr>
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


LATEST_REPORT = "launch-readiness-latest.html"


def write_report_files(verdict: Verdict, directory: str | Path) -> tuple[Path, Path]:
    """The HTML report under `directory`, twice: a file named after the verdict's time (kept,
    one per evaluation) and `launch-readiness-latest.html` (a stable name, replaced whole, so a
    reader never sees half a page). Returns (timestamped, latest)."""
    folder = Path(directory)
    stamp = verdict.evaluated_at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    kept = write_html(verdict, folder / f"launch-readiness-{stamp}.html")
    latest = folder / LATEST_REPORT
    partial = folder / f".{LATEST_REPORT}.tmp"
    try:
        partial.write_text(kept.read_text())
        partial.replace(latest)
    except OSError as exc:
        raise VerdictError(
            f"cannot write the report to {latest}: {exc.strerror or type(exc).__name__}"
        ) from None
    return kept, latest


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
