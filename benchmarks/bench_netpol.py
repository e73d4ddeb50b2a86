"""Benchmark: full reachability matrix on declared ports for 2,000 pods x 300 NetworkPolicies.

Run: .venv/bin/python benchmarks/bench_netpol.py [--pods N] [--policies N] [--seed N]
Budget (README: budgets): <= 10 s on the 2-core machine. Reports the median of 3 runs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from kgents_pipeline.netpol.engine import Cluster, Endpoint
from kgents_pipeline.netpol.model import parse_namespace, parse_network_policy, parse_pod

PORTS = [("http", 8080), ("metrics", 9090), ("grpc", 50051), ("admin", 8443), ("dns", 53)]


def generate(
    n_pods: int, n_policies: int, seed: int, unique: bool = False
) -> tuple[list[dict], list[dict], list[dict]]:
    rng = random.Random(seed)
    tiers = ["frontend", "backend", "data", "ops"]
    namespaces = [
        {
            "kind": "Namespace",
            "metadata": {
                "name": f"ns-{i}",
                "labels": {"tier": rng.choice(tiers), "team": f"t{i % 5}"},
            },
        }
        for i in range(20)
    ]
    pods: list[dict] = []
    apps = []
    app = 0
    while len(pods) < n_pods:
        ns = f"ns-{rng.randrange(20)}"
        labels = {"app": f"app-{app}", "role": rng.choice(["api", "worker", "db", "cache"])}
        if rng.random() < 0.5:
            labels["version"] = rng.choice(["v1", "v2"])
        ports = rng.sample(PORTS, rng.randint(1, 3))
        apps.append((ns, labels))
        for r in range(min(rng.randint(3, 17), n_pods - len(pods))):
            n = len(pods)
            pods.append(
                {
                    "kind": "Pod",
                    "metadata": {
                        "name": f"app-{app}-{r}",
                        "namespace": ns,
                        # --unique: a per-pod label (as StatefulSets add) defeats the classes
                        "labels": {**labels, "pod": f"p{n}"} if unique else labels,
                    },
                    "spec": {
                        "containers": [
                            {
                                "name": "c",
                                "ports": [{"name": pn, "containerPort": pp} for pn, pp in ports],
                            }
                        ]
                    },
                    "status": {"podIP": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"},
                }
            )
        app += 1

    def selector() -> dict:
        kind = rng.random()
        if kind < 0.15:
            return {}
        if kind < 0.55:
            return {"matchLabels": {"app": rng.choice(apps)[1]["app"]}}
        if kind < 0.8:
            return {
                "matchExpressions": [
                    {
                        "key": "role",
                        "operator": rng.choice(["In", "NotIn"]),
                        "values": rng.sample(["api", "worker", "db", "cache"], 2),
                    }
                ]
            }
        return {
            "matchExpressions": [
                {"key": "version", "operator": rng.choice(["Exists", "DoesNotExist"])}
            ]
        }

    def peer() -> dict:
        kind = rng.random()
        if kind < 0.3:
            return {"podSelector": selector()}
        if kind < 0.55:
            return {"namespaceSelector": {"matchLabels": {"tier": rng.choice(tiers)}}}
        if kind < 0.85:
            return {
                "namespaceSelector": {"matchLabels": {"team": f"t{rng.randrange(5)}"}},
                "podSelector": selector(),
            }
        return {"ipBlock": {"cidr": "10.0.0.0/16", "except": [f"10.0.{rng.randrange(8)}.0/24"]}}

    def ports() -> list[dict]:
        out = []
        for _ in range(rng.randint(0, 2)):
            kind = rng.random()
            if kind < 0.4:
                out.append({"port": rng.choice(PORTS)[1]})
            elif kind < 0.7:
                out.append({"port": rng.choice(PORTS)[0]})
            elif kind < 0.9:
                lo = rng.choice([8000, 9000, 50000])
                out.append({"port": lo, "endPort": lo + rng.randint(0, 1000)})
            else:
                out.append({"protocol": "UDP", "port": 53})
        return out

    def rules(peer_field: str) -> list[dict]:
        out = []
        for _ in range(rng.randint(0, 3)):
            rule: dict = {}
            if rng.random() < 0.9:
                rule[peer_field] = [peer() for _ in range(rng.randint(1, 3))]
            p = ports()
            if p:
                rule["ports"] = p
            out.append(rule)
        return out

    policies = []
    for i in range(n_policies):
        types = rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"], None])
        spec: dict = {"podSelector": selector(), "ingress": rules("from")}
        if types is None or "Egress" in types:
            spec["egress"] = rules("to")
        if types is not None:
            spec["policyTypes"] = types
        policies.append(
            {
                "kind": "NetworkPolicy",
                "metadata": {"name": f"np-{i}", "namespace": f"ns-{rng.randrange(20)}"},
                "spec": spec,
            }
        )
    return namespaces, pods, policies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pods", type=int, default=2000)
    ap.add_argument("--policies", type=int, default=300)
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--unique", action="store_true", help="a per-pod label: one class per pod")
    args = ap.parse_args()
    namespaces, pods, policies = generate(args.pods, args.policies, args.seed, args.unique)
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        cluster = Cluster(
            [parse_namespace(n) for n in namespaces],
            [parse_pod(p) for p in pods],
            [parse_network_policy(p) for p in policies],
        )
        matrix = cluster.matrix()
        allowed, total = matrix.count_allowed_pairs()
        times.append(time.perf_counter() - t0)
    # What `policy reach` without --queries adds: one explanation per (src class, dst class, port).
    t0 = time.perf_counter()
    explained = 0
    for dst in cluster.classes:
        d = Endpoint(pod=dst.pods[0])
        for proto, port in matrix.masks[dst.index]:
            for src in cluster.classes:
                r = cluster.explain(Endpoint(pod=src.pods[-1]), d, port, proto)
                if src is not dst or len(src.pods) > 1:
                    assert r.allowed == matrix.allowed(src.pods[-1], dst.pods[0], port, proto)
                explained += 1
    explain_s = time.perf_counter() - t0
    print(
        f"pods={len(pods)} policies={len(policies)} classes={len(cluster.classes)} seed={args.seed}"
    )
    print(f"(src, dst, declared port) answers: {total:,} of which allowed {allowed:,}")
    print(
        f"full matrix, parse + index + compute: median {statistics.median(times):.3f} s "
        f"of {args.runs} runs {[round(t, 3) for t in times]} (budget 10 s)"
    )
    print(
        f"explanations for every class pair and port (checked against the matrix): "
        f"{explained:,} in {explain_s:.3f} s, one run"
    )


if __name__ == "__main__":
    main()
