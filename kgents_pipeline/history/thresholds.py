"""k6 thresholds judged again over raw points: the same expressions the script declares
(`metric{tag:value}` -> `p(95)<500`, `rate<0.01`, ...), evaluated in DuckDB over whatever points
they are given, such as the union of every runner's points of one run.

k6's own evaluation happens per process: with N runners each judges only its own share, and a
p95 over the whole test is nobody's. Here the aggregation is exact over the union: `p(N)` is
linear interpolation between closest ranks, as k6's trend sink computes it (DuckDB's
`quantile_cont`); a Rate's `rate` is the fraction of non-zero samples; a Counter's `count` is
the sum of its samples and its `rate` that sum per second of the test.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import duckdb

from kgents_pipeline.errors import HistoryError

# The tags raw points keep in `run_points` (ingest's explicit columns) and their column names.
TAG_COLUMNS = {
    "status": "status",
    "expected_response": "expected_response",
    "error_code": "error_code",
    "scenario": "scenario",
    "name": "name",
    "check": "check_name",
}
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "===": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_EXPR = re.compile(
    r"^\s*(?P<agg>p\(\s*(?P<pct>\d+(?:\.\d+)?)\s*\)|avg|min|max|med|count|rate|value)\s*"
    r"(?P<op><=|>=|===|==|!=|<|>)\s*(?P<limit>[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$"
)
_METRIC = re.compile(r"^(?P<name>[^{}]+?)(?:\{(?P<tags>.*)\})?$")


@dataclass(frozen=True)
class Threshold:
    """One threshold expression on one (sub)metric."""

    metric: str  # as the script names it: 'http_req_duration{expected_response:true}'
    expression: str  # 'p(95)<500'
    name: str  # the metric: 'http_req_duration'
    tags: tuple[tuple[str, str], ...]  # the submetric's tag filter
    aggregation: str  # 'p(95)', 'avg', 'rate', ...
    percentile: float | None
    op: str
    limit: float


@dataclass(frozen=True)
class ThresholdOutcome:
    metric: str
    expression: str
    ok: bool
    observed: float | None  # the aggregate over the points (None: no point at all)
    samples: int


def parse_threshold(metric: str, expression: str) -> Threshold:
    """A threshold as k6 writes it; `HistoryError` for anything k6 would not accept either."""
    m = _METRIC.match(metric.strip())
    if not m:
        raise HistoryError(f"threshold metric {metric!r}: not `name` or `name{{tag:value}}`")
    tags: list[tuple[str, str]] = []
    for part in filter(None, (p.strip() for p in (m["tags"] or "").split(","))):
        key, sep, value = part.partition(":")
        if not sep:
            raise HistoryError(f"threshold metric {metric!r}: tag {part!r} is not `key:value`")
        tags.append((key.strip(), value.strip()))
    e = _EXPR.match(expression)
    if not e:
        raise HistoryError(f"threshold {metric}: cannot parse {expression!r}")
    pct = float(e["pct"]) if e["pct"] is not None else None
    agg = f"p({e['pct']})" if pct is not None else e["agg"]
    return Threshold(
        metric, expression, m["name"].strip(), tuple(tags), agg, pct, e["op"], float(e["limit"])
    )


def _aggregate_sql(t: Threshold, metric_type: str) -> str:
    if t.percentile is not None:
        return f"quantile_cont(value, {t.percentile / 100.0!r})"
    if metric_type == "trend":
        return {
            "avg": "avg(value)",
            "min": "min(value)",
            "max": "max(value)",
            "med": "quantile_cont(value, 0.5)",
        }.get(t.aggregation, "")
    if metric_type == "rate" and t.aggregation == "rate":
        return "avg(CASE WHEN value <> 0 THEN 1.0 ELSE 0.0 END)"
    # A counter with no sample counted nothing (k6 even omits dropped_iterations when zero).
    if metric_type == "counter" and t.aggregation == "count":
        return "coalesce(sum(value), 0)"
    if metric_type == "counter" and t.aggregation == "rate":
        return "coalesce(sum(value), 0) / $duration_s"
    if metric_type == "gauge" and t.aggregation == "value":
        return "arg_max(value, ts)"
    return ""


def evaluate_thresholds(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    thresholds: Mapping[str, list[str]],
    metric_types: Mapping[str, str],
    *,
    duration_s: float | None,
) -> list[ThresholdOutcome]:
    """Every threshold judged over the raw points of `run_id` in `run_points`. A threshold on a
    trend, rate or gauge with no sample, an unknown metric type or a tag the history does not
    keep fails (fail closed); a counter with no sample counted 0."""
    out: list[ThresholdOutcome] = []
    for metric, expressions in sorted(thresholds.items()):
        for expression in expressions:
            t = parse_threshold(metric, expression)
            unknown_tags = [k for k, _ in t.tags if k not in TAG_COLUMNS]
            agg = _aggregate_sql(t, metric_types.get(t.name, ""))
            if unknown_tags or not agg or ("$duration_s" in agg and not duration_s):
                out.append(ThresholdOutcome(metric, expression, False, None, 0))
                continue
            where = ["run_id = $run_id", "metric = $metric"]
            params: dict[str, object] = {"run_id": run_id, "metric": t.name}
            for i, (key, value) in enumerate(t.tags):
                where.append(f"{TAG_COLUMNS[key]} = $tag{i}")
                params[f"tag{i}"] = value
            if "$duration_s" in agg:
                params["duration_s"] = duration_s
            row = con.execute(
                f"SELECT {agg}, count(*) FROM run_points WHERE {' AND '.join(where)}", params
            ).fetchone()
            observed = None if row is None or row[0] is None else float(row[0])
            samples = int(row[1]) if row else 0
            counted = samples > 0 or agg.startswith("coalesce")
            ok = observed is not None and counted and _OPS[t.op](observed, t.limit)
            out.append(ThresholdOutcome(metric, expression, ok, observed, samples))
    return out
