"""How the pipeline reaches a cluster: `offline` (default), `kubeconfig` with an explicit context,
or `in-cluster`. Never the kubeconfig's current context. `kubernetes` is imported lazily."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kgents_pipeline import settings
from kgents_pipeline.errors import ClusterError

MODES = ("offline", "kubeconfig", "in-cluster")
IN_CLUSTER_CONTEXT = "in-cluster"


@dataclass(frozen=True)
class ClusterAccess:
    """Where and how to talk to the API server, plus the request budget."""

    mode: str = "offline"
    kubeconfig: str | None = None
    context: str | None = None
    context_allowlist: tuple[str, ...] = field(default=())
    request_timeout_s: float = 10.0
    retries: int = 3  # attempts for safe requests (GET, LIST, dry-run) on 429/5xx/timeouts
    backoff_s: float = 0.2

    @property
    def live(self) -> bool:
        return self.mode != "offline"

    @property
    def context_name(self) -> str | None:
        """The context label recorded with results (`in-cluster` in that mode, None offline)."""
        if self.mode == "in-cluster":
            return IN_CLUSTER_CONTEXT
        return self.context if self.mode == "kubeconfig" else None

    def checked(self) -> ClusterAccess:
        """Self, after refusing configurations that could reach the wrong cluster."""
        if self.mode not in MODES:
            raise ClusterError(f"cluster mode {self.mode!r}: expected one of {', '.join(MODES)}")
        if self.mode == "kubeconfig":
            if not self.context:
                raise ClusterError(
                    "kubeconfig mode needs an explicit context name (--context / KGENTS_KUBE_CONTEXT); "
                    "the current context is never used"
                )
            if not self.kubeconfig:
                raise ClusterError(
                    "kubeconfig mode needs a kubeconfig file (--kubeconfig / KGENTS_KUBECONFIG)"
                )
        allow = tuple(a for a in self.context_allowlist if a)
        if self.live and allow and self.context_name not in allow:
            raise ClusterError(
                f"context {self.context_name!r} is not in the context allowlist ({', '.join(allow)})"
            )
        if self.request_timeout_s <= 0 or self.retries < 1:
            raise ClusterError("request timeout must be > 0 and retries >= 1")
        return self


def parse_allowlist(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """`a,b` or a sequence -> a tuple of names (blank entries dropped)."""
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(item.strip() for item in items if item and item.strip())


def is_loopback_host(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def kubeconfig_contexts(path: Path) -> list[str]:
    """The context names a kubeconfig declares (read here: no `current-context` needed, since
    the pipeline never uses it). Every unreadable or malformed file is a one-line ClusterError."""
    from kgents_pipeline import safe_yaml

    try:
        text = safe_yaml.read_text(path, error=ClusterError)
    except ClusterError as exc:
        raise ClusterError(f"kubeconfig {exc}") from None
    doc = safe_yaml.load(text, f"kubeconfig {path}", error=ClusterError)
    if not isinstance(doc, dict):
        kind = "empty" if doc is None else f"a {type(doc).__name__}"
        raise ClusterError(f"kubeconfig {path}: expected a kubeconfig mapping, got {kind}")
    contexts = doc.get("contexts") or []
    if not isinstance(contexts, list):
        raise ClusterError(f"kubeconfig {path}: `contexts` must be a list")
    names = []
    for i, entry in enumerate(contexts):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            raise ClusterError(f"kubeconfig {path}: contexts[{i}] has no name")
        if not isinstance(entry.get("context"), dict):
            raise ClusterError(f"kubeconfig {path}: context {name!r} has no `context` mapping")
        names.append(name)
    return names


def api_client(access: ClusterAccess) -> Any:
    """A `kubernetes.client.ApiClient` for a live mode (ClusterError for offline or bad config)."""
    access.checked()
    if not access.live:
        raise ClusterError("offline mode has no cluster: choose kubeconfig or in-cluster")
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    if access.mode == "kubeconfig":
        path = Path(access.kubeconfig or "").expanduser()
        if not path.is_file():
            raise ClusterError(f"kubeconfig {path} does not exist")
        names = kubeconfig_contexts(path)
        if access.context not in names:
            raise ClusterError(
                f"context {access.context!r} not found in {path} (contexts: {', '.join(names) or 'none'})"
            )
        try:
            # An explicit context: the loader never reads current-context.
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(path),
                context=access.context,
                client_configuration=configuration,
                persist_config=False,
            )
        except ConfigException as exc:
            raise ClusterError(
                f"kubeconfig {path}: context {access.context!r}: {' '.join(str(exc).split())}"
            ) from None
        except (KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
            raise ClusterError(
                f"kubeconfig {path}: context {access.context!r} is malformed "
                f"({type(exc).__name__}: {' '.join(str(exc).split())})"
            ) from None
        if not configuration.host:
            raise ClusterError(
                f"kubeconfig {path}: context {access.context!r}: its cluster has no server"
            )
    else:
        from kubernetes.config.incluster_config import InClusterConfigLoader

        tokens = Path(settings.SERVICE_ACCOUNT_DIR.raw())
        try:
            loader = InClusterConfigLoader(  # type: ignore[no-untyped-call]
                token_filename=str(tokens / "token"), cert_filename=str(tokens / "ca.crt")
            )
            loader.load_and_set(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except ConfigException as exc:
            raise ClusterError(
                f"cannot load cluster configuration: {exc} (ServiceAccount token and ca.crt "
                f"read from {tokens}, {settings.SERVICE_ACCOUNT_DIR.env})"
            ) from None
    # Configuration() reads proxy variables: a proxy in front of a loopback API server is never
    # what anyone meant (and breaks test servers); remote clusters keep the environment's proxy.
    if is_loopback_host(configuration.host):
        configuration.proxy = ""
        configuration.no_proxy = ""
    configuration.retries = 0  # our own retry policy decides what is safe to retry
    # Never `configuration.debug`: it prints request headers, bearer tokens included, to stdout.
    return client.ApiClient(configuration)
