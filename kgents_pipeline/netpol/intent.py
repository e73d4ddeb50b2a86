"""The launch intent: a workload model plus "destination + port is reachable ONLY from these
sources" expectations (`manifests/launch/intent.yaml`), parsed and validated."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgents_pipeline import safe_yaml
from kgents_pipeline.errors import PolicyError
from kgents_pipeline.netpol.model import (
    NAME_LABEL,
    IPAddress,
    Pod,
    parse_pod,
)
from kgents_pipeline.netpol.ports import PROTOCOLS, ContainerPort

_SOURCE_KINDS = ("namespace_labels", "namespace", "workload")
# The offline model makes one pod per replica, and the check grows with the square of the pods:
# a few pods stand for a workload (its policies select by labels, not by count).
MAX_REPLICAS = 100
MAX_MODEL_PODS = 250
INTENT_LIMITS = safe_yaml.Limits(max_bytes=4 * 1024 * 1024, max_aliases=100, max_nodes=200_000)


@dataclass(frozen=True)
class Workload:
    name: str
    namespace: str
    labels: Mapping[str, str]
    replicas: int
    ports: tuple[ContainerPort, ...]

    def selects(self, pod: Pod) -> bool:
        return pod.namespace == self.namespace and all(
            pod.labels.get(k) == v for k, v in self.labels.items()
        )


@dataclass(frozen=True)
class Source:
    """One entry of `only_from`: `any`, {namespace_labels: {...}}, {namespace: N}, {workload: W}."""

    kind: str
    value: object = None

    def render(self) -> str:
        if self.kind == "any":
            return "any"
        if self.kind == "namespace_labels":
            assert isinstance(self.value, Mapping)
            labels = ",".join(f"{k}={v}" for k, v in sorted(self.value.items()))
            return f"namespaces labelled {labels}"
        return f"{self.kind} {self.value}"


@dataclass(frozen=True)
class Expectation:
    name: str
    destination: str
    port: int
    protocol: str
    only_from: tuple[Source, ...]


@dataclass(frozen=True)
class Intent:
    path: str
    workloads: tuple[Workload, ...]
    expectations: tuple[Expectation, ...]
    external_probes: tuple[IPAddress, ...] = ()
    egress_isolated_namespaces: tuple[str, ...] = ()
    # labels each namespace must carry (checked, never applied: the manifests/cluster label them)
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def workload(self, name: str) -> Workload:
        for w in self.workloads:
            if w.name == name:
                return w
        raise KeyError(name)


def _str_map(raw: object, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise PolicyError(f"{where}: must map strings to strings")
    return dict(raw)


def _parse_intent(doc: object, path: str) -> Intent:
    def fail(msg: str) -> PolicyError:
        return PolicyError(f"{path}: {msg}")

    if not isinstance(doc, Mapping):
        raise fail("the intent must be a mapping")
    if doc.get("version", 1) != 1:
        raise fail(f"version {doc.get('version')!r} is not supported (expected 1)")
    unknown = set(doc) - {
        "version",
        "workloads",
        "expectations",
        "external_probes",
        "egress_isolated_namespaces",
        "namespace_labels",
    }
    if unknown:
        raise fail(f"unknown field(s) {sorted(unknown)}")
    try:
        workloads = []
        raw_workloads = doc.get("workloads") or []
        if not isinstance(raw_workloads, list):
            raise fail("workloads: must be a list")
        for i, w in enumerate(raw_workloads):
            where = f"workloads[{i}]"
            if not isinstance(w, Mapping) or not isinstance(w.get("name"), str):
                raise fail(f"{where}: needs a `name`")
            if not isinstance(w.get("namespace"), str):
                raise fail(f"{where} ({w['name']}): needs a `namespace`")
            labels = _str_map(w.get("labels"), f"{where}.labels")
            if not labels:
                raise fail(f"{where} ({w['name']}): needs `labels` (how its pods are selected)")
            replicas = w.get("replicas", 1)
            if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
                raise fail(f"{where}.replicas: must be a non-negative integer")
            if replicas > MAX_REPLICAS:
                raise fail(
                    f"{where}.replicas: {replicas} is more than {MAX_REPLICAS}: the offline model "
                    "makes one pod per replica, and a few stand for a workload"
                )
            pod = parse_pod(
                {
                    "metadata": {"name": "x", "namespace": w["namespace"]},
                    "spec": {"containers": [{"ports": w.get("ports") or []}]},
                }
            )
            workloads.append(Workload(w["name"], w["namespace"], labels, replicas, pod.ports))
        total = sum(w.replicas for w in workloads)
        if total > MAX_MODEL_PODS:
            raise fail(
                f"workloads: {total} replicas in all is more than {MAX_MODEL_PODS} pods for the "
                "offline model: lower the replicas"
            )
        names = [w.name for w in workloads]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise fail(f"workloads: duplicate name(s) {dupes}")

        expectations = []
        raw_expectations = doc.get("expectations") or []
        if not isinstance(raw_expectations, list):
            raise fail("expectations: must be a list")
        for i, e in enumerate(raw_expectations):
            where = f"expectations[{i}]"
            if not isinstance(e, Mapping):
                raise fail(f"{where}: must be a mapping")
            dest = e.get("destination")
            if dest not in names:
                raise fail(f"{where}.destination: {dest!r} is not a workload ({', '.join(names)})")
            port = e.get("port")
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise fail(f"{where}.port: {port!r} is not a port number 1-65535")
            protocol = e.get("protocol", "TCP")
            if protocol not in PROTOCOLS:
                raise fail(f"{where}.protocol: {protocol!r} is not one of {', '.join(PROTOCOLS)}")
            raw_sources = e.get("only_from")
            if not isinstance(raw_sources, list):
                raise fail(f"{where}.only_from: must be a list (use [] for 'from nowhere')")
            sources = []
            for j, s in enumerate(raw_sources):
                sw = f"{where}.only_from[{j}]"
                if s == "any":
                    sources.append(Source("any"))
                    continue
                if not isinstance(s, Mapping) or len(s) != 1 or next(iter(s)) not in _SOURCE_KINDS:
                    raise fail(f"{sw}: expected `any` or one of {', '.join(_SOURCE_KINDS)}")
                kind, value = next(iter(s.items()))
                if kind == "namespace_labels":
                    value = _str_map(value, sw)
                    if not value:
                        raise fail(f"{sw}: namespace_labels needs at least one label")
                elif not isinstance(value, str):
                    raise fail(f"{sw}: {kind} must be a name")
                elif kind == "workload" and value not in names:
                    raise fail(f"{sw}: {value!r} is not a workload")
                sources.append(Source(kind, value))
            name = e.get("name") or f"{dest}:{port}/{protocol}"
            expectations.append(Expectation(str(name), dest, port, protocol, tuple(sources)))

        probes = []
        for i, p in enumerate(doc.get("external_probes") or []):
            try:
                probes.append(ipaddress.ip_address(str(p)))
            except ValueError as exc:
                raise fail(f"external_probes[{i}]: {p!r} is not an IP address") from exc
        egress = doc.get("egress_isolated_namespaces") or []
        if not isinstance(egress, list) or not all(isinstance(n, str) for n in egress):
            raise fail("egress_isolated_namespaces: must be a list of namespace names")
        raw_ns = doc.get("namespace_labels") or {}
        if not isinstance(raw_ns, Mapping):
            raise fail("namespace_labels: must map namespace names to labels")
        ns_labels = {str(k): _str_map(v, f"namespace_labels.{k}") for k, v in raw_ns.items()}
    except PolicyError as exc:
        msg = str(exc)
        raise (exc if msg.startswith(f"{path}:") else fail(msg)) from None
    return Intent(
        path, tuple(workloads), tuple(expectations), tuple(probes), tuple(egress), ns_labels
    )


def load_intent(path: str | Path) -> Intent:
    """Read and validate an intent file; PolicyError names the file and what is wrong."""
    p = Path(path)
    try:
        text = safe_yaml.read_text(p, error=PolicyError, limits=INTENT_LIMITS)
    except PolicyError as exc:
        raise PolicyError(
            f"{p}: cannot read the intent: {str(exc).removeprefix(f'{p}: ')}"
        ) from None
    doc = safe_yaml.load(text, str(p), error=PolicyError, limits=INTENT_LIMITS)
    return _parse_intent(doc, str(p))


def workload_model(intent: Intent) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(namespaces, pods) for offline mode, as camelCase API dicts.

    The namespaces are those the workloads use, labelled only with kubernetes.io/metadata.name:
    pass them along with the manifests' (or the cluster's) Namespaces, which say how a namespace is
    labelled; `check_intent` unions the labels of duplicate namespaces.
    Pod IPs come from 10.244.0.0/16, one /24 per workload, so ipBlock rules see them.
    """
    namespaces: dict[str, dict[str, Any]] = {}
    pods: list[dict[str, Any]] = []
    for wi, w in enumerate(intent.workloads):
        if w.namespace not in namespaces:
            labels = {NAME_LABEL: w.namespace}
            namespaces[w.namespace] = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": w.namespace, "labels": labels},
            }
        ports = [
            {
                "containerPort": cp.port,
                "protocol": cp.protocol,
                **({"name": cp.name} if cp.name else {}),
            }
            for cp in w.ports
        ]
        for i in range(w.replicas):
            pods.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"{w.name}-{i}",
                        "namespace": w.namespace,
                        "labels": dict(w.labels),
                    },
                    "spec": {"containers": [{"name": w.name, "ports": ports}]},
                    "status": {"podIP": f"10.244.{wi % 256}.{10 + i % 240}"},
                }
            )
    return list(namespaces.values()), pods
