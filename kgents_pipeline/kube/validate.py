"""Offline validation: strict OpenAPI schemas (kubernetes-validate), the checks the schemas miss,
and the kind allowlist. Every problem of every object is reported, with its file and object."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from kgents_pipeline import settings
from kgents_pipeline.errors import ManifestError
from kgents_pipeline.kube.render import RenderedObject
from kgents_pipeline.netpol.validation import (
    ip_block_problems,
    network_policy_port_problems,
)

DEFAULT_KUBE_VERSION = settings.KUBE_VERSION.default
DEFAULT_ALLOWED_KINDS = settings.split_list(settings.ALLOWED_KINDS.default)
POLICY_TYPES = ("Ingress", "Egress")
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "APIService",
        "RuntimeClass",
        "Node",
    }
)


@dataclass(frozen=True)
class ValidationIssue:
    """One problem: where (file, object, field path) and what is wrong."""

    source: str
    object: str
    path: str
    message: str
    check: str  # "schema" or the name of the extra check

    def __str__(self) -> str:
        at = f" at {self.path}" if self.path else ""
        return f"{self.source}: {self.object}{at}: {self.message} [{self.check}]"


def supported_versions() -> list[str]:
    """Kubernetes minor versions kubernetes-validate ships schemas for (e.g. "1.37")."""
    root = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    found = set()
    for entry in root.iterdir():
        m = re.fullmatch(r"v(\d+\.\d+)\.\d+-local-strict", entry.name)
        if m:
            found.add(m[1])
    return sorted(found, key=lambda v: tuple(int(p) for p in v.split(".")))


class SchemaValidator:
    """Strict-schema validator for one Kubernetes version: the schema registry is built once and
    one jsonschema validator per (apiVersion, kind) is cached, never one per document."""

    def __init__(self, kube_version: str = DEFAULT_KUBE_VERSION) -> None:
        version = kube_version.removeprefix("v")
        m = re.match(r"^(\d+)\.(\d+)", version)
        if not m:
            raise ManifestError(f"kube version {kube_version!r}: expected MAJOR.MINOR, e.g. 1.37")
        minor = f"{m[1]}.{m[2]}"
        available = supported_versions()
        if minor not in available:
            raise ManifestError(
                f"kube version {minor} has no schemas in kubernetes-validate "
                f"(available: {available[0]}..{available[-1]})"
            )
        self.kube_version = minor
        self._dir = resources.files("kubernetes_validate").joinpath(
            "kubernetes-json-schema", f"v{minor}.0-local-strict"
        )
        import jsonschema  # type: ignore[import-untyped]
        import referencing
        import referencing.jsonschema

        definitions = json.loads(self._dir.joinpath("_definitions.json").read_text())
        self._registry = (
            referencing.Resource.from_contents(
                definitions, default_specification=referencing.jsonschema.DRAFT202012
            )
            @ referencing.Registry()
        )
        self._jsonschema = jsonschema
        self._validators: dict[tuple[str, str], Any] = {}

    def _validator(self, api_version: str, kind: str) -> Any | None:
        key = (api_version, kind)
        if key not in self._validators:
            # rbac.authorization.k8s.io/v1 -> rbac-v1, v1 -> v1 (the library's file naming)
            group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            ref = self._dir.joinpath(f"{kind.lower()}-{group_version}.json")
            if not ref.is_file():
                self._validators[key] = None
            else:
                schema = json.loads(ref.read_text())
                self._validators[key] = self._jsonschema.Draft202012Validator(
                    schema, registry=self._registry
                )
        return self._validators[key]

    def issues(self, obj: RenderedObject) -> list[ValidationIssue]:
        validator = self._validator(obj.apiVersion, obj.kind)
        if validator is None:
            return [
                ValidationIssue(
                    obj.source,
                    obj.ref,
                    "",
                    f"no schema for {obj.apiVersion} {obj.kind} in Kubernetes {self.kube_version}",
                    "schema",
                )
            ]
        out = []
        for err in sorted(validator.iter_errors(obj.body), key=lambda e: list(map(str, e.path))):
            out.append(
                ValidationIssue(obj.source, obj.ref, _dotted(err.path), err.message, "schema")
            )
        return out


@cache
def schema_validator(kube_version: str = DEFAULT_KUBE_VERSION) -> SchemaValidator:
    """The process-wide validator for a version (schemas are immutable package data)."""
    return SchemaValidator(kube_version)


def _dotted(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --- the checks the schemas miss -------------------------------------------------------------


def _port_issues(obj: RenderedObject, where: str, port: dict[str, Any]) -> list[ValidationIssue]:
    return [
        ValidationIssue(
            obj.source,
            obj.ref,
            f"{where}.{field_name}",
            message,
            "protocol" if field_name == "protocol" else "port-range",
        )
        for field_name, message in network_policy_port_problems(port)
    ]


def _cidr_issues(obj: RenderedObject, where: str, block: dict[str, Any]) -> list[ValidationIssue]:
    return [
        ValidationIssue(obj.source, obj.ref, f"{where}.{field_name}", message, "cidr")
        for field_name, message in ip_block_problems(block)
    ]


def semantic_issues(obj: RenderedObject) -> list[ValidationIssue]:
    """Checks the OpenAPI schemas cannot express (the API server's own validation does them)."""
    spec = obj.body.get("spec")
    if not isinstance(spec, dict):
        return []
    out: list[ValidationIssue] = []
    if obj.kind == "NetworkPolicy":
        for i, ptype in enumerate(spec.get("policyTypes") or []):
            if ptype not in POLICY_TYPES:
                out.append(
                    ValidationIssue(
                        obj.source,
                        obj.ref,
                        f"spec.policyTypes[{i}]",
                        f"policyTypes value {ptype!r} is not Ingress or Egress",
                        "policyTypes",
                    )
                )
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(spec.get(direction) or []):
                if not isinstance(rule, dict):
                    continue
                for j, port in enumerate(rule.get("ports") or []):
                    if isinstance(port, dict):
                        out += _port_issues(obj, f"spec.{direction}[{i}].ports[{j}]", port)
                for j, peer in enumerate(rule.get(peers_key) or []):
                    if isinstance(peer, dict) and isinstance(peer.get("ipBlock"), dict):
                        out += _cidr_issues(
                            obj, f"spec.{direction}[{i}].{peers_key}[{j}].ipBlock", peer["ipBlock"]
                        )
    elif obj.kind == "PodDisruptionBudget" and "minAvailable" in spec and "maxUnavailable" in spec:
        out.append(
            ValidationIssue(
                obj.source,
                obj.ref,
                "spec",
                "minAvailable and maxUnavailable are mutually exclusive",
                "pdb",
            )
        )
    return out


# --- the API server's own limits (apimachinery validation), which no schema states -------------

ANNOTATIONS_LIMIT_B = 256 * 1024  # all annotations of an object, keys and values
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Kinds whose names are DNS labels (63); every other kind here takes a DNS subdomain (253).
_LABEL_NAMED_KINDS = frozenset({"Namespace", "Service"})


def _name_problem(value: object, *, label: bool) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    limit, pattern, what = (
        (63, _DNS_LABEL, "an RFC 1123 DNS label")
        if label
        else (253, _DNS_SUBDOMAIN, "an RFC 1123 DNS subdomain")
    )
    if len(value) > limit:
        return f"is {len(value)} characters long: at most {limit} ({what})"
    if not pattern.match(value):
        return f"{value!r} is not {what} (lowercase letters, digits, '-'{'' if label else ', .'})"
    return None


def _key_problem(key: object) -> str | None:
    """A label or annotation key: an optional DNS-subdomain prefix and a 63-character name."""
    if not isinstance(key, str):
        return f"key must be a string, got {type(key).__name__}"
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return f"key {key[:80]!r}: prefix must be a DNS subdomain of at most 253 characters"
    if len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return (
            f"key {key[:80]!r}: name part must be at most 63 characters, alphanumeric, "
            "'-', '_' or '.', starting and ending alphanumeric"
        )
    return None


def api_limit_issues(obj: RenderedObject) -> list[ValidationIssue]:
    """What the API server refuses whatever the schema says: names (253, or 63 for a label-named
    kind), label keys and values (63), and all annotations of an object over 256 KiB."""
    meta = obj.body.get("metadata")
    if not isinstance(meta, dict):
        return []
    out: list[ValidationIssue] = []

    def issue(path: str, message: str) -> None:
        out.append(ValidationIssue(obj.source, obj.ref, path, message, "api-limits"))

    problem = _name_problem(meta.get("name"), label=obj.kind in _LABEL_NAMED_KINDS)
    if problem:
        issue("metadata.name", f"name {problem}")
    if meta.get("namespace") is not None:
        problem = _name_problem(meta.get("namespace"), label=True)
        if problem:
            issue("metadata.namespace", f"namespace {problem}")
    labels = meta.get("labels")
    if isinstance(labels, dict):
        for key, value in labels.items():
            problem = _key_problem(key)
            if problem:
                issue(f"metadata.labels[{str(key)[:80]!r}]", f"label {problem}")
            if not isinstance(value, str):
                issue(f"metadata.labels[{str(key)[:80]!r}]", "label value must be a string")
            elif len(value) > 63 or not _LABEL_VALUE.match(value):
                issue(
                    f"metadata.labels[{str(key)[:80]!r}]",
                    f"label value of {len(value)} characters: at most 63, alphanumeric, '-', "
                    "'_' or '.', starting and ending alphanumeric",
                )
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        total = 0
        for key, value in annotations.items():
            problem = _key_problem(key)
            if problem:
                issue(f"metadata.annotations[{str(key)[:80]!r}]", f"annotation {problem}")
            text = value if isinstance(value, str) else str(value)
            total += len(str(key).encode()) + len(text.encode())  # bytes, as the server counts
        if total > ANNOTATIONS_LIMIT_B:
            issue(
                "metadata.annotations",
                f"annotations total {total} bytes: the API server allows at most "
                f"{ANNOTATIONS_LIMIT_B} (256 KiB) per object",
            )
    return out


def kind_issues(
    objects: Sequence[RenderedObject], allowed_kinds: Sequence[str] = DEFAULT_ALLOWED_KINDS
) -> list[ValidationIssue]:
    """Objects whose kind is outside the allowlist: refused before any request is sent."""
    allowed = set(allowed_kinds)
    return [
        ValidationIssue(
            obj.source,
            obj.ref,
            "kind",
            f"kind {obj.kind} is not allowed (allowed: {', '.join(sorted(allowed))})",
            "kind-allowlist",
        )
        for obj in objects
        if obj.kind not in allowed
    ]


def validate_objects(
    objects: Sequence[RenderedObject],
    *,
    kube_version: str = DEFAULT_KUBE_VERSION,
    allowed_kinds: Sequence[str] = DEFAULT_ALLOWED_KINDS,
) -> list[ValidationIssue]:
    """Every issue of every object: kind allowlist, strict schema, extra checks, duplicates."""
    validator = schema_validator(kube_version)
    issues = kind_issues(objects, allowed_kinds)
    seen: dict[tuple[str, str | None, str], str] = {}
    for obj in objects:
        issues += validator.issues(obj)
        issues += semantic_issues(obj)
        issues += api_limit_issues(obj)
        key = (obj.kind, obj.namespace, obj.name)
        if key in seen:
            issues.append(
                ValidationIssue(
                    obj.source, obj.ref, "", f"duplicate of the object in {seen[key]}", "duplicate"
                )
            )
        seen.setdefault(key, obj.source)
        if obj.kind not in CLUSTER_SCOPED and obj.kind in allowed_kinds and not obj.namespace:
            issues.append(
                ValidationIssue(
                    obj.source,
                    obj.ref,
                    "metadata.namespace",
                    "namespaced object without metadata.namespace (the pipeline never guesses one)",
                    "namespace",
                )
            )
    return issues


def require_valid(
    objects: Sequence[RenderedObject],
    *,
    kube_version: str = DEFAULT_KUBE_VERSION,
    allowed_kinds: Sequence[str] = DEFAULT_ALLOWED_KINDS,
) -> None:
    """Raise `ManifestError` listing every issue (first line: the count) when any is found."""
    issues = validate_objects(objects, kube_version=kube_version, allowed_kinds=allowed_kinds)
    if issues:
        raise InvalidManifests(issues)


class InvalidManifests(ManifestError):
    """The rendered set has validation issues; `.issues` lists all of them."""

    def __init__(self, issues: list[ValidationIssue]) -> None:
        self.issues = issues
        shown = "; ".join(str(i) for i in issues[:5])
        more = f"; ... {len(issues) - 5} more" if len(issues) > 5 else ""
        super().__init__(f"{len(issues)} validation issue(s): {shown}{more}")
