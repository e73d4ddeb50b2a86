"""Reading Kubernetes objects from YAML/JSON files and folders."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kgents_pipeline import safe_yaml
from kgents_pipeline.errors import PolicyError
from kgents_pipeline.netpol.engine import Cluster
from kgents_pipeline.netpol.model import (
    parse_namespace,
    parse_network_policy,
    parse_pdb,
    parse_pod,
)

PARSERS = {
    "Namespace": parse_namespace,
    "Pod": parse_pod,
    "NetworkPolicy": parse_network_policy,
    "PodDisruptionBudget": parse_pdb,
}
_SUFFIXES = (".yaml", ".yml", ".json")
_SKIP_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def _files(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file() and p.suffix in _SUFFIXES and p.name not in _SKIP_NAMES
                )
            )
        elif path.is_file():
            out.append(path)
        else:
            raise PolicyError(f"{path}: no such file or directory")
    return out


def _documents(path: Path) -> list[object]:
    """The documents of one file, bounded in size, nesting and aliases (`safe_yaml`)."""
    text = safe_yaml.read_text(path, error=PolicyError)
    if path.suffix == ".json":
        return [safe_yaml.load_json(text, str(path), error=PolicyError)]
    return safe_yaml.load_all(text, str(path), error=PolicyError)


def load_objects(
    paths: Iterable[str | Path], notes: list[str] | None = None, *, kinds: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Objects of the kinds the engine uses (Namespace, Pod, NetworkPolicy, PodDisruptionBudget)
    from files or folders of YAML/JSON, multi-document and `List` kinds expanded. Each is validated
    here so that a bad one is reported with its file and document index. Other kinds are skipped,
    with a line appended to `notes` when given. `kinds` narrows what is kept."""
    wanted = set(kinds) or set(PARSERS)
    out: list[dict[str, Any]] = []
    for path in _files(paths):
        for di, doc in enumerate(_documents(path)):
            if doc is None:
                continue
            where = f"{path}: document {di}"
            if not isinstance(doc, Mapping):
                raise PolicyError(
                    f"{where}: expected a Kubernetes object, got {type(doc).__name__}"
                )
            kind = doc.get("kind")
            if isinstance(kind, str) and kind.endswith("List") and "items" in doc:
                items = doc.get("items") or []
                if not isinstance(items, list):
                    raise PolicyError(f"{where}: `items` of a {kind} must be a list")
                entries = [(f"{where} item {ii}", item) for ii, item in enumerate(items)]
            else:
                entries = [(where, doc)]
            for w, obj in entries:
                if not isinstance(obj, Mapping):
                    raise PolicyError(f"{w}: expected a Kubernetes object")
                k = obj.get("kind")
                if k not in wanted:
                    if notes is not None:
                        what = f"kind {k!r}" if k else "not a Kubernetes object (no kind)"
                        notes.append(f"{w}: skipped {what}")
                    continue
                try:
                    PARSERS[k](obj)
                except PolicyError as exc:
                    raise PolicyError(f"{w}: {exc}") from exc
                out.append(dict(obj))
    return out


def cluster_from_objects(objects: Iterable[Mapping[str, Any]]) -> Cluster:
    """A `Cluster` from plain camelCase dicts (PodDisruptionBudgets and other kinds ignored)."""
    namespaces, pods, policies = [], [], []
    for obj in objects:
        kind = obj.get("kind")
        if kind == "Namespace":
            namespaces.append(parse_namespace(obj))
        elif kind == "Pod":
            pods.append(parse_pod(obj))
        elif kind == "NetworkPolicy":
            policies.append(parse_network_policy(obj))
    return Cluster(namespaces, pods, policies)
