"""Every resource of the code location, configured from `kgents_pipeline.settings` (the same
variables the command line reads; unset = the embedded default)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from kgents_pipeline import settings
from kgents_pipeline.dagster_support import env_or
from kgents_pipeline.errors import ConfigError
from kgents_pipeline.history.store import HistoryStore, open_history
from kgents_pipeline.kube.access import MODES, ClusterAccess, parse_allowlist
from kgents_pipeline.kube.render import RenderedSet, render
from kgents_pipeline.kube.validate import require_valid
from kgents_pipeline.loadtest.session import LoadTestPlan


class HistoryResource(dg.ConfigurableResource):
    """The metrics history, the run archive it is built from, and where the HTML reports go."""

    db_path: str = settings.DB_PATH.default
    archive_dir: str = settings.ARCHIVE_DIR.default
    reports_dir: str = ""  # empty: reports/ beside the history file (data/reports by default,
    # and for a DuckLake history)
    checklist: str = ""  # KGENTS_CHECKLIST when set (then it must exist); empty: the repository's

    def store(self) -> HistoryStore:
        return open_history(self.db_path)

    def reports_path(self) -> Path:
        return Path(self.reports_dir) if self.reports_dir else self.store().local_dir / "reports"


class NotifyResource(dg.ConfigurableResource):
    """Where a change of the verdict's state is posted (empty: nowhere), and how patiently."""

    webhook_url: str = ""
    ui_url: str = settings.UI_URL.default
    timeout_s: float = 5.0  # per attempt: a receiver that hangs costs attempts x this at most
    attempts: int = 3
    backoff_s: float = 1.0  # then 2x, 4x, ...

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}"


class LoadTestResource(dg.ConfigurableResource):
    """How the k6 load test runs. An empty `target_url` means the bundled demo target."""

    target_url: str = ""
    auth_header: str = ""
    rate: int = settings.LAUNCH_RATE_RPS
    duration: str = settings.DURATION.default
    timeout_s: float = 0.0
    demo_latency_ms: float = 0.0
    demo_error_rate: float = 0.0
    runners: int = 1  # k6 processes, one execution segment each

    def plan(self, archive_dir: str) -> LoadTestPlan:
        return LoadTestPlan(
            target_url=self.target_url or None,
            rate=self.rate,
            duration=self.duration,
            auth_header=self.auth_header or None,
            timeout_s=self.timeout_s or None,
            demo_latency_ms=self.demo_latency_ms,
            demo_error_rate=self.demo_error_rate,
            archive_root=archive_dir,
            runners=self.runners,
        )


class ClusterResource(dg.ConfigurableResource):
    """Where the launch manifests live and which cluster (if any) they go to."""

    mode: str = settings.CLUSTER_MODE.default
    kubeconfig: str = ""
    context: str = ""
    context_allowlist: str = ""
    manifests_dir: str = settings.MANIFESTS_DIR.default
    intent_path: str = settings.INTENT.default
    kube_version: str = settings.KUBE_VERSION.default
    allowed_kinds: str = settings.ALLOWED_KINDS.default
    force_conflicts: bool = False
    request_timeout_s: float = float(settings.KUBE_TIMEOUT_S.default)

    def kinds(self) -> tuple[str, ...]:
        return settings.split_list(self.allowed_kinds)

    def access(self) -> ClusterAccess:
        return ClusterAccess(
            mode=self.mode,
            kubeconfig=self.kubeconfig or None,
            context=self.context or None,
            context_allowlist=parse_allowlist(self.context_allowlist),
            request_timeout_s=self.request_timeout_s,
        ).checked()

    def rendered(self) -> RenderedSet:
        """Render with kustomize and validate (schemas, extra checks, kind allowlist)."""
        rendered = render(self.manifests_dir)
        require_valid(rendered.objects, kube_version=self.kube_version, allowed_kinds=self.kinds())
        return rendered


def check_cluster_environment() -> None:
    """Refuse, when the definitions load, cluster settings no step could use (one line naming the
    variable), instead of failing at applied_manifests after the rest of the job ran."""
    mode = settings.CLUSTER_MODE.raw()
    if mode not in MODES:
        raise ConfigError(
            f"{settings.CLUSTER_MODE.env}={mode!r}: expected one of {', '.join(MODES)}"
        )
    if mode == "kubeconfig":
        for setting, what in (
            (settings.KUBE_CONTEXT, "an explicit context name (the current context is never used)"),
            (settings.KUBECONFIG, "the kubeconfig file"),
        ):
            if not setting.raw().strip():
                raise ConfigError(
                    f"{setting.env} is unset: {settings.CLUSTER_MODE.env}=kubeconfig needs {what}"
                )


@dg.definitions
def resources() -> dg.Definitions:
    check_cluster_environment()
    return dg.Definitions(
        resources={
            "history": HistoryResource(
                db_path=env_or(settings.DB_PATH),
                archive_dir=env_or(settings.ARCHIVE_DIR),
                reports_dir=env_or(settings.REPORTS_DIR),
                # Only an explicitly set checklist must exist; unset means the repository's.
                checklist=dg.EnvVar(settings.CHECKLIST.env) if settings.CHECKLIST.is_set() else "",
            ),
            "notify": NotifyResource(
                webhook_url=env_or(settings.NOTIFY_WEBHOOK_URL), ui_url=env_or(settings.UI_URL)
            ),
            "loadtest": LoadTestResource(
                target_url=env_or(settings.TARGET_URL),
                auth_header=env_or(settings.AUTH_HEADER),
                # Numbers are read here: an EnvVar resolves to a string at launch.
                rate=settings.RATE.integer(),
                duration=env_or(settings.DURATION),
                timeout_s=settings.K6_TIMEOUT_S.number(),
                demo_latency_ms=settings.DEMO_LATENCY_MS.number(),
                demo_error_rate=settings.DEMO_ERROR_RATE.number(),
                runners=settings.RUNNERS.integer(),
            ),
            "cluster": ClusterResource(
                mode=env_or(settings.CLUSTER_MODE),
                kubeconfig=env_or(settings.KUBECONFIG),
                context=env_or(settings.KUBE_CONTEXT),
                context_allowlist=env_or(settings.CONTEXT_ALLOWLIST),
                manifests_dir=env_or(settings.MANIFESTS_DIR),
                intent_path=env_or(settings.INTENT),
                kube_version=env_or(settings.KUBE_VERSION),
                allowed_kinds=env_or(settings.ALLOWED_KINDS),
                force_conflicts=settings.FORCE_CONFLICTS.flag(),
                request_timeout_s=settings.KUBE_TIMEOUT_S.number(),
            ),
        }
    )
