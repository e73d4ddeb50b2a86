"""Field rules of a NetworkPolicy, as the API server validates them: port names, port ranges,
protocols and ipBlock CIDRs. The one place these rules live: the netpol parser raises the first
problem as `PolicyError`, `kube/validate.py` reports every problem as a `ValidationIssue`.

Each function returns `(field, message)` pairs, `field` relative to the object it was given.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

PROTOCOLS = ("TCP", "UDP", "SCTP")
MIN_PORT, MAX_PORT = 1, 65535
# IANA_SVC_NAME (RFC 6335), as the API server validates a named port: 1-15 chars of [a-z0-9-],
# at least one letter, no leading/trailing or double hyphen.
_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?!-))*(?<!-)$")
Problems = list[tuple[str, str]]


def protocol_problem(raw: object) -> str | None:
    """None for a valid protocol (or absent: the API server defaults it to TCP)."""
    if raw is None or raw in PROTOCOLS:
        return None
    return f"protocol {raw!r} is not one of {', '.join(PROTOCOLS)} (case-sensitive)"


def port_number_problem(raw: object, what: str = "port") -> str | None:
    if isinstance(raw, bool) or not isinstance(raw, int):
        return f"{what} {raw!r} is not a port number"
    if not MIN_PORT <= raw <= MAX_PORT:
        return f"{what} {raw} is out of range {MIN_PORT}-{MAX_PORT}"
    return None


def port_name_problem(name: object) -> str | None:
    """None when `name` is a valid IANA_SVC_NAME (a string port is always a name: "80" is not)."""
    if isinstance(name, str) and len(name) <= 15 and _SVC_NAME.match(name):
        return None
    return (
        f"{name!r} is not a valid port name (IANA_SVC_NAME: 1-15 characters of a-z, 0-9 and '-', "
        "at least one letter, no leading, trailing or double '-')"
    )


def network_policy_port_problems(item: Mapping[str, Any]) -> Problems:
    """Every problem of one NetworkPolicyPort (`protocol`, `port`, `endPort`)."""
    out: Problems = []
    problem = protocol_problem(item.get("protocol"))
    if problem:
        out.append(("protocol", problem))
    port, end = item.get("port"), item.get("endPort")
    if port is None:
        if end is not None:
            out.append(("endPort", "endPort needs a numeric `port`"))
    elif isinstance(port, str):
        problem = port_name_problem(port)
        if problem:
            out.append(("port", problem))
        if end is not None:
            out.append(("endPort", f"endPort cannot be used with the named port {port!r}"))
    else:
        problem = port_number_problem(port)
        if problem:
            out.append(("port", problem))
        if end is not None:
            end_problem = port_number_problem(end, "endPort")
            if end_problem:
                out.append(("endPort", end_problem))
            elif not problem and end < port:
                out.append(("endPort", f"endPort {end} is less than port {port}"))
    return out


def parse_cidr(raw: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The network of a CIDR string with a prefix length (host bits allowed), else None."""
    if not isinstance(raw, str) or "/" not in raw:
        return None
    try:
        return ipaddress.ip_network(raw, strict=False)
    except ValueError:
        return None


def ip_block_problems(block: Mapping[str, Any]) -> Problems:
    """Every problem of one IPBlock: `cidr` a CIDR, each `except` a CIDR and a strict subset of
    `cidr` (the API server rejects an `except` equal to or outside `cidr`)."""
    out: Problems = []
    cidr = block.get("cidr")
    if cidr is None:
        return [("cidr", "cidr is required")]
    net = parse_cidr(cidr)
    if net is None:
        return [("cidr", f"cidr {cidr!r} is not a valid CIDR (address/prefix-length)")]
    excepts = block.get("except") or []
    if not isinstance(excepts, list):
        return [("except", "except must be a list of CIDRs")]
    for j, raw in enumerate(excepts):
        sub = parse_cidr(raw)
        if sub is None:
            out.append((f"except[{j}]", f"except {raw!r} is not a valid CIDR"))
        elif sub.version != net.version or not sub.subnet_of(net) or sub == net:  # type: ignore[arg-type]
            out.append((f"except[{j}]", f"except {raw} is not strictly inside cidr {cidr}"))
    return out
