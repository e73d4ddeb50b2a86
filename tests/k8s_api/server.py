"""An in-process fake Kubernetes API server, kept only for what a real one cannot do on demand:
injected 429/5xx answers, slow answers and lost responses (a write that is applied, then
answered with an error). Everything else is tested against the real control plane
(`make kube-up`).

The real `kubernetes` client talks to it over HTTP. It serves just enough for the pipeline to
apply and read the launch set: GET and LIST (with `key=value` label selectors) of namespaces,
pods, NetworkPolicies and PodDisruptionBudgets, and server-side apply (`application/apply-patch+yaml`
with `dryRun=All`: the applied fields merged into the stored object, lists replaced whole). No
field ownership, defaulting, validation or status: the real server is the reference for those.
Every request is logged (`requests`, `real_writes()`) so a test can count what was retried.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCE_TYPES = (
    ResourceType("", "v1", "namespaces", "Namespace", False),
    ResourceType("", "v1", "pods", "Pod", True),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True),
)
BY_RESOURCE = {(r.group, r.version, r.resource): r for r in RESOURCE_TYPES}
BY_KIND = {r.kind: r for r in RESOURCE_TYPES}


@dataclass
class Request:
    """One request as the fake received it."""

    verb: str | None
    resource: str | None
    namespace: str | None
    name: str | None
    dry_run: bool

    @property
    def is_write(self) -> bool:
        return self.verb in ("create", "update", "patch", "delete", "deletecollection")


@dataclass
class Fault:
    """Requests matching every set field get `status` (after `delay` seconds); with `after`, the
    request is processed first and then answered with `status` (a lost response)."""

    status: int | None = None
    verb: str | None = None
    resource: str | None = None
    name: str | None = None
    dry_run: bool | None = None
    times: int | None = 1  # None: forever
    delay: float = 0.0
    message: str | None = None
    after: bool = False
    hits: int = 0

    def matches(self, req: Request) -> bool:
        for attr in ("verb", "resource", "name", "dry_run"):
            want = getattr(self, attr)
            if want is not None and getattr(req, attr) != want:
                return False
        return self.times is None or self.times > 0


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def status(self) -> dict[str, Any]:
        reason = {404: "NotFound", 429: "TooManyRequests", 500: "InternalError"}.get(self.code)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": reason or "Unknown",
            "code": self.code,
        }


def merge(target: Any, patch: Any) -> Any:
    """The applied fields over the stored object: maps merged key by key, anything else replaced."""
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target)
    for key, value in patch.items():
        out[key] = merge(out.get(key), value)
    return out


def labels_match(selector: str, labels: dict[str, str]) -> bool:
    for part in filter(None, (p.strip() for p in selector.split(","))):
        key, _, value = part.partition("=")
        if labels.get(key) != value:
            return False
    return True


class FakeKubeAPI:
    """`start()`, `url`, `kubeconfig(path)`, `inject(...)`, `requests`, `get(...)`, `stop()`."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._store: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self._rv = 1000
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> FakeKubeAPI:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
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
        """A kubeconfig whose `context` points at this server (current-context is a decoy)."""
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

    def inject(self, **kw: Any) -> Fault:
        fault = Fault(**kw)
        with self._lock:
            self.faults.append(fault)
        return fault

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._store.get((BY_KIND[kind].resource, namespace, name))
            return copy.deepcopy(obj)

    def real_writes(self) -> list[Request]:
        """Mutating requests that were not dry-runs."""
        with self._lock:
            return [r for r in self.requests if r.is_write and not r.dry_run]

    # -- request handling ---------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        url = urlparse(raw_path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        rt, namespace, name = _route([p for p in url.path.split("/") if p])
        verb = {"GET": "get" if name else "list", "PATCH": "patch"}.get(method, method.lower())
        req = Request(
            verb if rt else None,
            rt.resource if rt else None,
            namespace,
            name,
            query.get("dryRun") == "All",
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
                raise ApiError(fault.status, fault.message or f"injected fault {fault.status}")
            with self._lock:
                code, payload = self._dispatch(rt, name, method, query, headers, body, req)
            if fault and fault.status and fault.after:
                raise ApiError(fault.status, fault.message or f"injected fault {fault.status}")
        except ApiError as exc:
            return exc.code, exc.status()
        return code, payload

    def _dispatch(self, rt, name, method, query, headers, body, req) -> tuple[int, Any]:
        if rt is None:
            raise ApiError(404, "the server could not find the requested resource")
        if method == "GET" and name is None:
            return 200, self._list(rt, query.get("labelSelector"))
        key = (rt.resource, req.namespace, name)
        if method == "GET":
            if key not in self._store:
                raise ApiError(404, f'{rt.resource} "{name}" not found')
            return 200, copy.deepcopy(self._store[key])
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip()
        if method != "PATCH" or ctype != "application/apply-patch+yaml":
            raise ApiError(405, f"{method} {ctype} is not served by the fake")
        if rt.namespaced and ("namespaces", None, req.namespace) not in self._store:
            raise ApiError(404, f'namespaces "{req.namespace}" not found')
        old = self._store.get(key)
        new = merge(old or {}, yaml.safe_load(body.decode()))
        if old is None:
            new["metadata"].update(
                uid=str(uuid.uuid4()), creationTimestamp=_now(), resourceVersion=""
            )
        changed = new != old
        if changed and not req.dry_run:
            self._rv += 1
            new["metadata"]["resourceVersion"] = str(self._rv)
            self._store[key] = new
        return (201 if old is None else 200), copy.deepcopy(new if changed else old)

    def _list(self, rt: ResourceType, selector: str | None) -> dict[str, Any]:
        items = [
            copy.deepcopy(obj)
            for (res, _, _), obj in sorted(self._store.items(), key=lambda kv: repr(kv[0]))
            if res == rt.resource
            and labels_match(selector or "", (obj.get("metadata") or {}).get("labels") or {})
        ]
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "items": items}


def _route(parts: list[str]) -> tuple[ResourceType | None, str | None, str | None]:
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None, None, None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return None, None, None
    rt = BY_RESOURCE.get((group, version, rest[0]))
    return rt, namespace, rest[1] if len(rest) > 1 else None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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

    do_GET = do_PATCH = _serve
