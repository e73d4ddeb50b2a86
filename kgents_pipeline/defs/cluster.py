"""Cluster assets: render -> apply -> verify the launch manifests (seed Phase 7 steps 1 and 2).

| variable                  | default                       | meaning                                    |
| KGENTS_CLUSTER_MODE       | offline                       | offline, kubeconfig or in-cluster          |
| KGENTS_KUBECONFIG         | (unset)                       | kubeconfig file (kubeconfig mode)          |
| KGENTS_KUBE_CONTEXT       | (unset)                       | context name; the current one is never used|
| KGENTS_CONTEXT_ALLOWLIST  | (unset: any named context)    | comma-separated context names allowed      |
| KGENTS_MANIFESTS_DIR      | manifests                     | kustomize tree                             |
| KGENTS_INTENT             | manifests/launch/intent.yaml  | launch intent for the policy check         |
| KGENTS_KUBE_VERSION       | 1.37                          | schema version for validation              |
| KGENTS_ALLOWED_KINDS      | Namespace,NetworkPolicy,PodDisruptionBudget | kind allowlist               |
| KGENTS_FORCE_CONFLICTS    | false                         | take fields owned by other field managers  |
"""

import os
from collections.abc import Callable
from typing import Any, TypeVar

import dagster as dg

from kgents_pipeline.dagster_support import env_or, failure
from kgents_pipeline.defs.resources import HistoryResource
from kgents_pipeline.errors import ConfigError, KgentsError
from kgents_pipeline.kube.access import MODES, ClusterAccess, parse_allowlist
from kgents_pipeline.kube.render import RenderedSet, render
from kgents_pipeline.kube.validate import DEFAULT_ALLOWED_KINDS, DEFAULT_KUBE_VERSION, require_valid

T = TypeVar("T")


class ClusterResource(dg.ConfigurableResource):
    """Where the launch manifests live and which cluster (if any) they go to."""

    mode: str = "offline"
    kubeconfig: str = ""
    context: str = ""
    context_allowlist: str = ""
    manifests_dir: str = "manifests"
    intent_path: str = "manifests/launch/intent.yaml"
    kube_version: str = DEFAULT_KUBE_VERSION
    allowed_kinds: str = ",".join(DEFAULT_ALLOWED_KINDS)
    force_conflicts: bool = False
    request_timeout_s: float = 10.0

    def kinds(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.allowed_kinds.split(",") if k.strip())

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


