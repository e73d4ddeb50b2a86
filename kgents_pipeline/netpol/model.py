"""The objects the engine reasons about, parsed and validated from camelCase API dicts."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kgents_pipeline.errors import PolicyError
from kgents_pipeline.netpol.ports import (
    ContainerPort,
    RulePorts,
    parse_port_number,
    parse_protocol,
    parse_rule_ports,
)
from kgents_pipeline.netpol.selectors import LabelSelector, parse_selector
from kgents_pipeline.netpol.validation import ip_block_problems, parse_cidr

NAME_LABEL = "kubernetes.io/metadata.name"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    labels: Mapping[str, str]
    ports: tuple[ContainerPort, ...]
    ip: IPAddress | None = None
    host_network: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class IPBlock:
    cidr: IPNetwork
    excepts: tuple[IPNetwork, ...] = ()

    def matches(self, ip: IPAddress | None) -> bool:
        if ip is None or ip.version != self.cidr.version or ip not in self.cidr:
            return False
        return not any(ip in e for e in self.excepts)

    def render(self) -> str:
        if not self.excepts:
            return f"ipBlock {self.cidr}"
        return f"ipBlock {self.cidr} except {', '.join(map(str, self.excepts))}"


@dataclass(frozen=True)
class Peer:
    """One NetworkPolicyPeer. Selectors: `namespace_selector` None means the policy's own
    namespace; `pod_selector` None means every pod of the selected namespaces."""

    ip_block: IPBlock | None = None
    namespace_selector: LabelSelector | None = None
    pod_selector: LabelSelector | None = None

    def render(self, policy_namespace: str) -> str:
        if self.ip_block is not None:
            return self.ip_block.render()
        if self.namespace_selector is None:
            ns = f"namespace {policy_namespace}"
        elif self.namespace_selector.selects_all:
            ns = "all namespaces"
        else:
            ns = f"namespaces [{self.namespace_selector.render()}]"
        pods = "all pods" if self.pod_selector is None else f"pods [{self.pod_selector.render()}]"
        return f"{pods} in {ns}"


@dataclass(frozen=True)
class Rule:
    """One ingress/egress rule. `peers` None means `from`/`to` absent or empty: every peer."""

    peers: tuple[Peer, ...] | None
    ports: RulePorts


@dataclass(frozen=True)
class NetworkPolicy:
    namespace: str
    name: str
    pod_selector: LabelSelector
    policy_types: frozenset[str]
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def rules(self, direction: str) -> tuple[Rule, ...]:
        return self.ingress if direction == "Ingress" else self.egress


@dataclass(frozen=True)
class PodDisruptionBudget:
    namespace: str
    name: str
    selector: LabelSelector | None  # policy/v1: a null selector selects no pod, {} selects all

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _mapping(raw: object, where: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: must be a mapping, got {type(raw).__name__}")
    return raw


def _labels(raw: object, where: str) -> dict[str, str]:
    labels = _mapping(raw, where)
    for k, v in labels.items():
        if not isinstance(k, str) or v is None or isinstance(v, Mapping | list):
            raise PolicyError(f"{where}: label {k!r} must map a string to a string")
    return {
        k: ("true" if v is True else "false" if v is False else str(v)) for k, v in labels.items()
    }


def _metadata(
    obj: Mapping[str, Any], kind: str, namespaced: bool
) -> tuple[str, str, Mapping[str, Any]]:
    meta = _mapping(obj.get("metadata"), f"{kind}.metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise PolicyError(f"{kind}: metadata.name is required")
    namespace = meta.get("namespace") or "default"
    if namespaced and not isinstance(namespace, str):
        raise PolicyError(f"{kind} {name}: metadata.namespace must be a string")
    return (namespace if namespaced else ""), name, meta


def parse_namespace(obj: Mapping[str, Any]) -> Namespace:
    _, name, meta = _metadata(obj, "Namespace", namespaced=False)
    labels = _labels(meta.get("labels"), f"Namespace {name}: metadata.labels")
    # Every namespace carries its name as a label (immutable, set by the API server since 1.21).
    labels[NAME_LABEL] = name
    return Namespace(name, labels)


def _parse_ip(raw: object, where: str) -> IPAddress | None:
    if raw in (None, ""):
        return None
    try:
        return ipaddress.ip_address(str(raw))
    except ValueError as exc:
        raise PolicyError(f"{where}: {raw!r} is not an IP address") from exc


def parse_pod(obj: Mapping[str, Any]) -> Pod:
    namespace, name, meta = _metadata(obj, "Pod", namespaced=True)
    where = f"Pod {namespace}/{name}"
    labels = _labels(meta.get("labels"), f"{where}: metadata.labels")
    spec = _mapping(obj.get("spec"), f"{where}: spec")
    status = _mapping(obj.get("status"), f"{where}: status")
    ports: list[ContainerPort] = []
    containers = spec.get("containers") or []
    if not isinstance(containers, list):
        raise PolicyError(f"{where}: spec.containers must be a list")
    for ci, container in enumerate(containers):
        c = _mapping(container, f"{where}: spec.containers[{ci}]")
        for pi, port in enumerate(c.get("ports") or []):
            w = f"{where}: spec.containers[{ci}].ports[{pi}]"
            p = _mapping(port, w)
            number = parse_port_number(p.get("containerPort"), f"{w}.containerPort")
            pname = p.get("name")
            if pname is not None and not isinstance(pname, str):
                raise PolicyError(f"{w}.name: must be a string")
            ports.append(ContainerPort(number, parse_protocol(p.get("protocol"), w), pname))
    ip = _parse_ip(status.get("podIP"), f"{where}: status.podIP")
    return Pod(
        namespace=namespace,
        name=name,
        labels=labels,
        ports=tuple(sorted(set(ports), key=lambda cp: (cp.protocol, cp.port, cp.name or ""))),
        ip=ip,
        host_network=bool(spec.get("hostNetwork")),
    )


def _parse_network(raw: object, where: str) -> IPNetwork:
    net = parse_cidr(raw)
    if net is None:
        raise PolicyError(f"{where}: {raw!r} is not a CIDR (address/prefix-length)")
    return net


def _parse_peer(raw: object, where: str) -> Peer:
    peer = _mapping(raw, where)
    unknown = set(peer) - {"ipBlock", "namespaceSelector", "podSelector"}
    if unknown:
        raise PolicyError(f"{where}: unknown field(s) {sorted(unknown)}")
    if not any(peer.get(k) is not None for k in ("ipBlock", "namespaceSelector", "podSelector")):
        raise PolicyError(f"{where}: a peer needs ipBlock, namespaceSelector or podSelector")
    if peer.get("ipBlock") is not None:
        if peer.get("namespaceSelector") is not None or peer.get("podSelector") is not None:
            raise PolicyError(f"{where}: ipBlock cannot be combined with a selector")
        block = _mapping(peer["ipBlock"], f"{where}.ipBlock")
        problems = ip_block_problems(block)
        if problems:
            field_name, problem = problems[0]
            raise PolicyError(f"{where}.ipBlock.{field_name}: {problem}")
        cidr = _parse_network(block["cidr"], f"{where}.ipBlock.cidr")
        excepts = [
            _parse_network(e, f"{where}.ipBlock.except[{i}]")
            for i, e in enumerate(block.get("except") or [])
        ]
        return Peer(ip_block=IPBlock(cidr, tuple(excepts)))
    ns = peer.get("namespaceSelector")
    pods = peer.get("podSelector")
    return Peer(
        namespace_selector=None if ns is None else parse_selector(ns, f"{where}.namespaceSelector"),
        pod_selector=None if pods is None else parse_selector(pods, f"{where}.podSelector"),
    )


def _parse_rules(raw: object, where: str, peer_field: str) -> tuple[Rule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PolicyError(f"{where}: must be a list")
    rules = []
    for i, item in enumerate(raw):
        w = f"{where}[{i}]"
        rule = _mapping(item, w)
        unknown = set(rule) - {peer_field, "ports"}
        if unknown:
            raise PolicyError(f"{w}: unknown field(s) {sorted(unknown)}")
        raw_peers = rule.get(peer_field)
        if raw_peers is not None and not isinstance(raw_peers, list):
            raise PolicyError(f"{w}.{peer_field}: must be a list")
        peers = (
            tuple(_parse_peer(p, f"{w}.{peer_field}[{j}]") for j, p in enumerate(raw_peers))
            if raw_peers
            else None  # absent or empty: every peer
        )
        rules.append(Rule(peers, parse_rule_ports(rule.get("ports"), f"{w}.ports")))
    return tuple(rules)


def parse_network_policy(obj: Mapping[str, Any]) -> NetworkPolicy:
    namespace, name, _ = _metadata(obj, "NetworkPolicy", namespaced=True)
    where = f"NetworkPolicy {namespace}/{name}"
    if obj.get("spec") is None:
        raise PolicyError(f"{where}: spec is required")
    spec = _mapping(obj["spec"], f"{where}: spec")
    if "podSelector" not in spec:
        raise PolicyError(f"{where}: spec.podSelector is required (use {{}} to select all pods)")
    selector = parse_selector(spec["podSelector"], f"{where}: spec.podSelector")
    ingress = _parse_rules(spec.get("ingress"), f"{where}: spec.ingress", "from")
    egress = _parse_rules(spec.get("egress"), f"{where}: spec.egress", "to")
    raw_types = spec.get("policyTypes")
    if raw_types:
        if not isinstance(raw_types, list) or any(
            t not in ("Ingress", "Egress") for t in raw_types
        ):
            raise PolicyError(f"{where}: spec.policyTypes must list only Ingress and/or Egress")
        types = frozenset(raw_types)
    else:
        # API-server defaulting: Ingress always, Egress only when spec.egress is non-empty.
        types = frozenset({"Ingress", "Egress"} if egress else {"Ingress"})
    return NetworkPolicy(namespace, name, selector, types, ingress, egress)


def parse_pdb(obj: Mapping[str, Any]) -> PodDisruptionBudget:
    namespace, name, _ = _metadata(obj, "PodDisruptionBudget", namespaced=True)
    where = f"PodDisruptionBudget {namespace}/{name}"
    spec = _mapping(obj.get("spec"), f"{where}: spec")
    raw = spec.get("selector")
    selector = None if raw is None else parse_selector(raw, f"{where}: spec.selector")
    return PodDisruptionBudget(namespace, name, selector)
