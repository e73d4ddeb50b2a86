"""An in-process fake Kubernetes API server for tests (no cluster can run on these machines).

The real `kubernetes` client and the real `kubectl` talk to it over HTTP. It implements what the
pipeline and `kubectl apply/diff --server-side` use: discovery, GET/LIST with label selectors,
POST, PUT, merge patches, server-side apply (`application/apply-patch+yaml`, `fieldManager`,
`force`, conflicts with other managers, `dryRun=All`), `Status` error bodies, resourceVersion /
generation / uid / managedFields, API-server defaulting for the kinds we use, PDB status as the
disruption controller would compute it, fault injection and a request log.

Simplifications (documented in the README): every list is atomic for field ownership; ownership
paths are key paths (`fieldsV1` is rendered from them); no watch, no admission, no RBAC.
"""

from __future__ import annotations

import copy
import json
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

_MISSING = object()


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    singular: str
    short: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCE_TYPES = (
    ResourceType("", "v1", "namespaces", "Namespace", False, "namespace", ("ns",)),
    ResourceType("", "v1", "pods", "Pod", True, "pod", ("po",)),
    ResourceType(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        True,
        "networkpolicy",
        ("netpol",),
    ),
    ResourceType(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        True,
        "poddisruptionbudget",
        ("pdb",),
    ),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, "statefulset", ("sts",)),
)
BY_RESOURCE = {(r.group, r.version, r.resource): r for r in RESOURCE_TYPES}
BY_KIND = {r.kind: r for r in RESOURCE_TYPES}
_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class Request:
    """One recorded request (discovery included); `implied` marks an authorization the server
    checks in addition to the request's own verb (an apply that creates needs `create`)."""

    method: str
    path: str
    verb: str | None
    group: str | None
    resource: str | None
    namespace: str | None
    name: str | None
    dry_run: bool
    field_manager: str | None
    force: bool
    content_type: str | None
    user_agent: str
    status: int = 0
    implied: bool = False

    @property
    def is_write(self) -> bool:
        return self.verb in ("create", "update", "patch", "delete", "deletecollection")


@dataclass
class Fault:
    """Fault injection: requests matching every set field get `status` (after `delay` seconds)."""

    status: int | None = None
    method: str | None = None
    verb: str | None = None
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    dry_run: bool | None = None
    times: int | None = 1  # None: forever
    delay: float = 0.0
    message: str | None = None
    after: bool = False  # process the request first, then answer `status` (a lost response)
    hits: int = 0

    def matches(self, req: Request) -> bool:
        for attr in ("method", "verb", "resource", "namespace", "name", "dry_run"):
            want = getattr(self, attr)
            if want is not None and getattr(req, attr) != want:
                return False
        return self.times is None or self.times > 0


@dataclass
class _Entry:
    obj: dict[str, Any]
    managers: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # name -> {operation, paths, time, apiVersion}
    pinned_status: dict[str, Any] | None = None


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


# --- field paths (ownership) -----------------------------------------------------------------


def leaf_paths(obj: Any, prefix: tuple = ()) -> dict[tuple, Any]:
    """Key paths to leaves; lists and empty maps are leaves (atomic)."""
    if isinstance(obj, dict) and obj:
        out: dict[tuple, Any] = {}
        for k, v in obj.items():
            out.update(leaf_paths(v, (*prefix, k)))
        return out
    return {prefix: obj}


def _config_paths(body: dict[str, Any]) -> dict[tuple, Any]:
    paths = leaf_paths({k: v for k, v in body.items() if k not in ("apiVersion", "kind", "status")})
    return {
        p: v for p, v in paths.items() if p not in (("metadata", "name"), ("metadata", "namespace"))
    }


def get_path(obj: Any, path: tuple) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def set_path(obj: dict[str, Any], path: tuple, value: Any) -> None:
    for key in path[:-1]:
        nxt = obj.get(key)
        if not isinstance(nxt, dict):
            nxt = obj[key] = {}
        obj = nxt
    obj[path[-1]] = copy.deepcopy(value)


def del_path(obj: dict[str, Any], path: tuple) -> None:
    chain = [obj]
    for key in path[:-1]:
        nxt = chain[-1].get(key)
        if not isinstance(nxt, dict):
            return
        chain.append(nxt)
    chain[-1].pop(path[-1], None)
    for depth in range(len(chain) - 1, 0, -1):  # prune emptied parents
        if not chain[depth]:
            chain[depth - 1].pop(path[depth - 1], None)


