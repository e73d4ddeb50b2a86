"""The few Kubernetes API requests the pipeline makes, as typed client calls.

Every request goes through `KubeClient._call`, which knows what it is asking for (verb, group,
resource, namespace) so a 403 names the missing permission, retries only what is safe to repeat
(GET, LIST and dry-run requests) with backoff, and turns every failure into `ClusterError`.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kgents_pipeline.errors import ClusterError
from kgents_pipeline.kube.access import ClusterAccess, api_client

FIELD_MANAGER = "kgents-pipeline"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "kgents-pipeline"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
_RETRY_STATUS = {429, 500, 502, 503, 504}
# The RBAC authorizer's reason: `... cannot create resource "namespaces" in API group "" ...`.
_DENIED = re.compile(r'cannot (\S+) resource "([^"]+)"(?: in API group "([^"]*)")?')


@dataclass(frozen=True)
class KindInfo:
    """How one allowed kind maps onto the typed client and onto RBAC."""

    kind: str
    api: str  # kubernetes.client class name
    group: str
    resource: str
    namespaced: bool
    read: str
    patch: str
    list_all: str


KINDS: dict[str, KindInfo] = {
    "Namespace": KindInfo(
        "Namespace",
        "CoreV1Api",
        "",
        "namespaces",
        False,
        "read_namespace",
        "patch_namespace",
        "list_namespace",
    ),
    "NetworkPolicy": KindInfo(
        "NetworkPolicy",
        "NetworkingV1Api",
        "networking.k8s.io",
        "networkpolicies",
        True,
        "read_namespaced_network_policy",
        "patch_namespaced_network_policy",
        "list_network_policy_for_all_namespaces",
    ),
    "PodDisruptionBudget": KindInfo(
        "PodDisruptionBudget",
        "PolicyV1Api",
        "policy",
        "poddisruptionbudgets",
        True,
        "read_namespaced_pod_disruption_budget",
        "patch_namespaced_pod_disruption_budget",
        "list_pod_disruption_budget_for_all_namespaces",
    ),
}


def kind_info(kind: str) -> KindInfo:
    try:
        return KINDS[kind]
    except KeyError:
        raise ClusterError(
            f"kind {kind} has no typed client mapping (supported: {', '.join(KINDS)})"
        ) from None


class NotFound(ClusterError):
    """404 from the API server."""


class Conflict(ClusterError):
    """409: another field manager owns a field we would change (or a write race)."""


class Rejected(ClusterError):
    """A 4xx answer for this object (400, 403 from admission, 422, ...): the server refused it,
    definitively; nothing was written and repeating the request cannot help."""


class ClusterUnavailable(ClusterError):
    """Environment-level: the API server cannot be reached (refused, DNS, TLS, timeouts after
    retries) or refuses who we are (401, 403). No other object can fare better, so callers abort
    (after recording what was already done) instead of reporting one failed object."""


class Unreachable(ClusterUnavailable):
    """No HTTP answer: connection refused, DNS, TLS or a timeout (after the retries)."""


class Unauthorized(ClusterUnavailable):
    """401: the API server does not accept the credentials."""


class Forbidden(ClusterUnavailable):
    """403: the identity lacks a permission; the message names verb, resource and namespace."""


def status_message(exc: Any) -> str:
    """The `message` of a Kubernetes `Status` error body, else the HTTP reason."""
    body = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body)
            if isinstance(data, dict) and data.get("message"):
                return str(data["message"])
        except (ValueError, TypeError):
            pass
    return f"{getattr(exc, 'status', '?')} {getattr(exc, 'reason', '') or 'error'}".strip()


class KubeClient:
    """Typed calls for the allowed kinds, pods and StatefulSets, with one retry policy."""

    def __init__(self, access: ClusterAccess, api_client_obj: Any | None = None) -> None:
        self.access = access.checked()
        self._api_client = api_client_obj if api_client_obj is not None else api_client(access)
        from kubernetes import client

        self._client = client
        self._apis: dict[str, Any] = {}

    def close(self) -> None:
        self._api_client.close()

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _api(self, name: str) -> Any:
        if name not in self._apis:
            self._apis[name] = getattr(self._client, name)(self._api_client)
        return self._apis[name]

    def to_dict(self, obj: Any) -> dict[str, Any]:
        """A typed model as the API's own camelCase dict (never the snake_case `.to_dict()`)."""
        plain: dict[str, Any] = self._api_client.sanitize_for_serialization(obj)
        return plain

    def _call(
        self,
        fn: Callable[..., Any],
        *,
        verb: str,
        group: str,
        resource: str,
        scope_ns: str | None,
        obj_name: str | None = None,
        safe: bool,
        **kwargs: Any,
    ) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        where = f" in namespace {scope_ns}" if scope_ns else " (cluster scope)"
        what = f"{verb} {resource}{'.' + group if group else ''}{' ' + repr(obj_name) if obj_name else ''}{where}"
        attempts = self.access.retries if safe else 1
        delay = self.access.backoff_s
        last = ""
        for attempt in range(1, attempts + 1):
            try:
                return fn(_request_timeout=self.access.request_timeout_s, **kwargs)
            except ApiException as exc:
                msg = status_message(exc)
                if exc.status == 404:
                    raise NotFound(f"{what}: not found: {msg}") from None
                if exc.status == 403:
                    denied = _DENIED.search(msg)
                    if not denied:
                        # Admission, not authorization (a namespace being deleted, a policy):
                        # this object is refused; the identity may do the rest.
                        raise Rejected(f"{what}: refused (403): {msg}") from None
                    # The authorizer names what it denied: a server-side apply that would
                    # create the object needs `create` as well as `patch`.
                    d_verb, d_resource, d_group = denied.group(1, 2, 3)
                    raise Forbidden(
                        f"forbidden: the pipeline's identity may not {d_verb} {d_resource}"
                        f" (API group {d_group or 'core'!r}){where}: grant it in manifests/rbac/ ({msg})"
                    ) from None
                if exc.status == 401:
                    raise Unauthorized(
                        f"{what}: unauthorized (401): the API server refused the credentials of "
                        f"context {self.access.context_name!r} ({msg})"
                    ) from None
                if exc.status == 409:
                    raise Conflict(f"{what}: conflict: {msg}") from None
                if 400 <= exc.status < 500 and exc.status not in _RETRY_STATUS:
                    raise Rejected(f"{what}: HTTP {exc.status}: {msg}") from None
                if exc.status in _RETRY_STATUS and attempt < attempts:
                    last = f"HTTP {exc.status}: {msg}"
                else:
                    tries = f" after {attempt} attempt(s)" if safe else " (a write: not retried)"
                    raise ClusterError(f"{what}: HTTP {exc.status}: {msg}{tries}") from None
            except (Urllib3Error, OSError) as exc:
                reason = getattr(exc, "reason", None) or exc  # MaxRetryError wraps the cause
                names = f"{type(exc).__name__} {type(reason).__name__}".lower()
                if "ssl" in names or "certificate" in str(reason).lower():
                    kind = "failed (TLS)"
                elif "timeout" in names or "timed out" in str(exc):
                    kind = "timed out"
                else:
                    kind = "failed"
                last = f"{kind}: {type(reason).__name__}"
                if attempt >= attempts:
                    tries = (
                        f" after {attempt} attempt(s)"
                        if safe
                        else " (a write: not retried; re-read before trusting it)"
                    )
                    limit = (
                        f" ({self.access.request_timeout_s:g}s per request)"
                        if kind == "timed out"
                        else ""
                    )
                    raise Unreachable(
                        f"{what}: request {kind}{limit}{tries}: {type(reason).__name__}"
                        f" ({getattr(getattr(self._api_client, 'configuration', None), 'host', '?')})"
                    ) from None
            time.sleep(delay)
            delay *= 2
        raise ClusterError(f"{what}: {last}")  # pragma: no cover - the loop always returns/raises

    # --- the allowed kinds -------------------------------------------------------------------

    def read(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        info = kind_info(kind)
        fn = getattr(self._api(info.api), info.read)
        args: dict[str, Any] = {"name": name}
        if info.namespaced:
            args["namespace"] = namespace
        try:
            obj = self._call(
                fn,
                verb="get",
                group=info.group,
                resource=info.resource,
                scope_ns=namespace if info.namespaced else None,
                obj_name=name,
                safe=True,
                **args,
            )
        except NotFound:
            return None
        return self.to_dict(obj)

    def apply(self, body: dict[str, Any], *, dry_run: bool, force: bool) -> dict[str, Any]:
        """Server-side apply of one object as our field manager; the object the server returns."""
        info = kind_info(body["kind"])
        meta = body["metadata"]
        fn = getattr(self._api(info.api), info.patch)
        args: dict[str, Any] = {
            "name": meta["name"],
            "body": body,
            "field_manager": FIELD_MANAGER,
            "force": force,
            "_content_type": APPLY_CONTENT_TYPE,
        }
        if dry_run:
            args["dry_run"] = "All"
        if info.namespaced:
            args["namespace"] = meta.get("namespace")
        obj = self._call(
            fn,
            verb="patch",
            group=info.group,
            resource=info.resource,
            scope_ns=meta.get("namespace") if info.namespaced else None,
            obj_name=meta["name"],
            safe=dry_run,
            **args,
        )
        return self.to_dict(obj)

    def list_managed(self, kind: str) -> list[dict[str, Any]]:
        """Every live object of `kind` carrying our managed-by label, across namespaces."""
        info = kind_info(kind)
        fn = getattr(self._api(info.api), info.list_all)
        result = self._call(
            fn,
            verb="list",
            group=info.group,
            resource=info.resource,
            scope_ns=None,
            safe=True,
            label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}",
        )
        return [self.to_dict(item) for item in result.items]

    # --- what verification reads -------------------------------------------------------------

    def list_namespaces(self) -> list[dict[str, Any]]:
        api = self._api("CoreV1Api")
        result = self._call(
            api.list_namespace,
            verb="list",
            group="",
            resource="namespaces",
            scope_ns=None,
            safe=True,
        )
        return [self.to_dict(item) for item in result.items]

    def list_pods(self) -> list[dict[str, Any]]:
        api = self._api("CoreV1Api")
        result = self._call(
            api.list_pod_for_all_namespaces,
            verb="list",
            group="",
            resource="pods",
            scope_ns=None,
            safe=True,
        )
        return [self.to_dict(item) for item in result.items]

    def list_network_policies(self) -> list[dict[str, Any]]:
        info = KINDS["NetworkPolicy"]
        fn = getattr(self._api(info.api), info.list_all)
        result = self._call(
            fn, verb="list", group=info.group, resource=info.resource, scope_ns=None, safe=True
        )
        return [self.to_dict(item) for item in result.items]

    def list_stateful_sets(self, namespace: str) -> list[dict[str, Any]]:
        api = self._api("AppsV1Api")
        result = self._call(
            api.list_namespaced_stateful_set,
            verb="list",
            group="apps",
            resource="statefulsets",
            scope_ns=namespace,
            safe=True,
            namespace=namespace,
        )
        return [self.to_dict(item) for item in result.items]

    # --- a k6-operator TestRun and its script ConfigMap (kube/testrun.py) ----------------------

    def apply_config_map(self, body: dict[str, Any], *, force: bool = False) -> dict[str, Any]:
        """Server-side apply of a ConfigMap as our field manager."""
        meta = body["metadata"]
        obj = self._call(
            self._api("CoreV1Api").patch_namespaced_config_map,
            verb="patch",
            group="",
            resource="configmaps",
            scope_ns=meta["namespace"],
            obj_name=meta["name"],
            safe=False,
            name=meta["name"],
            namespace=meta["namespace"],
            body=body,
            field_manager=FIELD_MANAGER,
            force=force,
            _content_type=APPLY_CONTENT_TYPE,
        )
        return self.to_dict(obj)

    def apply_custom(
        self, group: str, version: str, plural: str, body: dict[str, Any], *, force: bool = False
    ) -> dict[str, Any]:
        """Server-side apply of a namespaced custom object as our field manager."""
        meta = body["metadata"]
        api = self._api("CustomObjectsApi")
        obj: dict[str, Any] = self._call(
            # The API's own `group` positionally: `_call` takes `group` for its messages.
            functools.partial(
                api.patch_namespaced_custom_object,
                group,
                version,
                meta["namespace"],
                plural,
                meta["name"],
            ),
            verb="patch",
            group=group,
            resource=plural,
            scope_ns=meta["namespace"],
            obj_name=meta["name"],
            safe=False,
            body=body,
            field_manager=FIELD_MANAGER,
            force=force,
            _content_type=APPLY_CONTENT_TYPE,
        )
        if obj is None:  # the client drops the body of a 201 (created) answer to a patch
            read = self.read_custom(group, version, plural, meta["namespace"], meta["name"])
            if read is None:
                raise ClusterError(f"{plural}.{group} {meta['name']!r}: applied, then not found")
            obj = read
        return obj

    def read_custom(
        self, group: str, version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        try:
            api = self._api("CustomObjectsApi")
            obj: dict[str, Any] = self._call(
                functools.partial(
                    api.get_namespaced_custom_object, group, version, namespace, plural, name
                ),
                verb="get",
                group=group,
                resource=plural,
                scope_ns=namespace,
                obj_name=name,
                safe=True,
            )
        except NotFound:
            return None
        return obj

    def watch_custom(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str,
        name: str,
        *,
        resource_version: str,
        timeout_s: float,
    ) -> Any:
        """Watch events (`{"type", "object"}`) of one custom object from `resource_version`;
        the server ends the watch after `timeout_s`."""
        from kubernetes import watch

        api = self._api("CustomObjectsApi")
        return watch.Watch().stream(  # type: ignore[no-untyped-call]
            api.list_namespaced_custom_object,
            group,
            version,
            namespace,
            plural,
            field_selector=f"metadata.name={name}",
            resource_version=resource_version,
            timeout_seconds=max(1, int(timeout_s)),
            _request_timeout=timeout_s + self.access.request_timeout_s,
        )

    def delete_owned(
        self, kind: str, namespace: str, name: str, *, group: str = "", version: str = "v1"
    ) -> bool:
        """Delete one object we created (a ConfigMap, or a custom object of `group`/`version`
        whose plural is `kind`); False when it was already gone."""
        try:
            if kind == "configmaps":
                self._call(
                    self._api("CoreV1Api").delete_namespaced_config_map,
                    verb="delete",
                    group="",
                    resource="configmaps",
                    scope_ns=namespace,
                    obj_name=name,
                    safe=True,  # deleting again is harmless: a 404 then says it is gone
                    name=name,
                    namespace=namespace,
                )
            else:
                api = self._api("CustomObjectsApi")
                self._call(
                    functools.partial(
                        api.delete_namespaced_custom_object, group, version, namespace, kind, name
                    ),
                    verb="delete",
                    group=group,
                    resource=kind,
                    scope_ns=namespace,
                    obj_name=name,
                    safe=True,
                )
        except NotFound:
            return False
        return True

    def list_pods_labelled(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        result = self._call(
            self._api("CoreV1Api").list_namespaced_pod,
            verb="list",
            group="",
            resource="pods",
            scope_ns=namespace,
            safe=True,
            namespace=namespace,
            label_selector=selector,
        )
        return [self.to_dict(item) for item in result.items]
