"""Random clusters for the side-by-side runs: namespaces, labelled pods, NetworkPolicies.

Every shape the NetworkPolicy v1 API has appears: matchLabels, matchExpressions with In / NotIn /
Exists / DoesNotExist, empty selectors, namespaceSelector with and without podSelector, the
namespace name label, ipBlock with except (on pod IPs and outside the cluster), numbered and named
ports, endPort ranges, TCP / UDP / SCTP, ingress and egress, rules without peers or without ports,
policyTypes explicit and left to API-server defaulting. Pods carry named and numbered container
ports and `status.podIP`. Written as multi-document YAML that all three tools read.

Run: python benchmarks/peers/peers_generate.py --pods 200 --policies 30 --seed 1 --out DIR
"""

from __future__ import annotations

import argparse
import copy
import random
from pathlib import Path

import yaml

NAME_LABEL = "kubernetes.io/metadata.name"
ROLES = ["api", "worker", "db", "cache", "web"]
TIERS = ["frontend", "backend", "data", "ops"]
ENVS = ["prod", "staging"]
# (name, number, protocol): one pod declares a few of these, each under its name or unnamed.
PORTS = [
    ("http", 8080, "TCP"),
    ("metrics", 9090, "TCP"),
    ("grpc", 50051, "TCP"),
    ("admin", 8443, "TCP"),
    ("dns", 53, "UDP"),
    ("dns-tcp", 53, "TCP"),
    ("sync", 7000, "UDP"),
    ("sig", 3868, "SCTP"),
]
EXTERNAL_CIDRS = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/25"]