def _overlaps(a: tuple, b: tuple) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def fields_v1(paths: set[tuple]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(paths, key=lambda p: [str(x) for x in p]):
        node = root
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return root


def _dotted(path: tuple) -> str:
    return "." + ".".join(str(p) for p in path)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# --- selectors and defaults ------------------------------------------------------------------


def parse_label_selector(text: str) -> list[tuple[str, str, list[str]]]:
    reqs = []
    for part in re.split(r",(?![^()]*\))", text):
        part = part.strip()
        if not part:
            continue
        if m := re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", part):
            reqs.append((m[1], m[2], [v.strip() for v in m[3].split(",")]))
        elif "!=" in part:
            k, v = part.split("!=", 1)
            reqs.append((k.strip(), "!=", [v.strip()]))
        elif "=" in part:
            k, v = part.replace("==", "=").split("=", 1)
            reqs.append((k.strip(), "=", [v.strip()]))
        elif part.startswith("!"):
            reqs.append((part[1:], "!exists", []))
        else:
            reqs.append((part, "exists", []))
    return reqs


def labels_match(reqs: list[tuple[str, str, list[str]]], labels: dict[str, str]) -> bool:
    for key, op, values in reqs:
        have = labels.get(key)
        if (
            (op == "=" and have != values[0])
            or (op == "!=" and have == values[0])
            or (op == "in" and have not in values)
            or (op == "notin" and have in values)
            or (op == "exists" and key not in labels)
            or (op == "!exists" and key in labels)
        ):
            return False
    return True


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}[
            e["operator"]
        ]
        if not labels_match([(e["key"], op, e.get("values") or [])], labels):
            return False
    return True


def apply_defaults(rt: ResourceType, obj: dict[str, Any]) -> None:
    """The API server's defaulting for the kinds the launch set uses."""
    meta = obj.setdefault("metadata", {})
    if rt.kind == "Namespace":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {"phase": "Active"})
    elif rt.kind == "NetworkPolicy":
        spec = obj.setdefault("spec", {})
        spec.setdefault("podSelector", {})
        if "policyTypes" not in spec:
            spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
        for direction in ("ingress", "egress"):
            for rule in spec.get(direction) or []:
                for port in rule.get("ports") or []:
                    port.setdefault("protocol", "TCP")
    elif rt.kind == "StatefulSet":
        obj.setdefault("spec", {}).setdefault("replicas", 1)


def _pod_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return status.get("phase") == "Running"


# --- the server ------------------------------------------------------------------------------


