"""Reachability: who can reach whom on which port, under Kubernetes NetworkPolicy v1 semantics.

A connection from S to D on port/protocol is allowed when S's egress allows it AND D's ingress
allows it. A pod is isolated for a direction when a policy of its own namespace selects it and has
that direction in its (defaulted) policyTypes; an isolated pod admits only what some rule of those
policies allows (policies are additive). Pods are grouped into equivalence classes (namespace, labels,
container ports, hostNetwork, which ipBlocks their IP falls in): every pod of a class has the same
answers, so the full matrix is computed per class, with class sets as integer bitmasks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kgents_pipeline.errors import PolicyError
from kgents_pipeline.netpol.model import (
    NAME_LABEL,
    IPAddress,
    IPBlock,
    Namespace,
    NetworkPolicy,
    Peer,
    Pod,
    Rule,
)
from kgents_pipeline.netpol.ports import PROTOCOLS, ContainerPort, RulePorts, parse_port_number
from kgents_pipeline.netpol.selectors import LabelSelector

INGRESS, EGRESS = "Ingress", "Egress"
_BYTE_BITS = tuple(tuple(j for j in range(8) if v >> j & 1) for v in range(256))


def _bit_indexes(mask: int) -> list[int]:
    """The indexes of the set bits of `mask`, in order."""
    out: list[int] = []
    for i, byte in enumerate(mask.to_bytes((mask.bit_length() + 7) // 8, "little")):
        if byte:
            out.extend(i * 8 + j for j in _BYTE_BITS[byte])
    return out


HOST_NETWORK_NOTE = (
    "note: hostNetwork pod(s) involved; NetworkPolicy behaviour for hostNetwork pods is undefined "
    "upstream, they are treated here as ordinary pods"
)


@dataclass(frozen=True)
class Reachability:
    """One answer: may `src` open a connection to `dst` on `port`/`protocol`, and why."""

    src: str
    dst: str
    port: int
    protocol: str
    allowed: bool
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "src": self.src,
            "dst": self.dst,
            "port": self.port,
            "protocol": self.protocol,
            "allowed": self.allowed,
            "explanation": self.explanation,
        }


@dataclass
class PodClass:
    index: int
    namespace: str
    labels: Mapping[str, str]
    ports: tuple[ContainerPort, ...]
    host_network: bool
    ip: IPAddress | None  # a representative IP: every member matches the same ipBlocks
    pods: list[Pod] = field(default_factory=list)


@dataclass(frozen=True)
class Endpoint:
    """A pod, or an address outside the cluster."""

    pod: Pod | None = None
    ip: IPAddress | None = None

    @property
    def name(self) -> str:
        return self.pod.key if self.pod is not None else str(self.ip)


@dataclass(frozen=True)
class _Match:
    policy: str
    direction: str
    rule: int
    peer: int | None  # None: the rule has no from/to (every peer)
    peer_text: str
    port_text: str

    def render(self) -> str:
        field_name = "ingress" if self.direction == INGRESS else "egress"
        peer_field = "from" if self.direction == INGRESS else "to"
        if self.peer is None:
            where = f"{field_name}[{self.rule}] (no {peer_field}: every peer)"
        else:
            where = f"{field_name}[{self.rule}].{peer_field}[{self.peer}] ({self.peer_text})"
        return f"{self.policy} {where} on {self.port_text}"


class Cluster:
    """Namespaces, pods and policies, indexed for reachability questions."""

    def __init__(
        self,
        namespaces: Iterable[Namespace],
        pods: Iterable[Pod],
        policies: Iterable[NetworkPolicy],
    ) -> None:
        self.namespaces: dict[str, Namespace] = {}
        for ns in namespaces:
            self.namespaces[ns.name] = ns
        self.pods: dict[str, Pod] = {}
        for pod in pods:
            if pod.key in self.pods:
                raise PolicyError(f"Pod {pod.key} is declared twice")
            self.pods[pod.key] = pod
        self.policies: list[NetworkPolicy] = []
        seen: set[str] = set()
        for policy in policies:
            if policy.key in seen:
                raise PolicyError(f"NetworkPolicy {policy.key} is declared twice")
            seen.add(policy.key)
            self.policies.append(policy)
        # A namespace that pods or policies use but no document declares exists with its name label.
        for name in {p.namespace for p in self.pods.values()} | {
            p.namespace for p in self.policies
        }:
            if name not in self.namespaces:
                self.namespaces[name] = Namespace(name, {NAME_LABEL: name})
        self._policies_by_ns: dict[str, list[NetworkPolicy]] = {}
        for policy in self.policies:
            self._policies_by_ns.setdefault(policy.namespace, []).append(policy)
        self._ip_blocks = sorted(
            {
                peer.ip_block
                for policy in self.policies
                for direction in (INGRESS, EGRESS)
                for rule in policy.rules(direction)
                for peer in rule.peers or ()
                if peer.ip_block is not None
            },
            key=lambda b: (b.cidr.version, str(b.cidr), [str(e) for e in b.excepts]),
        )
        self._build_classes()
        self._peer_mask_cache: dict[tuple[Peer, str], int] = {}
        self._ns_selector_cache: dict[LabelSelector, list[str]] = {}
        self._rule_mask_cache: dict[tuple[int, str], int] = {}
        self._selected_cache: dict[str, int] = {}

    # ----------------------------------------------------------------------------- classes
    def _ip_signatures(self) -> dict[str, int]:
        """For each pod with an address, the ipBlocks (bit i: self._ip_blocks[i]) it falls in.

        One sweep per address family over the blocks' boundaries instead of every pod against
        every block: a block's bit is on between its cidr's first and last address, except where
        one of its excepts covers the address."""
        events: dict[int, list[tuple[int, int, int]]] = {4: [], 6: []}
        for i, block in enumerate(self._ip_blocks):
            ev = events[block.cidr.version]
            lo, hi = int(block.cidr.network_address), int(block.cidr.broadcast_address)
            ev.append((lo, i, 1))
            ev.append((hi + 1, i, -1))
            for e in block.excepts:
                ev.append((int(e.network_address), i, 2))
                ev.append((int(e.broadcast_address) + 1, i, -2))
        sigs: dict[str, int] = {}
        for version, ev in events.items():
            pods = sorted(
                (int(p.ip), p.key)
                for p in self.pods.values()
                if p.ip is not None and p.ip.version == version
            )
            if not pods:
                continue
            ev.sort()
            in_cidr: dict[int, int] = {}
            excepted: dict[int, int] = {}
            sig = 0
            j = 0
            for address, key in pods:
                while j < len(ev) and ev[j][0] <= address:
                    _, i, kind = ev[j]
                    if kind in (1, -1):
                        in_cidr[i] = in_cidr.get(i, 0) + kind
                    else:
                        excepted[i] = excepted.get(i, 0) + kind // 2
                    if in_cidr.get(i, 0) > 0 and excepted.get(i, 0) == 0:
                        sig |= 1 << i
                    else:
                        sig &= ~(1 << i)
                    j += 1
                sigs[key] = sig
        return sigs

    def _build_classes(self) -> None:
        by_key: dict[tuple[Any, ...], PodClass] = {}
        self.classes: list[PodClass] = []
        self.class_of: dict[str, PodClass] = {}
        ip_sigs = self._ip_signatures()
        classes_by_sig: dict[int, int] = {}
        for pod in self.pods.values():
            ip_sig = ip_sigs.get(pod.key, 0)
            key = (
                pod.namespace,
                frozenset(pod.labels.items()),
                pod.ports,
                pod.host_network,
                ip_sig,
            )
            cls = by_key.get(key)
            if cls is None:
                cls = PodClass(
                    len(self.classes),
                    pod.namespace,
                    pod.labels,
                    pod.ports,
                    pod.host_network,
                    pod.ip,
                )
                by_key[key] = cls
                self.classes.append(cls)
                classes_by_sig[ip_sig] = classes_by_sig.get(ip_sig, 0) | 1 << cls.index
            cls.pods.append(pod)
            self.class_of[pod.key] = cls
        # Each ipBlock as a bitmask over classes, from the classes of each distinct signature.
        block_masks = [0] * len(self._ip_blocks)
        for sig, cmask in classes_by_sig.items():
            for i in _bit_indexes(sig):
                block_masks[i] |= cmask
        self._block_mask: dict[IPBlock, int] = dict(zip(self._ip_blocks, block_masks, strict=True))
        self.all_mask = (1 << len(self.classes)) - 1
        self._ns_mask: dict[str, int] = {}
        for cls in self.classes:
            self._ns_mask[cls.namespace] = self._ns_mask.get(cls.namespace, 0) | 1 << cls.index
        # Label index: (key, value) and key -> the classes carrying them, for selector masks.
        self._label_index: dict[tuple[str, str], int] = {}
        self._key_index: dict[str, int] = {}
        for cls in self.classes:
            bit = 1 << cls.index
            for k, v in cls.labels.items():
                self._label_index[(k, v)] = self._label_index.get((k, v), 0) | bit
                self._key_index[k] = self._key_index.get(k, 0) | bit
        self._selector_cache: dict[LabelSelector, int] = {}
        self._isolating: dict[tuple[int, str], list[NetworkPolicy]] = {
            (cls.index, direction): [] for cls in self.classes for direction in (INGRESS, EGRESS)
        }
        for policy in self.policies:  # in input order, as the explanations list them
            selected = self._selector_mask(policy.pod_selector) & self._ns_mask.get(
                policy.namespace, 0
            )
            directions = [d for d in (INGRESS, EGRESS) if d in policy.policy_types]
            for index in _bit_indexes(selected):
                for direction in directions:
                    self._isolating[(index, direction)].append(policy)

    def _selector_mask(self, selector: LabelSelector) -> int:
        """The classes, in every namespace, whose labels `selector` matches (Requirement.matches
        semantics, computed on the label index)."""
        mask = self._selector_cache.get(selector)
        if mask is None:
            mask = self.all_mask
            for r in selector.requirements:
                if r.operator in ("In", "NotIn"):
                    m = 0
                    for value in r.values:
                        m |= self._label_index.get((r.key, value), 0)
                    if r.operator == "NotIn":  # objects without the key match NotIn
                        m = self.all_mask & ~m
                elif r.operator == "Exists":
                    m = self._key_index.get(r.key, 0)
                else:  # DoesNotExist
                    m = self.all_mask & ~self._key_index.get(r.key, 0)
                mask &= m
            self._selector_cache[selector] = mask
        return mask

    def isolating_policies(self, pod: Pod, direction: str) -> list[NetworkPolicy]:
        """The policies of the pod's namespace that select it for `direction`."""
        return self._isolating[(self.class_of[pod.key].index, direction)]

    def selected_pods(self, policy: NetworkPolicy) -> list[Pod]:
        return [
            pod
            for pod in self.pods.values()
            if pod.namespace == policy.namespace and policy.pod_selector.matches(pod.labels)
        ]

    # ------------------------------------------------------------------------- peer matching
    def peer_matches_pod(self, peer: Peer, policy_namespace: str, pod: Pod) -> bool:
        """NetworkPolicyPeer semantics for an in-cluster pod (ipBlock matches status.podIP)."""
        if peer.ip_block is not None:
            return peer.ip_block.matches(pod.ip)
        if peer.namespace_selector is None:
            if pod.namespace != policy_namespace:
                return False
        elif not peer.namespace_selector.matches(self.namespaces[pod.namespace].labels):
            return False
        return peer.pod_selector is None or peer.pod_selector.matches(pod.labels)

    @staticmethod
    def peer_matches_ip(peer: Peer, ip: IPAddress) -> bool:
        """Selectors match only pods; an address outside the cluster can match only an ipBlock."""
        return peer.ip_block is not None and peer.ip_block.matches(ip)

    def namespaces_matching(self, peer: Peer, policy_namespace: str) -> list[str]:
        if peer.namespace_selector is None:
            return [policy_namespace]
        names = self._ns_selector_cache.get(peer.namespace_selector)
        if names is None:
            names = self._ns_selector_cache[peer.namespace_selector] = [
                name
                for name, ns in self.namespaces.items()
                if peer.namespace_selector.matches(ns.labels)
            ]
        return names

    def _pods_matching(self, selector: LabelSelector, namespace: str) -> int:
        """The classes of `namespace` whose labels `selector` matches, as a bitmask."""
        return self._selector_mask(selector) & self._ns_mask.get(namespace, 0)

    def _peer_mask(self, peer: Peer, policy_namespace: str) -> int:
        key = (peer, policy_namespace if peer.namespace_selector is None else "")
        cached = self._peer_mask_cache.get(key)
        if cached is not None:
            return cached
        mask = 0
        if peer.ip_block is not None:
            mask = self._block_mask[peer.ip_block]
        else:
            for name in self.namespaces_matching(peer, policy_namespace):
                if peer.pod_selector is None:
                    mask |= self._ns_mask.get(name, 0)
                else:
                    mask |= self._pods_matching(peer.pod_selector, name)
        self._peer_mask_cache[key] = mask
        return mask

    def _rule_mask(self, rule: Rule, policy_namespace: str) -> int:
        # Keyed by identity first: rules belong to the policies this cluster holds, and hashing
        # a rule's peers (selectors, ipBlocks) again for every destination is what costs.
        key = (id(rule), policy_namespace)
        mask = self._rule_mask_cache.get(key)
        if mask is None:
            if rule.peers is None:
                mask = self.all_mask
            else:
                mask = 0
                for peer in rule.peers:
                    mask |= self._peer_mask(peer, policy_namespace)
            self._rule_mask_cache[key] = mask
        return mask

    def _selected_mask(self, policy: NetworkPolicy) -> int:
        cached = self._selected_cache.get(policy.key)
        if cached is None:
            cached = self._pods_matching(policy.pod_selector, policy.namespace)
            self._selected_cache[policy.key] = cached
        return cached

    # -------------------------------------------------------------------------------- matrix
    def matrix(self) -> ReachMatrix:
        """The full matrix on declared ports: for every destination class and each of its container
        ports, the bitmask of source classes allowed to connect (self-traffic aside)."""
        # Whether a rule's ports admit a port depends on the rule's port set and, for named
        # ports, on the destination's container ports: memoised on both.
        profiles: dict[tuple[ContainerPort, ...], int] = {}
        port_sets: dict[tuple[Any, ...], int] = {}  # RulePorts.canonical() -> a small id
        admitted: dict[tuple[int, int, str, int], bool] = {}

        def admits(
            ports: RulePorts, canon: int, profile: int, dst: PodClass, key: tuple[str, int]
        ) -> bool:
            k = (canon, profile, *key)
            hit = admitted.get(k)
            if hit is None:
                hit = admitted[k] = ports.admits(key[1], key[0], dst.ports)
            return hit

        def port_set(ports: RulePorts) -> int:
            return port_sets.setdefault(ports.canonical(), len(port_sets))

        not_egress_isolated = 0
        for cls in self.classes:
            if not self._isolating[(cls.index, EGRESS)]:
                not_egress_isolated |= 1 << cls.index
        # Egress rules with the same port set and the same selected sources act as one rule
        # whose peers are the union of theirs.
        merged: dict[tuple[int, int], tuple[RulePorts, int]] = {}
        for p in self.policies:
            if EGRESS not in p.policy_types or not p.egress:
                continue
            sel = self._selected_mask(p)
            if not sel:
                continue
            for rule in p.egress:
                k = (port_set(rule.ports), sel)
                ports, peers = merged.get(k, (rule.ports, 0))
                merged[k] = (ports, peers | self._rule_mask(rule, p.namespace))
        everywhere: list[tuple[RulePorts, int, int]] = []  # rules towards every class
        towards: list[list[tuple[RulePorts, int, int]]] = [[] for _ in self.classes]
        for (canon, sel), (ports, peers) in merged.items():
            if peers == self.all_mask:
                everywhere.append((ports, canon, sel))
                continue
            item = (ports, canon, sel)
            for d in _bit_indexes(peers):
                towards[d].append(item)
        everywhere_egress: dict[tuple[int, str, int], int] = {}
        admitted_by_key: dict[tuple[int, str, int], dict[int, bool]] = {}
        masks: dict[int, dict[tuple[str, int], int]] = {}
        for dst in self.classes:
            profile = profiles.setdefault(dst.ports, len(profiles))
            ingress_rules = [
                (rule.ports, port_set(rule.ports), self._rule_mask(rule, p.namespace))
                for p in self._isolating[(dst.index, INGRESS)]
                for rule in p.ingress
            ]
            isolated_in = bool(self._isolating[(dst.index, INGRESS)])
            per_port: dict[tuple[str, int], int] = {}
            for cp in dst.ports:
                key = (cp.protocol, cp.port)
                if key in per_port:
                    continue
                if isolated_in:
                    ingress = 0
                    for ports, canon, rmask in ingress_rules:
                        if admits(ports, canon, profile, dst, key):
                            ingress |= rmask
                else:
                    ingress = self.all_mask
                base = everywhere_egress.get((profile, *key))
                if base is None:
                    base = not_egress_isolated
                    for ports, canon, sel in everywhere:
                        if admits(ports, canon, profile, dst, key):
                            base |= sel
                    everywhere_egress[(profile, *key)] = base
                egress = base
                memo = admitted_by_key.setdefault((profile, *key), {})
                for ports, canon, sel in towards[dst.index]:
                    ok = memo.get(canon)
                    if ok is None:
                        ok = memo[canon] = ports.admits(key[1], key[0], dst.ports)
                    if ok:
                        egress |= sel
                per_port[key] = ingress & egress
            masks[dst.index] = per_port
        return ReachMatrix(self, masks)

    # ----------------------------------------------------------------------------- explain
    def endpoint(self, text: str) -> Endpoint:
        """`namespace/pod` or an IP address (an address outside the cluster, unless it is the
        status.podIP of exactly one pod, which then is that pod)."""
        if not isinstance(text, str) or not text:
            raise PolicyError(
                f"query endpoint {text!r}: expected `namespace/pod` or an IPv4 address"
            )
        if "/" in text:
            pod = self.pods.get(text)
            if pod is None:
                raise PolicyError(f"unknown query endpoint {text!r}: no such pod in the input")
            return Endpoint(pod=pod)
        try:
            ip = ipaddress.ip_address(text)
        except ValueError as exc:
            raise PolicyError(
                f"unknown query endpoint {text!r}: expected `namespace/pod` or an IPv4 address"
            ) from exc
        owners = [p for p in self.pods.values() if p.ip == ip]
        if len(owners) == 1:
            return Endpoint(pod=owners[0])
        if len(owners) > 1:
            raise PolicyError(
                f"query endpoint {text}: ambiguous, status.podIP of "
                + ", ".join(p.key for p in owners)
            )
        return Endpoint(ip=ip)

    def query(self, src: str, dst: str, port: int, protocol: str = "TCP") -> Reachability:
        """Answer one question given as strings (see `endpoint`)."""
        port = parse_port_number(port, "query port")
        if protocol not in PROTOCOLS:
            raise PolicyError(f"query protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
        return self.explain(self.endpoint(src), self.endpoint(dst), port, protocol)

    def _side(
        self,
        direction: str,
        subject: Endpoint,
        other: Endpoint,
        dst: Endpoint,
        port: int,
        proto: str,
    ) -> tuple[bool, str]:
        label = "egress" if direction == EGRESS else "ingress"
        role = "source" if direction == EGRESS else "destination"
        if subject.pod is None:
            return True, f"{label}: the {role} is outside the cluster, no policy applies"
        policies = self._isolating[(self.class_of[subject.pod.key].index, direction)]
        if not policies:
            return True, f"{label}: the {role} is not isolated for {label}"
        dst_ports = dst.pod.ports if dst.pod is not None else ()
        matches: list[_Match] = []
        for policy in policies:
            for ri, rule in enumerate(policy.rules(direction)):
                port_text = rule.ports.matches(port, proto, dst_ports)
                if port_text is None:
                    continue
                if rule.peers is None:
                    matches.append(_Match(policy.key, direction, ri, None, "", port_text))
                    continue
                for pi, peer in enumerate(rule.peers):
                    if (
                        self.peer_matches_pod(peer, policy.namespace, other.pod)
                        if other.pod is not None
                        else self.peer_matches_ip(peer, other.ip)  # type: ignore[arg-type]
                    ):
                        matches.append(
                            _Match(
                                policy.key,
                                direction,
                                ri,
                                pi,
                                peer.render(policy.namespace),
                                port_text,
                            )
                        )
        names = ", ".join(p.key for p in policies)
        if matches:
            return True, f"{label}: allowed by " + "; ".join(m.render() for m in matches)
        return False, (
            f"the {role} is isolated for {label} by {names} "
            f"and no {label} rule matches this peer on {port}/{proto}"
        )

    def explain(self, src: Endpoint, dst: Endpoint, port: int, protocol: str) -> Reachability:
        if src.pod is None and dst.pod is None:
            raise PolicyError(
                f"query {src.name} -> {dst.name}: at least one endpoint must be a pod"
            )
        note = ""
        if (src.pod is not None and src.pod.host_network) or (
            dst.pod is not None and dst.pod.host_network
        ):
            note = "; " + HOST_NETWORK_NOTE
        if src.pod is not None and src.pod == dst.pod:
            return Reachability(
                src.name,
                dst.name,
                port,
                protocol,
                True,
                "allowed: traffic from a pod to itself is always allowed" + note,
            )
        eg_ok, eg_text = self._side(EGRESS, src, dst, dst, port, protocol)
        in_ok, in_text = self._side(INGRESS, dst, src, dst, port, protocol)
        allowed = eg_ok and in_ok
        if allowed:
            text = f"allowed: {eg_text}; {in_text}"
        elif not eg_ok and not in_ok:
            text = (
                f"denied by the source's egress: {eg_text}; "
                f"and by the destination's ingress: {in_text}"
            )
        elif not eg_ok:
            text = f"denied by the source's egress: {eg_text}; the other side: {in_text}"
        else:
            text = f"denied by the destination's ingress: {in_text}; the other side: {eg_text}"
        return Reachability(src.name, dst.name, port, protocol, allowed, text + note)


class ReachMatrix:
    """Class-level full matrix; expands to pod pairs on demand."""

    def __init__(self, cluster: Cluster, masks: dict[int, dict[tuple[str, int], int]]) -> None:
        self.cluster = cluster
        self.masks = masks

    def allowed(self, src: Pod, dst: Pod, port: int, protocol: str) -> bool:
        if src == dst:
            return True
        c = self.cluster
        per_port = self.masks[c.class_of[dst.key].index]
        mask = per_port.get((protocol, port))
        if mask is None:
            raise KeyError(f"{port}/{protocol} is not a declared port of {dst.key}")
        return bool(mask >> c.class_of[src.key].index & 1)

    def count_allowed_pairs(self) -> tuple[int, int]:
        """(allowed, total) over ordered pairs of distinct pods x declared destination ports."""
        c = self.cluster
        allowed = total = 0
        n_pods = len(c.pods)
        for dst in c.classes:
            for (_proto, _port), mask in self.masks[dst.index].items():
                srcs = sum(len(s.pods) for s in c.classes if mask >> s.index & 1)
                if mask >> dst.index & 1:
                    srcs -= 1  # a pod is not its own peer here
                allowed += srcs * len(dst.pods)
                total += (n_pods - 1) * len(dst.pods)
        return allowed, total

    def pairs(self) -> Iterator[tuple[Pod, Pod, int, str, bool]]:
        """Every ordered pair of distinct pods on every declared port of the destination."""
        c = self.cluster
        pods = sorted(c.pods.values(), key=lambda p: p.key)
        for dst in pods:
            per_port = self.masks[c.class_of[dst.key].index]
            for proto, port in sorted({(cp.protocol, cp.port) for cp in dst.ports}):
                mask = per_port[(proto, port)]
                for src in pods:
                    if src is not dst:
                        yield src, dst, port, proto, bool(mask >> c.class_of[src.key].index & 1)