def pod_ip(n: int) -> str:
    """The n-th pod's address: 10.1.0.0/16 onwards, so that /24 excepts cut through apps."""
    n += 1 << 16
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def generate(n_pods: int, n_policies: int, seed: int) -> list[dict]:
    """A cluster as a list of API objects (Namespaces, then Pods, then NetworkPolicies)."""
    rng = random.Random(seed)
    n_ns = max(4, n_pods // 200)
    namespaces = []
    for i in range(n_ns):
        labels = {"tier": rng.choice(TIERS), "team": f"t{i % 7}"}
        if rng.random() < 0.7:
            labels["env"] = rng.choice(ENVS)
        namespaces.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": f"ns-{i}", "labels": labels},
            }
        )

    pods: list[dict] = []
    apps: list[tuple[str, dict[str, str], list[tuple[str, int, str]]]] = []
    while len(pods) < n_pods:
        ns = f"ns-{rng.randrange(n_ns)}"
        app = f"app-{len(apps)}"
        labels = {"app": app, "role": rng.choice(ROLES)}
        if rng.random() < 0.5:
            labels["version"] = rng.choice(["v1", "v2"])
        if rng.random() < 0.1:
            labels["canary"] = ""  # an empty label value: present, and equal to ""
        ports = rng.sample(PORTS, rng.randint(1, 3))
        ports = [p for i, p in enumerate(ports) if all(q[1:] != p[1:] for q in ports[:i])]
        apps.append((ns, labels, ports))
        # the pod template: every replica declares the same ports, named or not
        cports = []
        for name, number, proto in ports:
            cp: dict = {"containerPort": number}
            if rng.random() < 0.8 or name == "sig":
                cp["name"] = name
            if proto != "TCP" or rng.random() < 0.3:
                cp["protocol"] = proto  # TCP is the API-server default
            cports.append(cp)
        split = rng.randint(0, len(cports))  # one or two containers
        containers = [
            {"name": f"c{ci}", "image": "app:1", **({"ports": chunk} if chunk else {})}
            for ci, chunk in enumerate((cports[:split], cports[split:]))
            if chunk or ci == 0
        ]
        for r in range(min(rng.randint(1, 12), n_pods - len(pods))):
            pods.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"{app}-{r}", "namespace": ns, "labels": dict(labels)},
                    "spec": {"containers": copy.deepcopy(containers)},
                    "status": {"podIP": pod_ip(len(pods))},
                }
            )

    def pod_selector() -> dict:
        k = rng.random()
        if k < 0.1:
            return {}
        if k < 0.45:
            return {"matchLabels": {"app": rng.choice(apps)[1]["app"]}}
        if k < 0.55:
            return {"matchLabels": {"role": rng.choice(ROLES), "version": rng.choice(["v1", "v2"])}}
        if k < 0.75:
            op = rng.choice(["In", "NotIn"])
            return {
                "matchExpressions": [
                    {"key": "role", "operator": op, "values": rng.sample(ROLES, rng.randint(1, 3))}
                ]
            }
        if k < 0.85:
            return {
                "matchExpressions": [
                    {"key": "version", "operator": rng.choice(["Exists", "DoesNotExist"])}
                ]
            }
        if k < 0.92:
            return {"matchLabels": {"canary": ""}}
        return {
            "matchLabels": {"role": rng.choice(ROLES)},
            "matchExpressions": [{"key": "version", "operator": "NotIn", "values": ["v1"]}],
        }

    def namespace_selector() -> dict:
        k = rng.random()
        if k < 0.15:
            return {}
        if k < 0.45:
            return {"matchLabels": {"tier": rng.choice(TIERS)}}
        if k < 0.6:
            return {"matchLabels": {NAME_LABEL: f"ns-{rng.randrange(n_ns)}"}}
        if k < 0.8:
            return {
                "matchExpressions": [
                    {"key": "env", "operator": rng.choice(["In", "NotIn"]), "values": ["prod"]}
                ]
            }
        return {
            "matchExpressions": [{"key": "env", "operator": rng.choice(["Exists", "DoesNotExist"])}]
        }

    def ip_block() -> dict:
        if rng.random() < 0.3:
            return {"cidr": rng.choice(EXTERNAL_CIDRS)}
        # a slice of the pod range (10.1.0.0 onwards), minus a few /24s or single addresses
        top = n_pods >> 8
        third = rng.randint(0, top)
        cidr = rng.choice(["10.0.0.0/8", "10.1.0.0/16", f"10.1.{third}.0/24"])
        block: dict = {"cidr": cidr}
        k = rng.random()
        if k < 0.5 and not cidr.endswith("/24"):
            block["except"] = sorted(
                {f"10.1.{rng.randint(0, top)}.0/24" for _ in range(rng.randint(1, 2))}
            )
        elif k < 0.75:
            block["except"] = [f"10.1.{third}.{rng.randrange(256)}/32"]
        return block

    def peer() -> dict:
        k = rng.random()
        if k < 0.35:
            return {"podSelector": pod_selector()}
        if k < 0.5:
            return {"namespaceSelector": namespace_selector()}
        if k < 0.8:
            return {"namespaceSelector": namespace_selector(), "podSelector": pod_selector()}
        return {"ipBlock": ip_block()}

    def rule_ports() -> list[dict]:
        out = []
        for _ in range(rng.randint(0, 3)):
            k = rng.random()
            name, number, proto = rng.choice(PORTS)
            if k < 0.35:
                p: dict = {"port": number}
            elif k < 0.6:
                p = {"port": name}
            elif k < 0.8:
                lo = rng.choice([50, 3000, 7000, 8000, 9000, 50000])
                p = {"port": lo, "endPort": lo + rng.choice([0, 10, 100, 1000, 10000])}
            else:
                p = {}  # protocol only: every port of that protocol
            if proto != "TCP" or rng.random() < 0.2:
                p["protocol"] = proto
            elif not p:
                p["protocol"] = "TCP"
            out.append(p)
        return out

    def rules(peer_field: str) -> list[dict]:
        out = []
        for _ in range(rng.choice([0, 1, 1, 2, 2, 3])):
            rule: dict = {}
            k = rng.random()
            if k < 0.85:
                rule[peer_field] = [peer() for _ in range(rng.randint(1, 3))]
            elif k < 0.92:
                rule[peer_field] = []  # empty list: every peer
            p = rule_ports()
            if p:
                rule["ports"] = p
            out.append(rule)
        return out

    policies = []
    for i in range(n_policies):
        ns, labels, _ = rng.choice(apps)
        k = rng.random()
        spec: dict
        if k < 0.08:  # namespace default deny
            spec = {
                "podSelector": {},
                "policyTypes": rng.choice([["Ingress"], ["Ingress", "Egress"], ["Egress"]]),
            }
        else:
            sel = {"matchLabels": {"app": labels["app"]}} if k < 0.6 else pod_selector()
            spec = {"podSelector": sel}
            shape = rng.random()
            if shape < 0.4:
                spec["ingress"] = rules("from")
                if rng.random() < 0.5:
                    spec["policyTypes"] = ["Ingress"]
            elif shape < 0.6:
                spec["egress"] = rules("to")
                spec["policyTypes"] = ["Egress"]
            elif shape < 0.8:
                spec["ingress"] = rules("from")
                spec["egress"] = rules("to")
                spec["policyTypes"] = ["Ingress", "Egress"]
            else:  # policyTypes left to defaulting: Egress only when egress rules exist
                spec["ingress"] = rules("from")
                spec["egress"] = rules("to")
        policies.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"np-{i}", "namespace": ns},
                "spec": spec,
            }
        )
    return namespaces + pods + policies


FILE_NAMES = {
    "Namespace": "namespaces.yaml",
    "Pod": "pods.yaml",
    "NetworkPolicy": "networkpolicies.yaml",
}
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def write(objects: list[dict], out: Path) -> Path:
    """Write `objects` under `out`: one multi-document file per kind."""
    out.mkdir(parents=True, exist_ok=True)
    by_kind: dict[str, list[dict]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    for kind, objs in by_kind.items():
        text = yaml.dump_all(objs, Dumper=_Dumper, sort_keys=False, default_flow_style=False)
        (out / FILE_NAMES[kind]).write_text(text, encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pods", type=int, default=200)
    ap.add_argument("--policies", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    write(generate(args.pods, args.policies, args.seed), args.out)


if __name__ == "__main__":
    main()
