"""The real control plane the cluster tests run against (`make kube-up`, tools/kube/).

`ControlPlane` is the session's handle on it: the admin kubeconfig (context `kgents-test`), typed
admin clients, the real kubectl, and the API server's audit log (every request but the control
plane's own, at Metadata level: the real server's request log). `LaunchSet` is one test's copy of
the launch manifests with namespaces of its own, so tests stay independent in any order.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

from kgents_pipeline.kube.access import ClusterAccess
from kgents_pipeline.kube.client import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from kgents_pipeline.kube.render import RenderedSet, render

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
STATE_DIR = Path(os.environ.get("KGENTS_KUBE_STATE_DIR") or REPO / ".kube-test").resolve()
CONTEXT = "kgents-test"
KUBECTL = str(Path(sys.executable).parent / "kubectl")
# The test's own requests carry this user agent; the pipeline's carry the client's default.
TEST_USER_AGENT = "kgents-tests"
# The namespaces the launch set and its intent name; each LaunchSet renames them with a suffix.
LAUNCH_NAMESPACES = ("agents", "triad", "gateway", "observability", "sandbox")
_NAMESPACE_RE = re.compile(r"\bkgents-(" + "|".join(LAUNCH_NAMESPACES) + r")\b")
_TEST_NAMESPACE_RE = re.compile(r"^kgents-(" + "|".join(LAUNCH_NAMESPACES) + r")-[a-z0-9]{6}$")
PIPELINE_USER_AGENT = "OpenAPI-Generator/"  # the kubernetes client's default
SENTINEL = "audit-sentinel-"


class NotUp(Exception):
    """The control plane is not running: the fixture fails with what to run."""


def wait_until(what: str, probe: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    """Poll `probe` until it returns something truthy; fail naming `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


# --- the audit log ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEvent:
    """One request the API server answered (ResponseComplete), as its audit log records it."""

    verb: str
    user: str
    user_agent: str
    resource: str
    group: str
    namespace: str | None
    name: str | None
    subresource: str | None
    code: int
    dry_run: bool
    field_manager: str | None
    force: bool
    uri: str

    @classmethod
    def parse(cls, event: dict[str, Any]) -> AuditEvent:
        ref = event.get("objectRef") or {}
        uri = event.get("requestURI", "")
        query = {k: v[-1] for k, v in parse_qs(urlparse(uri).query).items()}
        return cls(
            verb=event.get("verb", ""),
            user=(event.get("user") or {}).get("username", ""),
            user_agent=event.get("userAgent", ""),
            resource=ref.get("resource", ""),
            group=ref.get("apiGroup", ""),
            namespace=ref.get("namespace"),
            name=ref.get("name"),
            subresource=ref.get("subresource"),
            code=(event.get("responseStatus") or {}).get("code", 0),
            dry_run=query.get("dryRun") == "All",
            field_manager=query.get("fieldManager"),
            force=query.get("force") in ("true", "1"),
            uri=uri,
        )

    @property
    def is_write(self) -> bool:
        return self.verb in ("create", "update", "patch", "delete", "deletecollection")

    @property
    def real_write(self) -> bool:
        """A mutating request that was not a dry-run and that the server accepted."""
        return self.is_write and not self.dry_run and 200 <= self.code < 300


class AuditLog:
    """The API server's audit log, read from a mark. `since(mark)` first sends a sentinel
    request and waits for it to be logged, so every request before it is in what it returns."""

    def __init__(self, path: Path, core_api: Any) -> None:
        self.path = path
        self._core = core_api

    def mark(self) -> int:
        self._sync()
        return self.path.stat().st_size

    def since(self, mark: int) -> list[AuditEvent]:
        self._sync()
        with self.path.open("rb") as handle:
            if handle.seek(0, os.SEEK_END) < mark:  # rotated: the new file holds everything since
                mark = 0
            handle.seek(mark)
            lines = handle.read().splitlines()
        events = [AuditEvent.parse(json.loads(line)) for line in lines if line.strip()]
        return [e for e in events if not (e.name or "").startswith(SENTINEL)]

    def pipeline_requests(self, mark: int, user: str | None = None) -> list[AuditEvent]:
        """What the pipeline (the kubernetes client's user agent) sent since `mark`."""
        return [
            e
            for e in self.since(mark)
            if e.user_agent.startswith(PIPELINE_USER_AGENT) and (user is None or e.user == user)
        ]

    def _sync(self) -> None:
        from kubernetes.client.exceptions import ApiException

        name = f"{SENTINEL}{uuid.uuid4().hex[:12]}"
        try:
            self._core.read_namespaced_config_map(name, "default")
        except ApiException as exc:
            assert exc.status == 404, exc
        wait_until(
            f"the audit log to record {name}",
            lambda: self.path.is_file() and name.encode() in _tail(self.path),
            timeout_s=10,
        )


def _tail(path: Path, size: int = 1 << 16) -> bytes:
    with path.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, end - size))
        return handle.read()


# --- the control plane -----------------------------------------------------------------------


class ControlPlane:
    """The admin's handle on the control plane `make kube-up` started."""

    def __init__(self, state_dir: Path = STATE_DIR) -> None:
        self.state_dir = state_dir
        self.kubeconfig = state_dir / "kubeconfig"
        self.context = CONTEXT
        if not self.kubeconfig.is_file():
            raise NotUp(f"no {self.kubeconfig}")
        doc = yaml.safe_load(self.kubeconfig.read_text())
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == CONTEXT)
        self.server: str = cluster["server"]
        self.ca_pem: bytes = base64.b64decode(cluster["certificate-authority-data"])
        self.api = self._admin_client()
        from kubernetes import client

        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.policy = client.PolicyV1Api(self.api)
        self.networking = client.NetworkingV1Api(self.api)
        self.rbac = client.RbacAuthorizationV1Api(self.api)
        self.admission = client.AdmissionregistrationV1Api(self.api)
        self.authorization = client.AuthorizationV1Api(self.api)
        try:
            status = self.api.call_api("GET", f"{self.server}/readyz", _request_timeout=5).status
        except Exception as exc:  # refused, TLS, timeout: not up
            raise NotUp(f"{self.server}/readyz: {type(exc).__name__}: {exc}") from None
        if status != 200:
            raise NotUp(f"{self.server}/readyz answered {status}")
        self.audit = AuditLog(state_dir / "logs" / "audit.log", self.core)
        if not self.audit.path.is_file():
            raise NotUp(f"no audit log at {self.audit.path}: started by an older tools/kube")

    def _admin_client(self) -> Any:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(self.kubeconfig),
            context=CONTEXT,
            client_configuration=configuration,
            persist_config=False,
        )
        configuration.proxy = ""
        configuration.no_proxy = ""
        api = client.ApiClient(configuration)
        api.user_agent = TEST_USER_AGENT
        return api

    def access(self, **kw: Any) -> ClusterAccess:
        """Cluster access for the pipeline, as the admin (context `kgents-test`)."""
        opts: dict[str, Any] = {
            "context": CONTEXT,
            "request_timeout_s": 10.0,
            "retries": 3,
            "backoff_s": 0.05,
            **kw,
        }
        return ClusterAccess(mode="kubeconfig", kubeconfig=str(self.kubeconfig), **opts)

    def cli_args(self) -> list[str]:
        return ["--kubeconfig", str(self.kubeconfig), "--context", CONTEXT]

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        stdin: str | None = None,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """The real kubectl, as the admin unless another kubeconfig is given."""
        done = subprocess.run(
            [
                KUBECTL,
                f"--kubeconfig={kubeconfig or self.kubeconfig}",
                f"--context={CONTEXT}",
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: exit {done.returncode}: {done.stderr}")
        return done

    def token_kubeconfig(self, path: Path, token: str, *, server: str | None = None) -> Path:
        """A kubeconfig for a bearer-token identity on this control plane, context `kgents-test`
        (its current-context a decoy on a closed port: the pipeline must never use it)."""
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": CONTEXT,
                    "cluster": {
                        "server": server or self.server,
                        "certificate-authority-data": base64.b64encode(self.ca_pem).decode(),
                    },
                },
                {"name": "decoy", "cluster": {"server": "https://127.0.0.1:9"}},
            ],
            "users": [{"name": "token", "user": {"token": token}}],
            "contexts": [
                {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "token"}},
                {"name": "decoy", "context": {"cluster": "decoy", "user": "token"}},
            ],
            "current-context": "decoy",
        }
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path

    def admin_kubeconfig_copy(self, path: Path, *, current_context: str | None = "decoy") -> Path:
        """The admin kubeconfig with a decoy current-context on a closed port (or none)."""
        doc = yaml.safe_load(self.kubeconfig.read_text())
        doc["clusters"].append({"name": "decoy", "cluster": {"server": "https://127.0.0.1:9"}})
        user = doc["contexts"][0]["context"]["user"]
        doc["contexts"].append({"name": "decoy", "context": {"cluster": "decoy", "user": user}})
        if current_context is None:
            doc.pop("current-context", None)
        else:
            doc["current-context"] = current_context
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path

    # -- what the tests read and change as the admin ----------------------------------------

    def read(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        fn, args = {
            "Namespace": (self.core.read_namespace, (name,)),
            "NetworkPolicy": (self.networking.read_namespaced_network_policy, (name, namespace)),
            "PodDisruptionBudget": (
                self.policy.read_namespaced_pod_disruption_budget,
                (name, namespace),
            ),
            "StatefulSet": (self.apps.read_namespaced_stateful_set, (name, namespace)),
        }[kind]
        try:
            return self.api.sanitize_for_serialization(fn(*args))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def ensure_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Create a namespace (as the admin, not our field manager) with its default
        ServiceAccount, so pods are admitted without waiting for the ServiceAccount controller."""
        from kubernetes.client.exceptions import ApiException

        body = {"metadata": {"name": name, "labels": labels or {}}}
        for create in (
            lambda: self.core.create_namespace(body),
            lambda: self.core.create_namespaced_service_account(
                name, {"metadata": {"name": "default"}}
            ),
        ):
            try:
                create()
            except ApiException as exc:
                if exc.status != 409:
                    raise

    def delete_namespaces(self, names: Iterable[str]) -> None:
        """Empty each namespace of what could leak into another test (objects carrying our label,
        pods, StatefulSets), drop our label from it, then delete it without waiting: the namespace
        controller takes at least 5 s to finish, and no test reuses a name."""
        from concurrent.futures import ThreadPoolExecutor

        names = list(names)
        if names:
            with ThreadPoolExecutor(len(names)) as pool:
                list(pool.map(self._empty_and_delete, names))

    def _empty_and_delete(self, ns: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.apps.delete_collection_namespaced_stateful_set(ns)  # first: no pod comes back
            self.core.delete_collection_namespaced_pod(ns, grace_period_seconds=0)
            self.networking.delete_collection_namespaced_network_policy(ns)
            self.policy.delete_collection_namespaced_pod_disruption_budget(ns)
            self.core.patch_namespace(
                ns,
                {"metadata": {"labels": {MANAGED_BY_LABEL: None}}},
                _content_type="application/merge-patch+json",
            )
            self.core.delete_namespace(ns)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def clean_leftovers(self) -> None:
        """What a killed session left: test namespaces, and every object carrying our label."""
        names = {
            n.metadata.name
            for n in self.core.list_namespace().items
            if _TEST_NAMESPACE_RE.match(n.metadata.name) and n.status.phase != "Terminating"
        }
        selector = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
        names |= {n.metadata.name for n in self.core.list_namespace(label_selector=selector).items}
        for lister in (
            self.networking.list_network_policy_for_all_namespaces,
            self.policy.list_pod_disruption_budget_for_all_namespaces,
        ):
            names |= {o.metadata.namespace for o in lister(label_selector=selector).items}
        self.delete_namespaces(sorted(names - {"default", "kube-system", "kube-public"}))


# --- one test's launch set -------------------------------------------------------------------


@dataclass
class LaunchSet:
    """The repository's launch manifests and intent, copied with every launch namespace renamed
    `kgents-<tier>-<suffix>`: the same objects, in namespaces no other test uses."""

    plane: ControlPlane
    root: Path
    suffix: str = field(default_factory=lambda: _suffix())
    _rendered: RenderedSet | None = None

    def __post_init__(self) -> None:
        shutil.copytree(MANIFESTS, self.root)
        for path in self.root.rglob("*.yaml"):
            path.write_text(self.rename(path.read_text()))

    @property
    def dir(self) -> Path:
        return self.root

    @property
    def intent(self) -> Path:
        return self.root / "launch" / "intent.yaml"

    @property
    def namespaces(self) -> list[str]:
        return [self.ns(f"kgents-{tier}") for tier in LAUNCH_NAMESPACES]

    def rename(self, text: str) -> str:
        """Every launch namespace name in `text` (a ref, a message, a manifest) renamed."""
        return _NAMESPACE_RE.sub(lambda m: f"{m.group(0)}-{self.suffix}", text)

    def ns(self, name: str) -> str:
        return self.rename(name)

    def ref(self, ref: str) -> str:
        return self.rename(ref)

    @property
    def rendered(self) -> RenderedSet:
        if self._rendered is None:
            self._rendered = render(self.root)
        return self._rendered

    def cleanup(self) -> None:
        self.plane.delete_namespaces(self.namespaces)


def _suffix() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(6))


# --- workloads: the kubelet's part, played through the status subresource --------------------


def mark_pod(plane: ControlPlane, namespace: str, name: str, ip: str, *, ready: bool) -> None:
    """What a kubelet would report: Running, with an IP, Ready or not."""
    plane.core.patch_namespaced_pod_status(
        name,
        namespace,
        {
            "status": {
                "phase": "Running",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            }
        },
        _content_type="application/merge-patch+json",
    )


def seed_workloads(
    plane: ControlPlane,
    launch: LaunchSet,
    *,
    nats_replicas: int = 3,
    ready_nats: int | None = None,
    skip: tuple[str, ...] = (),
) -> None:
    """The intent's workloads as live pods: plain pods for every workload but NATS, and NATS as a
    StatefulSet whose pods the real StatefulSet controller creates; each marked Running (and
    Ready) through the status subresource, since no kubelet runs."""
    from kgents_pipeline.netpol import load_intent, workload_model

    _, pods = workload_model(load_intent(launch.intent))
    for ns in sorted({p["metadata"]["namespace"] for p in pods}):
        plane.ensure_namespace(ns)
    for p in pods:
        app = p["metadata"]["labels"].get("app.kubernetes.io/name")
        if app in skip or app == "nats":
            continue
        meta = p["metadata"]
        container = {"image": "registry.invalid/x", **p["spec"]["containers"][0]}
        plane.core.create_namespaced_pod(
            meta["namespace"],
            {"metadata": meta, "spec": {"containers": [container]}},
        )
        mark_pod(plane, meta["namespace"], meta["name"], p["status"]["podIP"], ready=True)
    if "nats" not in skip:
        start_nats(plane, launch, replicas=nats_replicas, ready=ready_nats)


def start_nats(
    plane: ControlPlane, launch: LaunchSet, *, replicas: int = 3, ready: int | None = None
) -> None:
    """The NATS StatefulSet; waits for its pods, marks the first `ready` of them Ready."""
    ns = launch.ns("kgents-triad")
    ports = [4222, 6222, 7777, 8222]
    plane.apps.create_namespaced_stateful_set(
        ns,
        {
            "metadata": {"name": "nats"},
            "spec": {
                "replicas": replicas,
                "serviceName": "nats",
                # All pods at once (as the NATS chart does): OrderedReady would wait for each.
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": {"app.kubernetes.io/name": "nats"}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "nats"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "nats",
                                "image": "registry.invalid/nats",
                                "ports": [{"containerPort": p} for p in ports],
                            }
                        ]
                    },
                },
            },
        },
    )
    mark_nats(plane, launch, replicas=replicas, ready=ready)


def nats_pods(plane: ControlPlane, launch: LaunchSet) -> list[Any]:
    pods = plane.core.list_namespaced_pod(
        launch.ns("kgents-triad"), label_selector="app.kubernetes.io/name=nats"
    ).items
    return sorted(pods, key=lambda p: p.metadata.name)


def mark_nats(
    plane: ControlPlane, launch: LaunchSet, *, replicas: int, ready: int | None = None
) -> None:
    """Wait until the StatefulSet controller has exactly `replicas` pods; mark them Running,
    the first `ready` (default all) Ready."""
    ready = replicas if ready is None else ready
    pods = wait_until(
        f"the StatefulSet controller to run {replicas} NATS pods",
        lambda: (p := nats_pods(plane, launch)) and len(p) == replicas and p,
    )
    for i, pod in enumerate(pods):
        mark_pod(
            plane, pod.metadata.namespace, pod.metadata.name, f"10.244.0.{10 + i}", ready=i < ready
        )


def wait_for_pdb(
    plane: ControlPlane, launch: LaunchSet, *, expected: int, healthy: int
) -> dict[str, Any]:
    """The NATS PDB once the real disruption controller has observed it with these pods."""

    def settled() -> dict[str, Any] | None:
        pdb = plane.read("PodDisruptionBudget", launch.ns("kgents-triad"), "nats")
        status = (pdb or {}).get("status") or {}
        if (
            pdb
            and status.get("observedGeneration") == pdb["metadata"]["generation"]
            and status.get("expectedPods") == expected
            and status.get("currentHealthy") == healthy
        ):
            return pdb
        return None

    return wait_until(
        f"the disruption controller to see {healthy}/{expected} healthy NATS pods", settled
    )
