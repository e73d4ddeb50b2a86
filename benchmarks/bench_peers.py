"""Benchmark: our NetworkPolicy engine next to cyclonus and np-guard's NCA, one table.

For each size (pods x policies) one generated cluster is written as YAML; each tool runs on it as
its own process (alternated between tools, repeated where time allows), timed wall-clock, with
its peak resident set (VmHWM, polled). Agreement is ours against each peer over every answer
(ordered pod pair x declared destination port), with the disagreements explained by the
documented deviation rules of benchmarks/peers/peers_compare.py. A peer that does not finish within
--timeout is reported as a time-out, not left out. Needs `make peers`.

Run: .venv/bin/python benchmarks/bench_peers.py [--sizes 200x30,2000x300,20000x3000]
     [--runs 3] [--timeout 600]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
import peers_build as tools
import peers_compare as compare
import peers_generate as generate

from kgents_pipeline.netpol.loading import cluster_from_objects


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="200x30,2000x300,20000x3000")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool where a run takes < 60 s")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument(
        "--sample-dsts", type=int, default=20, help="destinations sampled when cyclonus times out"
    )
    args = ap.parse_args()
    try:
        tools.require()
    except tools.PeersMissing as exc:
        print(exc)
        return 1
    versions = f"cyclonus {tools.version(tools.CYCLONUS_MODULE)}, NCA {tools.nca_version()}"
    print(f"peers: {versions}; np-guard netpol-analyzer: not served by the Go module proxy here")
    with tempfile.TemporaryDirectory(prefix="bench-peers-warm-") as tmp:
        # Untimed: compiled bytecode written, binaries in the page cache.
        warm = generate.write(generate.generate(20, 4, args.seed), Path(tmp) / "cluster")
        universe = compare.Universe.of(compare.load_objects([warm]))
        for tool in compare.TOOLS:
            compare.run_tool(tool, warm, universe, args.timeout)
    rows = []
    budget_ok = True
    for size in args.sizes.split(","):
        n_pods, n_policies = (int(x) for x in size.split("x"))
        with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
            objects = generate.generate(n_pods, n_policies, args.seed)
            cluster_dir = generate.write(objects, Path(tmp) / "cluster")
            objects = compare.load_objects([cluster_dir])
            universe = compare.Universe.of(objects)
            # In-process figure against the DESIGN.md budget: parse + index + full matrix.
            t0 = time.perf_counter()
            cluster_from_objects(objects).matrix()
            in_process = time.perf_counter() - t0
            runs: dict[str, list[compare.Run]] = {t: [] for t in compare.TOOLS}
            stopped: set[str] = set()
            for i in range(args.runs):
                for tool in compare.TOOLS if i % 2 == 0 else reversed(compare.TOOLS):
                    if tool in stopped:
                        continue
                    run = compare.run_tool(tool, cluster_dir, universe, args.timeout)
                    runs[tool].append(run)
                    if run.status != "ok" or run.seconds > 60:
                        stopped.add(tool)  # one run is all the time allows
            ours = runs["ours"][0]
            if runs["cyclonus"][-1].status == "timeout":
                # No full answer in time: a sample of destinations (all sources, all their
                # ports) for agreement, and its time scaled up as an estimate of the full run.
                stride = max(1, len(universe.pods) // args.sample_dsts)
                sample = compare.run_tool("cyclonus", cluster_dir, universe, args.timeout, stride)
                sample.tool = f"cyclonus 1/{stride}"
                runs[sample.tool] = [sample]
            ratios = []
            ours_secs = statistics.median(r.seconds for r in runs["ours"])
            for tool, tool_runs in runs.items():
                done = [r for r in tool_runs if r.status == "ok"]
                last = tool_runs[-1]
                if done:
                    secs = statistics.median(r.seconds for r in done)
                    rss = max(r.max_rss_mb for r in done)
                    when = f"median of {len(done)}" if len(done) > 1 else "1 run"
                else:
                    secs, rss, when = last.seconds, last.max_rss_mb, last.status
                agreement = "-"
                if tool != "ours" and done and ours.answers is not None:
                    answers = done[0].answers
                    explainer = compare.Explainer(objects, universe, rows=list(answers))
                    ag = compare.compare("ours", ours.answers, tool.split()[0], answers, explainer)
                    agreement = (
                        f"{ag.agree / ag.total:.2%} of {ag.total:,}; unexplained {ag.unexplained:,}"
                    )
                    if ag.unexplained:
                        budget_ok = False
                    for label, n in ag.classes.most_common():
                        agreement += f"\n{'':46}{n:>12,}  {label}"
                elif tool != "ours":
                    agreement = "n/a (no answers)"
                if " 1/" in tool and done:
                    stride = int(tool.split("/")[1])
                    when = f"est. full {secs * stride:,.0f} s"
                rows.append((size, tool, secs, rss, when, agreement))
                if tool in ("cyclonus", "nca"):
                    ratio = f"{tool} {secs / ours_secs:.1f}x" if done else ""
                    if last.status == "timeout":
                        ratio = f"{tool} > {secs / ours_secs:.0f}x (time-out)"
                    elif not done:
                        ratio = f"{tool}: {last.status}"
                    ratios.append(ratio)
            ours_row = next(r for r in rows if r[0] == size and r[1] == "ours")
            print(
                f"\n{size}: {len(universe.pods):,} pods, {len(universe.rows):,} (dst, port) rows; "
                f"ours in-process parse+index+matrix {in_process:.2f} s; ours faster than: "
                + "; ".join(ratios),
                flush=True,
            )
            if n_pods >= 20000 and (in_process > 10 or ours_row[3] > 2048):
                budget_ok = False
    print(
        f"\n{'size':11} {'tool':15} {'time s':>8} {'peak MB':>8}  {'runs':16} agreement with ours"
    )
    for size, tool, secs, rss, when, agreement in rows:
        print(f"{size:11} {tool:15} {secs:8.2f} {rss:8.1f}  {when:16} {agreement}")
    return 0 if budget_ok else 1


if __name__ == "__main__":
    sys.exit(main())
