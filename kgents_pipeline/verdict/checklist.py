"""The launch checklist (`manifests/launch/checklist.yaml`): items, their rules, sign-offs.

Read and validated here; judged by `rules/checklist.py`. Every error names the item and field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgents_pipeline import safe_yaml, settings
from kgents_pipeline.errors import VerdictError
from kgents_pipeline.verdict.inputs import parse_instant

PRIORITIES = ("HIGH", "MEDIUM", "LOW")
CHECKLIST_LIMITS = safe_yaml.Limits(max_bytes=4 * 1024 * 1024, max_aliases=100, max_nodes=200_000)
DEFAULT_CHECKLIST = Path(settings.CHECKLIST.default)


@dataclass(frozen=True)
class Signoff:
    """A recorded manual decision (sign-off or deferral); it counts from `at` (UTC) on."""

    by: str
    at: dt.datetime
    note: str


@dataclass(frozen=True)
class ChecklistItem:
    id: str
    title: str
    priority: str  # HIGH | MEDIUM | LOW
    resolved_by: tuple[str, ...]  # rule ids whose passing resolves the item
    signoff: Signoff | None = None
    deferred: Signoff | None = None


def _signoff(raw: Any, where: str) -> Signoff | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise VerdictError(f"{where}: expected a mapping with by, at, note; got {raw!r}")
    missing = [k for k in ("by", "at", "note") if not str(raw.get(k) or "").strip()]
    if missing:
        raise VerdictError(f"{where}: sign-off needs {', '.join(missing)} (who, when, note)")
    return Signoff(
        by=str(raw["by"]), at=parse_instant(raw["at"], f"{where}: at"), note=str(raw["note"])
    )


def parse_checklist(
    data: Any, known_rules: Iterable[str], source: str
) -> tuple[ChecklistItem, ...]:
    """Validate the checklist YAML; every error names the item and field.

    `resolved_by` names the rules whose passing resolves an item; never `checklist` itself.
    """
    known = set(known_rules) - {"checklist"}
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise VerdictError(f"{source}: expected a mapping with an `items` list")
    items: list[ChecklistItem] = []
    seen: set[str] = set()
    for i, raw in enumerate(data["items"]):
        where = f"{source}: items[{i}]"
        if not isinstance(raw, dict) or not raw.get("id"):
            raise VerdictError(f"{where}: each item needs an `id`")
        item_id = str(raw["id"])
        where = f"{source}: item {item_id!r}"
        if item_id in seen:
            raise VerdictError(f"{where}: duplicate id")
        seen.add(item_id)
        priority = str(raw.get("priority", "")).upper()
        if priority not in PRIORITIES:
            raise VerdictError(f"{where}: priority must be HIGH, medium or low, got {priority!r}")
        rules = raw.get("resolved_by") or []
        if not isinstance(rules, list):
            raise VerdictError(f"{where}: resolved_by must be a list of rule ids")
        not_ids = [r for r in rules if not isinstance(r, str)]
        if not_ids:
            raise VerdictError(
                f"{where}: resolved_by entries must be rule ids (strings), got {not_ids[0]!r}"
            )
        if "checklist" in rules:
            raise VerdictError(
                f"{where}: resolved_by cannot name `checklist` (an item cannot resolve itself); "
                f"known: {', '.join(sorted(known))}"
            )
        unknown = [r for r in rules if r not in known]
        if unknown:
            raise VerdictError(
                f"{where}: unknown rule(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        if raw.get("deferred") is not None and priority == "HIGH":
            raise VerdictError(f"{where}: a HIGH item cannot be deferred")
        deferred = _signoff(raw.get("deferred"), f"{where}: deferred")
        items.append(
            ChecklistItem(
                id=item_id,
                title=str(raw.get("title") or item_id),
                priority=priority,
                resolved_by=tuple(rules),
                signoff=_signoff(raw.get("signoff"), f"{where}: signoff"),
                deferred=deferred,
            )
        )
    return tuple(items)


def load_checklist(
    path: str | Path | None, known_rules: Iterable[str]
) -> tuple[tuple[ChecklistItem, ...] | None, str]:
    """An explicit path must exist (exit 2 otherwise); a missing default yields None (the
    checklist rule then fails closed)."""
    explicit = path is not None
    p = Path(path) if path is not None else DEFAULT_CHECKLIST
    if not p.exists():
        if explicit:
            raise VerdictError(f"checklist {p} not found")
        return None, str(p)
    if p.is_dir():
        raise VerdictError(f"checklist {p}: is a directory, not a file")
    try:
        raw = safe_yaml.read_bytes(p, error=VerdictError, limits=CHECKLIST_LIMITS)
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VerdictError(f"checklist {p}: not UTF-8 text ({exc.reason})") from None
    except VerdictError as exc:
        raise VerdictError(f"checklist {exc}") from None
    # Bounded: an alias bomb in an item's title is refused here, before anything expands it.
    data = safe_yaml.load(
        text,
        f"checklist {p}",
        error=VerdictError,
        limits=CHECKLIST_LIMITS,
        malformed="invalid YAML at",
    )
    return parse_checklist(data, known_rules, str(p)), str(p)