def _domain(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a domain call; its errors become `dg.Failure` with what the user needs."""
    try:
        return fn(*args, **kwargs)
    except KgentsError as exc:
        raise failure(exc) from exc


def _md_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> dg.MetadataValue:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return dg.MetadataValue.md("\n".join(lines))


@dg.asset(group_name="cluster", kinds={"kubernetes"})
def rendered_manifests(cluster: ClusterResource) -> dg.MaterializeResult:
    """The launch set rendered by kustomize and validated offline; data version = its sha256."""
    rendered = _domain(cluster.rendered)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(rendered.sha256),
        metadata={
            "sha256": rendered.sha256,
            "dagster/row_count": len(rendered.objects),
            "kinds": rendered.kinds(),
            "kube_version": cluster.kube_version,
            "objects": _md_table(
                [(o.ref, o.source) for o in rendered.objects], ("object", "source")
            ),
        },
    )


@dg.asset(group_name="cluster", kinds={"kubernetes"}, deps=[rendered_manifests], pool="duckdb")
def applied_manifests(
    context: dg.AssetExecutionContext, cluster: ClusterResource, history: HistoryResource
) -> dg.MaterializeResult:
    """Staged server-side apply (live modes); offline records a rehearsal and applies nothing."""
    from kgents_pipeline.history.cluster import record_apply, record_not_applied

    rendered = _domain(cluster.rendered)
    access = _domain(cluster.access)
    if not access.live:
        _domain(record_not_applied, history.db_path, context.run.run_id, rendered)
        return dg.MaterializeResult(
            metadata={
                "mode": "offline",
                "status": "not applied (offline rehearsal)",
                "rendered_sha256": rendered.sha256,
                "dagster/row_count": len(rendered.objects),
            }
        )
    from kgents_pipeline.kube.apply import ApplyAborted

    try:
        report = _apply_live(access, rendered, cluster.force_conflicts, cluster.kinds())
    except ApplyAborted as exc:
        # Environment-level error: record exactly what was applied before it, then fail the step.
        _domain(record_apply, history.db_path, context.run.run_id, exc.report)
        raise failure(exc) from exc
    except KgentsError as exc:
        raise failure(exc) from exc
    _domain(record_apply, history.db_path, context.run.run_id, report)
    metadata = {
        "mode": "live",
        "context": report.context or "",
        "rendered_sha256": rendered.sha256,
        **{f"count_{k}": v for k, v in report.counts().items()},
        "orphans": dg.MetadataValue.json(list(report.orphans)),
        "results": _md_table(
            [(r.action, r.ref, r.error) for r in report.results], ("action", "object", "error")
        ),
    }
    if report.failed:
        raise dg.Failure(
            description=f"{len(report.failed)} object(s) failed to apply: "
            + "; ".join(f"{r.ref}: {r.error}" for r in report.failed[:3]),
            metadata=metadata,
        )
    return dg.MaterializeResult(metadata=metadata)


def _apply_live(access: ClusterAccess, rendered: RenderedSet, force: bool, kinds: tuple[str, ...]):
    from kgents_pipeline.kube.apply import apply_set
    from kgents_pipeline.kube.client import KubeClient

    with KubeClient(access) as client:
        return apply_set(client, rendered, force_conflicts=force, allowed_kinds=kinds)


def _verify(access: ClusterAccess, rendered: RenderedSet, intent_path: str):
    from kgents_pipeline.kube.client import KubeClient
    from kgents_pipeline.kube.verify import verify_live, verify_offline

    if not access.live:
        return verify_offline(rendered, intent_path)
    with KubeClient(access) as client:
        return verify_live(client, rendered, intent_path)


@dg.asset(
    group_name="cluster",
    kinds={"kubernetes"},
    deps=[applied_manifests],
    pool="duckdb",
    check_specs=[
        dg.AssetCheckSpec(
            "intent_holds",
            asset="policy_verification",
            blocking=True,
            description="The netpol intent check holds on the (live) objects.",
        ),
        dg.AssetCheckSpec(
            "no_drift",
            asset="policy_verification",
            description="Every field we set is live as rendered.",
        ),
        dg.AssetCheckSpec(
            "pdb_protects_quorum",
            asset="policy_verification",
            description="The NATS PDB keeps a quorum of the StatefulSet's replicas.",
        ),
    ],
)
def policy_verification(
    context: dg.AssetExecutionContext, cluster: ClusterResource, history: HistoryResource
) -> dg.MaterializeResult:
    """Drift, namespace labels, selectors, PDB vs replicas and the intent check; offline on the
    rendered objects and the intent's workload model (a rehearsal), live on the cluster."""
    from kgents_pipeline.history.cluster import record_verification

    rendered = _domain(cluster.rendered)
    access = _domain(cluster.access)
    v = _domain(_verify, access, rendered, cluster.intent_path)
    _domain(record_verification, history.db_path, context.run.run_id, v)
    mode = {"mode": v.mode, "rehearsal": v.mode == "offline"}
    return dg.MaterializeResult(
        metadata={
            **mode,
            "context": v.context or "",
            "passed": v.passed,
            "intent_holds": v.intent_holds,
            "violation_count": len(v.violations),
            "drift_count": v.drift_count,
            "pdb_ok": v.pdb_ok,
            "labels_missing": dg.MetadataValue.json(list(v.labels_missing)),
            "unmatched_selectors": dg.MetadataValue.json(list(v.unmatched_selectors)),
            "report": dg.MetadataValue.md(f"```\n{v.to_table()}\n```"),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="intent_holds",
                passed=v.intent_holds,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={**mode, "violations": dg.MetadataValue.json(list(v.violations)[:50])},
            ),
            dg.AssetCheckResult(
                check_name="no_drift",
                passed=not v.drift,
                metadata={**mode, "drift": dg.MetadataValue.json([d.ref for d in v.drift])},
            ),
            dg.AssetCheckResult(
                check_name="pdb_protects_quorum",
                passed=v.pdb_ok,
                metadata={
                    **mode,
                    "pdbs": dg.MetadataValue.json(
                        [
                            {
                                "ref": p.ref,
                                "replicas": p.replicas,
                                "quorum": p.quorum,
                                "ok": p.ok,
                                "disruptionsAllowed": p.disruptions_allowed,
                                "problems": list(p.problems),
                            }
                            for p in v.pdbs
                        ]
                    ),
                },
            ),
        ],
    )


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def check_cluster_environment() -> None:
    """Refuse, when the definitions load, cluster settings no step could use (one line naming the
    variable), instead of failing at applied_manifests after the rest of the job ran."""
    mode = os.environ.get("KGENTS_CLUSTER_MODE", "") or "offline"
    if mode not in MODES:
        raise ConfigError(f"KGENTS_CLUSTER_MODE={mode!r}: expected one of {', '.join(MODES)}")
    if mode == "kubeconfig":
        for name, what in (
            ("KGENTS_KUBE_CONTEXT", "an explicit context name (the current context is never used)"),
            ("KGENTS_KUBECONFIG", "the kubeconfig file"),
        ):
            if not os.environ.get(name, "").strip():
                raise ConfigError(f"{name} is unset: KGENTS_CLUSTER_MODE=kubeconfig needs {what}")


@dg.definitions
def defs() -> dg.Definitions:
    check_cluster_environment()
    # A module with a @dg.definitions function contributes only what it returns (the defs-folder
    # loader skips its other top-level objects), so the assets are listed here too.
    return dg.Definitions(
        assets=[rendered_manifests, applied_manifests, policy_verification],
        resources={
            "cluster": ClusterResource(
                mode=env_or("KGENTS_CLUSTER_MODE", "offline"),
                kubeconfig=env_or("KGENTS_KUBECONFIG", ""),
                context=env_or("KGENTS_KUBE_CONTEXT", ""),
                context_allowlist=env_or("KGENTS_CONTEXT_ALLOWLIST", ""),
                manifests_dir=env_or("KGENTS_MANIFESTS_DIR", "manifests"),
                intent_path=env_or("KGENTS_INTENT", "manifests/launch/intent.yaml"),
                kube_version=env_or("KGENTS_KUBE_VERSION", DEFAULT_KUBE_VERSION),
                allowed_kinds=env_or("KGENTS_ALLOWED_KINDS", ",".join(DEFAULT_ALLOWED_KINDS)),
                force_conflicts=_env_flag("KGENTS_FORCE_CONFLICTS"),
            )
        },
    )
