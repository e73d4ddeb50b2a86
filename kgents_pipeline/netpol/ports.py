"""Port sets: protocol + interval sets, and the ports of a NetworkPolicy rule."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kgents_pipeline.errors import PolicyError

PROTOCOLS = ("TCP", "UDP", "SCTP")
MIN_PORT, MAX_PORT = 1, 65535
# IANA_SVC_NAME, as the API server validates a named port: 1-15 chars of [a-z0-9-], at least one
# letter, no leading/trailing or double hyphen.
_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?!-))*(?<!-)$")


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

    def resolved(self, protocol: str, dst_ports: Iterable[ContainerPort]) -> IntervalSet:
        """The numeric ports of `protocol` this rule admits on a destination with `dst_ports`."""
        if self.everything:
            return IntervalSet.full()
        base = self.numeric.get(protocol, IntervalSet())
        extra = [
            (cp.port, cp.port)
            for cp in dst_ports
            if cp.protocol == protocol and (cp.name, protocol) in self.named
        ]
        return base.union(IntervalSet.of(extra)) if extra else base

    def render(self) -> str:
        if self.everything:
            return "all ports"
        parts = [f"{s.render()}/{p}" for p, s in sorted(self.numeric.items())]
        parts += [f"{n}/{p}" for n, p in sorted(self.named)]
        return ", ".join(parts)


def parse_protocol(raw: object, where: str) -> str:
    if raw is None:
        return "TCP"  # API-server default
    if raw not in PROTOCOLS:
        raise PolicyError(f"{where}.protocol: {raw!r} is not one of {', '.join(PROTOCOLS)}")
    return str(raw)


def parse_port_number(raw: object, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise PolicyError(f"{where}: {raw!r} is not a port number")
    if not MIN_PORT <= raw <= MAX_PORT:
        raise PolicyError(f"{where}: port {raw} is out of range {MIN_PORT}-{MAX_PORT}")
    return raw


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
        protocol = parse_protocol(item.get("protocol"), w)
        port = item.get("port")
        end = item.get("endPort")
        if port is None:
            if end is not None:
                raise PolicyError(f"{w}.endPort: needs a numeric `port`")
            numeric.setdefault(protocol, []).append((MIN_PORT, MAX_PORT))  # all ports of protocol
        elif isinstance(port, str):
            # IntOrString: a string is always a port name; the API server rejects "80" (no letter).
            if len(port) > 15 or not _SVC_NAME.match(port):
                raise PolicyError(f"{w}.port: {port!r} is not a valid port name (IANA_SVC_NAME)")
            if end is not None:
                raise PolicyError(f"{w}.endPort: cannot be used with the named port {port!r}")
            named.add((port, protocol))
        else:
            lo = parse_port_number(port, f"{w}.port")
            hi = lo
            if end is not None:
                hi = parse_port_number(end, f"{w}.endPort")
                if hi < lo:
                    raise PolicyError(f"{w}.endPort: {hi} is less than port {lo}")
            numeric.setdefault(protocol, []).append((lo, hi))
    return RulePorts(
        everything=False,
        numeric={p: IntervalSet.of(v) for p, v in numeric.items()},
        named=frozenset(named),
    )
