"""Label selectors (metav1.LabelSelector): parsing, validation and matching."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kgents_pipeline.errors import PolicyError

_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            # NotIn matches objects without the key too (apimachinery labels.Selector semantics).
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist

    def render(self) -> str:
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        if self.operator == "In" and len(self.values) == 1:
            return f"{self.key}={next(iter(self.values))}"
        op = "in" if self.operator == "In" else "notin"
        return f"{self.key} {op} ({','.join(sorted(self.values))})"


@dataclass(frozen=True)
class LabelSelector:
    """Requirements AND'ed; no requirement (`{}`) selects everything."""

    requirements: tuple[Requirement, ...] = ()

    @property
    def selects_all(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def render(self) -> str:
        if not self.requirements:
            return "{} (everything)"
        return ", ".join(r.render() for r in self.requirements)

    def equality_labels(self) -> dict[str, str] | None:
        """The labels this selector demands, if it is made only of `key=value` requirements."""
        out: dict[str, str] = {}
        for r in self.requirements:
            if r.operator != "In" or len(r.values) != 1:
                return None
            out[r.key] = next(iter(r.values))
        return out


def parse_selector(raw: object, where: str) -> LabelSelector:
    """Parse a LabelSelector; `where` names the field for error messages."""
    if raw is None:
        return LabelSelector()
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: a label selector must be a mapping, got {type(raw).__name__}")
    unknown = set(raw) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise PolicyError(f"{where}: unknown selector field(s) {sorted(unknown)}")
    reqs: list[Requirement] = []
    match_labels = raw.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        raise PolicyError(f"{where}.matchLabels: must be a mapping")
    for key, value in match_labels.items():
        if not isinstance(key, str) or not isinstance(value, str | int | float | bool):
            raise PolicyError(f"{where}.matchLabels: {key!r} must map a string to a string")
        reqs.append(Requirement(key, "In", frozenset({_label_value(value)})))
    expressions = raw.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise PolicyError(f"{where}.matchExpressions: must be a list")
    for i, expr in enumerate(expressions):
        w = f"{where}.matchExpressions[{i}]"
        if not isinstance(expr, Mapping) or "key" not in expr or "operator" not in expr:
            raise PolicyError(f"{w}: needs `key` and `operator`")
        op = expr["operator"]
        if op not in _OPERATORS:
            raise PolicyError(f"{w}: operator {op!r} is not one of {', '.join(_OPERATORS)}")
        values = expr.get("values") or []
        if not isinstance(values, list):
            raise PolicyError(f"{w}.values: must be a list")
        if op in ("In", "NotIn") and not values:
            raise PolicyError(f"{w}: operator {op} needs a non-empty `values`")
        if op in ("Exists", "DoesNotExist") and values:
            raise PolicyError(f"{w}: operator {op} takes no `values`")
        reqs.append(Requirement(str(expr["key"]), op, frozenset(_label_value(v) for v in values)))
    return LabelSelector(tuple(sorted(reqs, key=lambda r: (r.key, r.operator, sorted(r.values)))))


def _label_value(value: object) -> str:
    if isinstance(value, bool):  # YAML `true` in a label value means the string "true"
        return "true" if value else "false"
    return str(value)
