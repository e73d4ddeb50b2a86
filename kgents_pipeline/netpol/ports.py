"""Port sets: protocol + interval sets, and the ports of a NetworkPolicy rule."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kgents_pipeline.errors import PolicyError
from kgents_pipeline.netpol.validation import (
    MAX_PORT,
    MIN_PORT,
    PROTOCOLS,
    network_policy_port_problems,
    port_number_problem,
    protocol_problem,
)

__all__ = [
    "MAX_PORT",
    "MIN_PORT",
    "PROTOCOLS",
    "ContainerPort",
    "IntervalSet",
    "RulePorts",
    "parse_port_number",
    "parse_protocol",
    "parse_rule_ports",
]


@dataclass(frozen=True)
class IntervalSet:
    """A set of ports as sorted, disjoint, non-adjacent closed intervals."""

    intervals: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, pairs: Iterable[tuple[int, int]]) -> IntervalSet:
        merged: list[list[int]] = []
        for lo, hi in sorted(pairs):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return cls(tuple((lo, hi) for lo, hi in merged))

    @classmethod
    def full(cls) -> IntervalSet:
        return cls(((MIN_PORT, MAX_PORT),))

    def __contains__(self, port: int) -> bool:
        i = bisect_right(self.intervals, (port, MAX_PORT + 1)) - 1
        return i >= 0 and self.intervals[i][0] <= port <= self.intervals[i][1]

    def __bool__(self) -> bool:
        return bool(self.intervals)

    def union(self, other: IntervalSet) -> IntervalSet:
        return IntervalSet.of(self.intervals + other.intervals)

    def render(self) -> str:
        return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.intervals)


@dataclass(frozen=True)
class ContainerPort:
    port: int
    protocol: str
    name: str | None


@dataclass(frozen=True)
class RulePorts:
    """The `ports` of one rule. `everything` when `ports` is absent or empty."""

    everything: bool = True
    numeric: Mapping[str, IntervalSet] = field(default_factory=dict)  # protocol -> ports
    named: frozenset[tuple[str, str]] = frozenset()  # (name, protocol)

    def matches(self, port: int, protocol: str, dst_ports: Iterable[ContainerPort]) -> str | None:
        """Why this rule's ports admit `port/protocol` on a destination with `dst_ports`, or None.

        Named ports resolve against the destination pod's container ports, by name AND protocol.
        """
        if self.everything:
            return "all ports"
        ports = self.numeric.get(protocol)
        if ports is not None and port in ports:
            rendered = ports.render()
            if rendered == str(port):
                return f"port {port}/{protocol}"
            return f"port {port}/{protocol} (rule ports {rendered}/{protocol})"
        if self.named:
            for cp in dst_ports:
                if (
                    cp.port == port
                    and cp.protocol == protocol
                    and (cp.name, protocol) in self.named
                ):
                    return f"named port {cp.name!r}={port}/{protocol}"
        return None

    def admits(self, port: int, protocol: str, dst_ports: Iterable[ContainerPort]) -> bool:
        """`matches` without the reason: what the full matrix needs, many times over."""
        if self.everything:
            return True
        ports = self.numeric.get(protocol)
        if ports is not None and port in ports:
            return True
        return bool(self.named) and any(
            cp.port == port and cp.protocol == protocol and (cp.name, protocol) in self.named
            for cp in dst_ports
        )

    def canonical(self) -> tuple[Any, ...]:
        """A hashable value equal for equal port sets (the dataclass holds a dict)."""
        numeric = tuple(sorted((p, s.intervals) for p, s in self.numeric.items()))
        return (self.everything, numeric, self.named)

    def render(self) -> str:
        if self.everything:
            return "all ports"
        parts = [f"{s.render()}/{p}" for p, s in sorted(self.numeric.items())]
        parts += [f"{n}/{p}" for n, p in sorted(self.named)]
        return ", ".join(parts)


def parse_protocol(raw: object, where: str) -> str:
    problem = protocol_problem(raw)
    if problem:
        raise PolicyError(f"{where}.protocol: {problem}")
    return "TCP" if raw is None else str(raw)  # API-server default


def parse_port_number(raw: object, where: str) -> int:
    problem = port_number_problem(raw)
    if problem:
        raise PolicyError(f"{where}: {problem}")
    return raw  # type: ignore[return-value]


def parse_rule_ports(raw: object, where: str) -> RulePorts:
    if raw is None or raw == []:
        return RulePorts()
    if not isinstance(raw, list):
        raise PolicyError(f"{where}: must be a list")
    numeric: dict[str, list[tuple[int, int]]] = {}
    named: set[tuple[str, str]] = set()
    for i, item in enumerate(raw):
        w = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise PolicyError(f"{w}: must be a mapping")
        unknown = set(item) - {"protocol", "port", "endPort"}
        if unknown:
            raise PolicyError(f"{w}: unknown field(s) {sorted(unknown)}")
        problems = network_policy_port_problems(item)
        if problems:
            field_name, problem = problems[0]
            raise PolicyError(f"{w}.{field_name}: {problem}")
        protocol = str(item.get("protocol") or "TCP")
        port, end = item.get("port"), item.get("endPort")
        if port is None:
            numeric.setdefault(protocol, []).append((MIN_PORT, MAX_PORT))  # all ports of protocol
        elif isinstance(port, str):
            named.add((port, protocol))
        else:
            numeric.setdefault(protocol, []).append((port, port if end is None else end))
    return RulePorts(
        everything=False,
        numeric={p: IntervalSet.of(v) for p, v in numeric.items()},
        named=frozenset(named),
    )