class FakeKubeAPI:
    """The fake API server: `start()`, `url`, `kubeconfig(path)`, `seed(...)`, `inject(...)`,
    `requests` (the log), `stop()`."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._store: dict[tuple[str, str | None, str], _Entry] = {}  # (resource, ns, name)
        self._rv = 1000
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeKubeAPI:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def kubeconfig(self, path: str | Path, context: str = "fake") -> Path:
        """Write a kubeconfig whose `context` points at this server (current-context is a decoy)."""
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "fake", "cluster": {"server": self.url}},
                {"name": "decoy", "cluster": {"server": "http://127.0.0.1:9"}},
            ],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [
                {"name": context, "context": {"cluster": "fake", "user": "fake"}},
                {"name": "decoy", "context": {"cluster": "decoy", "user": "fake"}},
            ],
            "current-context": "decoy",
        }
        p = Path(path)
        p.write_text(yaml.safe_dump(cfg))
        return p

    # -- test helpers -------------------------------------------------------------------------

    def inject(self, **kw: Any) -> Fault:
        fault = Fault(**kw)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def seed(self, obj: dict[str, Any], manager: str = "test-seed") -> dict[str, Any]:
        """Store an object directly (pods, StatefulSets, anything), as if created by `manager`."""
        rt = BY_KIND[obj["kind"]]
        body = copy.deepcopy(obj)
        with self._lock:
            return self._create(rt, body, manager, operation="Update", persist=True)

    def pin_status(
        self, kind: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> None:
        with self._lock:
            self._store[(BY_KIND[kind].resource, namespace, name)].pinned_status = status

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        rt = BY_KIND[kind]
        with self._lock:
            entry = self._store.get((rt.resource, namespace, name))
            return self._render(rt, entry) if entry else None

    def edit(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        patch: dict[str, Any],
        manager: str = "kubectl-edit",
    ) -> dict[str, Any]:
        """An out-of-band change (merge patch, Update operation) by another field manager."""
        rt = BY_KIND[kind]
        with self._lock:
            return self._update_patch(rt, namespace, name, patch, manager, dry_run=False)

    def resource_requests(self, *, include_implied: bool = True) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.resource and (include_implied or not r.implied)]

    def real_writes(self) -> list[Request]:
        """Mutating requests that were not dry-runs (implied authorizations excluded)."""
        return [
            r for r in self.resource_requests(include_implied=False) if r.is_write and not r.dry_run
        ]

    # -- internals ----------------------------------------------------------------------------

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _render(self, rt: ResourceType, entry: _Entry) -> dict[str, Any]:
        obj = copy.deepcopy(entry.obj)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        obj["metadata"]["managedFields"] = [
            {
                "manager": name,
                "operation": m["operation"],
                "apiVersion": rt.api_version,
                "time": m["time"],
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(m["paths"]),
            }
            for name, m in entry.managers.items()
            if m["paths"]
        ]
        if rt.kind == "PodDisruptionBudget":
            obj["status"] = (
                entry.pinned_status if entry.pinned_status is not None else self._pdb_status(obj)
            )
        return obj

    def _pdb_status(self, pdb: dict[str, Any]) -> dict[str, Any]:
        ns = pdb["metadata"].get("namespace")
        spec = pdb.get("spec") or {}
        pods = [
            e.obj
            for (res, pns, _), e in self._store.items()
            if res == "pods"
            and pns == ns
            and selector_matches(spec.get("selector"), e.obj["metadata"].get("labels") or {})
        ]
        expected = len(pods)
        healthy = sum(1 for p in pods if _pod_ready(p))

        def scaled(v: Any) -> int:
            if isinstance(v, str) and v.endswith("%"):
                return math.ceil(float(v[:-1]) / 100 * expected)
            return int(v)

        if "minAvailable" in spec:
            desired = scaled(spec["minAvailable"])
        elif "maxUnavailable" in spec:
            desired = expected - scaled(spec["maxUnavailable"])
        else:
            desired = expected
        return {
            "observedGeneration": pdb["metadata"].get("generation", 1),
            "expectedPods": expected,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "disruptionsAllowed": max(0, healthy - desired),
        }

    def _require_namespace(self, rt: ResourceType, namespace: str | None) -> None:
        if rt.namespaced and ("namespaces", None, namespace) not in self._store:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )

    def _check_identity(
        self, rt: ResourceType, body: dict[str, Any], namespace: str | None, name: str | None
    ) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
        if body.get("apiVersion") != rt.api_version or body.get("kind") != rt.kind:
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({body.get('apiVersion')}) and kind ({body.get('kind')}) "
                f"do not match the request ({rt.api_version}, {rt.kind})",
            )
        meta = body.get("metadata") or {}
        if name is not None and meta.get("name") not in (None, name):
            raise ApiError(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        body_ns = meta.get("namespace")
        if rt.namespaced and body_ns not in (None, "", namespace):
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )

    def _create(
        self,
        rt: ResourceType,
        body: dict[str, Any],
        manager: str,
        *,
        operation: str,
        persist: bool,
        paths: set[tuple] | None = None,
    ) -> dict[str, Any]:
        meta = body.setdefault("metadata", {})
        ns = meta.get("namespace") if rt.namespaced else None
        if not rt.namespaced:
            meta.pop("namespace", None)
        key = (rt.resource, ns, meta["name"])
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        owned = paths if paths is not None else set(_config_paths(body))
        status = body.pop("status", None)
        apply_defaults(rt, body)
        if status is not None:
            body["status"] = status
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now, generation=1)
        meta["resourceVersion"] = self._next_rv() if persist else ""
        meta.pop("managedFields", None)
        entry = _Entry(body, {manager: {"operation": operation, "paths": owned, "time": now}})
        if persist:
            self._store[key] = entry
        return self._render(rt, entry)

    def _commit(
        self,
        rt: ResourceType,
        key: tuple,
        old: _Entry,
        new_obj: dict[str, Any],
        managers: dict[str, dict[str, Any]],
        manager: str,
        dry_run: bool,
    ) -> dict[str, Any]:
        apply_defaults(rt, new_obj)
        changed_obj = _strip(new_obj) != _strip(old.obj)
        changed_owners = {k: v["paths"] for k, v in managers.items()} != {
            k: v["paths"] for k, v in old.managers.items()
        }
        if changed_obj or changed_owners:
            managers[manager]["time"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if {k: v for k, v in new_obj.items() if k not in ("metadata", "status")} != {
                k: v for k, v in old.obj.items() if k not in ("metadata", "status")
            }:
                new_obj["metadata"]["generation"] = old.obj["metadata"].get("generation", 1) + 1
            if not dry_run:
                new_obj["metadata"]["resourceVersion"] = self._next_rv()
        else:
            managers = old.managers
            new_obj = old.obj
        entry = _Entry(new_obj, managers, old.pinned_status)
        if not dry_run:
            self._store[key] = entry
        return self._render(rt, entry)

    def _apply(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        manager: str | None,
        force: bool,
        dry_run: bool,
    ) -> tuple[dict[str, Any], bool]:
        if not manager:
            raise ApiError(
                400,
                "BadRequest",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
            )
        self._check_identity(rt, body, namespace, name)
        self._require_namespace(rt, namespace)
        key = (rt.resource, namespace, name)
        cfg = _config_paths(body)
        entry = self._store.get(key)
        if entry is None:
            body = copy.deepcopy(body)
            body.setdefault("metadata", {})["name"] = name
            if rt.namespaced:
                body["metadata"]["namespace"] = namespace
            return self._create(
                rt, body, manager, operation="Apply", persist=not dry_run, paths=set(cfg)
            ), True
        managers = {k: {**v, "paths": set(v["paths"])} for k, v in entry.managers.items()}
        conflicts: list[tuple[str, tuple]] = []
        for path, value in cfg.items():
            if get_path(entry.obj, path) == value:
                continue
            for other, m in managers.items():
                if other != manager and any(_overlaps(path, p) for p in m["paths"]):
                    conflicts.append((other, path))
        if conflicts and not force:
            lines = "; ".join(
                f'conflict with "{o}" using {rt.api_version}: {_dotted(p)}' for o, p in conflicts
            )
            raise ApiError(
                409,
                "Conflict",
                f"Apply failed with {len(conflicts)} conflict(s): {lines}",
                {
                    "causes": [
                        {
                            "reason": "FieldManagerConflict",
                            "message": f'conflict with "{o}"',
                            "field": _dotted(p),
                        }
                        for o, p in conflicts
                    ]
                },
            )
        for other, path in conflicts:
            managers[other]["paths"] = {
                p for p in managers[other]["paths"] if not _overlaps(path, p)
            }
        new_obj = copy.deepcopy(entry.obj)
        previous = (
            managers.get(manager, {}).get("paths", set())
            if managers.get(manager, {}).get("operation") == "Apply"
            else set()
        )
        for path in previous - set(cfg):
            if not any(
                any(_overlaps(path, p) for p in m["paths"])
                for o, m in managers.items()
                if o != manager
            ):
                del_path(new_obj, path)
        for path, value in cfg.items():
            set_path(new_obj, path, value)
        managers[manager] = {
            "operation": "Apply",
            "paths": set(cfg),
            "time": managers.get(manager, {}).get("time", ""),
        }
        return self._commit(rt, key, entry, new_obj, managers, manager, dry_run), False

    def _update_patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        patch: dict[str, Any],
        manager: str,
        dry_run: bool,
    ) -> dict[str, Any]:
        key = (rt.resource, namespace, name)
        entry = self._store.get(key)
        if entry is None:
            raise ApiError(
                404,
                "NotFound",
                f'{rt.resource}.{rt.group or "core"} "{name}" not found'
                if rt.group
                else f'{rt.resource} "{name}" not found',
                {"name": name, "kind": rt.resource},
            )
        new_obj = merge_patch(entry.obj, {k: v for k, v in patch.items() if k != "status"})
        touched = {
            p for p, v in leaf_paths(patch).items() if v is not None and p[:1] != ("status",)
        }
        removed = {p for p, v in leaf_paths(patch).items() if v is None}
        managers = {k: {**v, "paths": set(v["paths"])} for k, v in entry.managers.items()}
        for m in (
            managers.values()
        ):  # the updater takes the fields it changed; removed fields have no owner
            m["paths"] = {
                p for p in m["paths"] if not any(_overlaps(p, t) for t in touched | removed)
            }
        mine = managers.setdefault(manager, {"operation": "Update", "paths": set(), "time": ""})
        mine["paths"] |= {p for p in touched if get_path(entry.obj, p) != get_path(new_obj, p)}
        return self._commit(rt, key, entry, new_obj, managers, manager, dry_run)

    def _list(
        self, rt: ResourceType, namespace: str | None, label_selector: str | None
    ) -> dict[str, Any]:
        reqs = parse_label_selector(label_selector or "")
        items = []
        for (res, ns, _), entry in sorted(
            self._store.items(), key=lambda kv: (kv[0][1] or "", kv[0][2])
        ):
            if res != rt.resource or (namespace is not None and ns != namespace):
                continue
            if labels_match(reqs, entry.obj["metadata"].get("labels") or {}):
                item = self._render(rt, entry)
                item.pop("apiVersion", None)
                item.pop("kind", None)
                items.append(item)
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    # -- request dispatch ---------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        url = urlparse(raw_path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        rt, namespace, name, sub = self._route(parts)
        verb = None
        if rt is not None:
            verb = {
                "GET": "get"
                if name
                else ("watch" if query.get("watch") in ("true", "1") else "list"),
                "POST": "create",
                "PUT": "update",
                "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection",
            }.get(method)
        req = Request(
            method=method,
            path=url.path,
            verb=verb,
            group=rt.group if rt else None,
            resource=rt.resource if rt else None,
            namespace=namespace,
            name=name,
            dry_run=query.get("dryRun") == "All",
            field_manager=query.get("fieldManager"),
            force=query.get("force") in ("true", "1"),
            content_type=headers.get("Content-Type"),
            user_agent=headers.get("User-Agent", ""),
        )
        with self._lock:
            self.requests.append(req)
            fault = next((f for f in self.faults if f.matches(req)), None)
            if fault:
                fault.hits += 1
                if fault.times is not None:
                    fault.times -= 1
        if fault and fault.delay:
            time.sleep(fault.delay)
        try:
            if fault and fault.status and not fault.after:
                raise ApiError(
                    fault.status,
                    _REASONS.get(fault.status, "Unknown"),
                    fault.message or f"injected fault {fault.status} for {verb} {req.resource}",
                )
            with self._lock:
                code, payload = self._dispatch(
                    parts, rt, namespace, name, sub, method, query, headers, body, req
                )
            if fault and fault.status and fault.after:
                raise ApiError(
                    fault.status,
                    _REASONS.get(fault.status, "Unknown"),
                    fault.message or f"injected fault {fault.status} after {verb} {req.resource}",
                )
        except ApiError as exc:
            req.status = exc.code
            return exc.code, exc.status()
        req.status = code
        return code, payload

    def _route(
        self, parts: list[str]
    ) -> tuple[ResourceType | None, str | None, str | None, str | None]:
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None, None, None, None
        if not rest:
            return None, None, None, None
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        rt = BY_RESOURCE.get((group, version, rest[0]))
        if rt is None:
            return None, namespace, None, None
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return rt, namespace, name, sub

    def _dispatch(self, parts, rt, namespace, name, sub, method, query, headers, body, req):
        path = "/" + "/".join(parts)
        if rt is None:
            return self._discovery(path)
        if sub is not None:
            raise ApiError(404, "NotFound", f"subresource {sub} is not served by the fake")
        if rt.namespaced and name is not None and namespace is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip()
        if method == "GET":
            if name is None:
                return 200, self._list(rt, namespace, query.get("labelSelector"))
            entry = self._store.get((rt.resource, namespace, name))
            if entry is None:
                what = f"{rt.resource}.{rt.group}" if rt.group else rt.resource
                raise ApiError(
                    404,
                    "NotFound",
                    f'{what} "{name}" not found',
                    {"name": name, "group": rt.group, "kind": rt.resource},
                )
            return 200, self._render(rt, entry)
        try:
            data = yaml.safe_load(body.decode()) if body else None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ApiError(400, "BadRequest", f"error decoding body: {exc}") from None
        dry_run = req.dry_run
        manager = query.get("fieldManager")
        if method == "POST":
            self._check_identity(rt, data, namespace, None)
            self._require_namespace(rt, namespace)
            meta = data.setdefault("metadata", {})
            if rt.namespaced:
                meta["namespace"] = namespace
            if (rt.resource, namespace, meta.get("name")) in self._store:
                raise ApiError(
                    409, "AlreadyExists", f'{rt.resource} "{meta.get("name")}" already exists'
                )
            return 201, self._create(
                rt, data, manager or "unknown", operation="Update", persist=not dry_run
            )
        if method == "PATCH":
            if ctype == "application/apply-patch+yaml":
                obj, created = self._apply(rt, namespace, name, data, manager, req.force, dry_run)
                if created:  # the server authorizes `create` for an apply that creates
                    self.requests.append(
                        Request(
                            **{**req.__dict__, "verb": "create", "implied": True, "status": 201}
                        )
                    )
                return (201 if created else 200), obj
            if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                return 200, self._update_patch(
                    rt, namespace, name, data or {}, manager or "unknown", dry_run
                )
            raise ApiError(
                415, "UnsupportedMediaType", f"the fake does not support patch type {ctype}"
            )
        if method == "PUT":
            self._check_identity(rt, data, namespace, name)
            key = (rt.resource, namespace, name)
            entry = self._store.get(key)
            if entry is None:
                raise ApiError(404, "NotFound", f'{rt.resource} "{name}" not found')
            rv = (data.get("metadata") or {}).get("resourceVersion")
            if rv and rv != entry.obj["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {rt.resource} "{name}": the object has been modified; please apply your changes to the latest version and try again',
                )
            replacement = {k: v for k, v in data.items() if k not in ("status",)}
            patch = {k: v for k, v in replacement.items()}
            return 200, self._update_patch(
                rt, namespace, name, patch, manager or "unknown", dry_run
            )
        if method == "DELETE":
            key = (rt.resource, namespace, name)
            if key not in self._store:
                raise ApiError(404, "NotFound", f'{rt.resource} "{name}" not found')
            obj = self._render(rt, self._store[key])
            if not dry_run:
                del self._store[key]
            return 200, obj
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    def _discovery(self, path: str) -> tuple[int, Any]:
        if path == "/version":
            return 200, {
                "major": "1",
                "minor": "37",
                "gitVersion": "v1.37.0-fake",
                "platform": "linux/amd64",
                "goVersion": "go1.25",
                "compiler": "gc",
                "buildDate": "2026-01-01T00:00:00Z",
                "gitCommit": "fake",
                "gitTreeState": "clean",
            }
        if path == "/api":
            return 200, {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
                ],
            }
        if path == "/apis":
            groups = sorted({(r.group, r.version) for r in RESOURCE_TYPES if r.group})
            return 200, {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": g,
                        "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                        "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v},
                    }
                    for g, v in groups
                ],
            }
        m = re.fullmatch(r"/api/v1|/apis/([^/]+)/([^/]+)", path)
        if m:
            group, version = (m[1] or ""), (m[2] or "v1")
            resources = [r for r in RESOURCE_TYPES if (r.group, r.version) == (group, version)]
            if resources:
                return 200, {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": f"{group}/{version}" if group else version,
                    "resources": [
                        {
                            "name": r.resource,
                            "singularName": r.singular,
                            "namespaced": r.namespaced,
                            "kind": r.kind,
                            "verbs": _VERBS,
                            "shortNames": list(r.short),
                        }
                        for r in resources
                    ],
                }
        raise ApiError(404, "NotFound", "the server could not find the requested resource")


def _strip(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    meta = out.get("metadata") or {}
    for key in ("managedFields", "resourceVersion", "generation"):
        meta.pop(key, None)
    return out


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKubeAPI
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # keep-alive stalls 40 ms per request without it

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        code, payload = self.fake.handle(self.command, self.path, self.headers, body)
        data = json.dumps(payload).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
