"""What `policy check` answers: violations of the intent, lints, exposures, and whether it holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Violation:
    expectation: str
    kind: str  # missing-allow | unexpected-allow
    src: str
    dst: str
    port: int
    protocol: str
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "kind": self.kind,
            "src": self.src,
            "dst": self.dst,
            "port": self.port,
            "protocol": self.protocol,
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class Lint:
    code: str
    severity: str  # error | warning
    object: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "object": self.object,
            "message": self.message,
        }


@dataclass(frozen=True)
class Exposure:
    """A way in that does not depend on today's objects: what a new namespace (or address) would
    need to gain access."""

    policy: str
    rule: int
    peer: int | None
    via: str  # e.g. "namespaces labelled kgents.io/tier=gateway", "any namespace", "any source"
    namespace_labels: Mapping[str, str] | None
    target: str
    ports: str
    current_namespaces: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "rule": self.rule,
            "peer": self.peer,
            "via": self.via,
            "namespace_labels": dict(self.namespace_labels)
            if self.namespace_labels is not None
            else None,
            "target": self.target,
            "ports": self.ports,
            "current_namespaces": list(self.current_namespaces),
        }

    def render(self) -> str:
        where = f"{self.policy} ingress[{self.rule}]" + (
            "" if self.peer is None else f".from[{self.peer}]"
        )
        return f"{self.via} reach {self.target} on {self.ports} ({where})"


@dataclass(frozen=True)
class IntentReport:
    """The answer of `policy check`: holds when no violation and no error-level lint."""

    holds: bool
    violations: tuple[Violation, ...]
    lints: tuple[Lint, ...]
    exposures: tuple[Exposure, ...]
    expectations_checked: int
    pairs_checked: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "holds": self.holds,
            "expectations_checked": self.expectations_checked,
            "pairs_checked": self.pairs_checked,
            "violations": [v.to_dict() for v in self.violations],
            "lints": [lint.to_dict() for lint in self.lints],
            "exposures": [e.to_dict() for e in self.exposures],
        }

    def to_table(self) -> str:
        lines = [
            f"intent {'HOLDS' if self.holds else 'DOES NOT HOLD'}: {self.expectations_checked} "
            f"expectations, {self.pairs_checked} (source, destination) pairs checked, "
            f"{len(self.violations)} violations, "
            f"{sum(1 for x in self.lints if x.severity == 'error')} error lints"
        ]
        if self.violations:
            lines += ["", "VIOLATIONS"]
            rows: list[tuple[str, ...]] = [
                ("EXPECTATION", "KIND", "SRC", "DST", "PORT", "EXPLANATION")
            ]
            rows += [
                (v.expectation, v.kind, v.src, v.dst, f"{v.port}/{v.protocol}", v.explanation)
                for v in self.violations
            ]
            lines += _table(rows)
        if self.lints:
            lines += ["", "LINTS"]
            rows = [("SEVERITY", "CODE", "OBJECT", "MESSAGE")]
            rows += [(x.severity, x.code, x.object, x.message) for x in self.lints]
            lines += _table(rows)
        if self.exposures:
            lines += ["", "EXPOSURES (who would gain access just by existing with these labels)"]
            lines += [f"  {e.render()}" for e in self.exposures]
        return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  "
        + "  ".join(str(c).ljust(w) for c, w in zip(r[:-1], widths, strict=True))
        + "  "
        + str(r[-1])
        for r in rows
    ]
