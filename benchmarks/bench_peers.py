"""Benchmark: our NetworkPolicy engine next to cyclonus and np-guard's NCA, one table.

For each size (pods x policies) one generated cluster is written as YAML; each tool runs on it as
its own process (alternated between tools, repeated where time allows), timed wall-clock, with
its peak resident set (VmHWM, polled). Agreement is ours against each peer over every answer
(ordered pod pair x declared destination port), with the disagreements explained by the
documented deviation rules of benchmarks/peers/compare.py. A peer that does not finish within
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
import compare
import generate
import tools

from kgents_pipeline.netpol.loading import cluster_from_objects


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="200x30,2000x300,20000x3000")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool where a run takes < 60 s")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--seed", type=int, default=20261127)
    args = ap.parse_args()
    try:
        tools.require()
    except tools.PeersMissing as exc:
        print(exc)
        return 1
    versions = f"cyclonus {tools.version(tools.CYCLONUS_MODULE)}, NCA {tools.nca_version()}"
    print(f"peers: {versions}; np-guard netpol-analyzer: not served by the Go module proxy here")
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
            explainer = compare.Explainer(objects, universe)
            ours = runs["ours"][0]
            for tool in compare.TOOLS:
                done = [r for r in runs[tool] if r.status == "ok"]
                last = runs[tool][-1]
                if done:
                    secs = statistics.median(r.seconds for r in done)
                    rss = max(r.max_rss_mb for r in done)
                    when = f"median of {len(done)}" if len(done) > 1 else "1 run"
                else:
                    secs, rss, when = last.seconds, last.max_rss_mb, last.status
                agreement = "-"
                if tool != "ours" and done and ours.answers is not None:
                    ag = compare.compare("ours", ours.answers, tool, done[0].answers, explainer)
                    agreement = (
                        f"{ag.agree / ag.total:.2%} of {ag.total:,}; unexplained {ag.unexplained:,}"
                    )
                    for label, n in ag.classes.most_common():
                        agreement += f"\n{'':44}{n:>12,}  {label}"
                elif tool != "ours":
                    agreement = "n/a (no answers)"
                rows.append((size, tool, secs, rss, when, agreement))
            ratios = []
            ours_secs = rows[-3][2]
            for _size, tool, secs, _, when, _ in rows[-2:]:
                ratios.append(
                    f"{tool} {secs / ours_secs:.1f}x"
                    + (" (at least: time-out)" if "timeout" in when else "")
                )
            print(
                f"\n{size}: {len(universe.pods):,} pods, {len(universe.rows):,} (dst, port) rows; "
                f"ours in-process parse+index+matrix {in_process:.2f} s; ours faster than: {', '.join(ratios)}",
                flush=True,
            )
            if n_pods >= 20000 and (in_process > 10 or rows[-3][3] > 2048):
                budget_ok = False
    print(f"\n{'size':12} {'tool':9} {'time s':>9} {'peak MB':>9}  {'runs':14} agreement with ours")
    for size, tool, secs, rss, when, agreement in rows:
        print(f"{size:12} {tool:9} {secs:9.2f} {rss:9.1f}  {when:14} {agreement}")
    return 0 if budget_ok else 1


if __name__ == "__main__":
    sys.exit(main())
