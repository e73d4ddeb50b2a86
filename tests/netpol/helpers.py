"""Small builders for Kubernetes-shaped dicts, and a reachability helper that cross-checks the two
evaluations of the engine (per-query explanation and class-level matrix)."""

from __future__ import annotations

from kgents_pipeline.netpol.engine import Cluster, Reachability
from kgents_pipeline.netpol.loading import cluster_from_objects


def ns(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def pod(
    namespace: str,
    name: str,
    labels: dict | None = None,
    ports: list | None = None,
    ip: str | None = None,
    host_network: bool = False,
) -> dict:
    """`ports`: ints, or (port, protocol[, name]) tuples."""
    container_ports = []
    for p in ports if ports is not None else [80]:
        if isinstance(p, int):
            container_ports.append({"containerPort": p})
        else:
            cp = {"containerPort": p[0], "protocol": p[1]}
            if len(p) > 2:
                cp["name"] = p[2]
            container_ports.append(cp)
    obj: dict = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "ports": container_ports}]},
    }
    if host_network:
        obj["spec"]["hostNetwork"] = True
    if ip:
        obj["status"] = {"podIP": ip}
    return obj


def netpol(namespace: str, name: str, **spec: object) -> dict:
    spec.setdefault("podSelector", {})
    if "policy_types" in spec:
        spec["policyTypes"] = spec.pop("policy_types")
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def answer(
    objects: list[dict], src: str, dst: str, port: int, protocol: str = "TCP"
) -> Reachability:
    cluster = cluster_from_objects(objects)
    r = cluster.query(src, dst, port, protocol)
    _cross_check(cluster, src, dst, port, protocol, r.allowed)
    return r


def allowed(objects: list[dict], src: str, dst: str, port: int, protocol: str = "TCP") -> bool:
    return answer(objects, src, dst, port, protocol).allowed


def _cross_check(
    cluster: Cluster, src: str, dst: str, port: int, protocol: str, expected: bool
) -> None:
    """When both ends are pods and the port is declared on the destination, the class-level matrix
    must give the same answer as the explanation walk."""
    if "/" not in src or "/" not in dst:
        return
    s, d = cluster.pods[src], cluster.pods[dst]
    if not any(cp.port == port and cp.protocol == protocol for cp in d.ports):
        return
    assert cluster.matrix().allowed(s, d, port, protocol) == expected
