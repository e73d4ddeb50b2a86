"""Cluster assets: render -> apply -> verify the launch manifests (seed Phase 7 steps 1 and 2)."""

from typing import TYPE_CHECKING, Any

import dagster as dg

from kgents_pipeline.dagster_support import OWNERS, domain, failure, md_table
from kgents_pipeline.defs.resources import ClusterResource, HistoryResource
from kgents_pipeline.errors import KgentsError
from kgents_pipeline.history import cluster as evidence

if TYPE_CHECKING:
    from kgents_pipeline.kube.access import ClusterAccess
    from kgents_pipeline.kube.apply import ApplyReport
    from kgents_pipeline.kube.render import RenderedSet
    from kgents_pipeline.kube.verify import Verification


@dg.asset(group_name="cluster", kinds={"kubernetes"}, owners=OWNERS)
def rendered_manifests(cluster: ClusterResource) -> dg.MaterializeResult:
    """The launch set rendered by kustomize and validated offline; data version = its sha256."""
    rendered = domain(cluster.rendered)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(rendered.sha256),
        metadata={
            "sha256": rendered.sha256,
            "dagster/row_count": len(rendered.objects),
            "kinds": rendered.kinds(),
            "kube_version": cluster.kube_version,
            "objects": md_table(
                [(o.ref, o.source) for o in rendered.objects], ("object", "source")
            ),
        },
    )


@dg.asset(
    group_name="cluster",
    kinds={"kubernetes"},
    deps=[rendered_manifests],
    pool="duckdb",
    owners=OWNERS,
)
def applied_manifests(
    context: dg.AssetExecutionContext, cluster: ClusterResource, history: HistoryResource
) -> dg.MaterializeResult:
    """Staged server-side apply (live modes); offline records a rehearsal and applies nothing."""
    rendered = domain(cluster.rendered)
    access = domain(cluster.access)
    store = history.store()
    if not access.live:
        domain(store.write, evidence.record_not_applied, context.run.run_id, rendered)
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
        domain(store.write, evidence.record_apply, context.run.run_id, exc.report)
        raise failure(exc) from exc
    except KgentsError as exc:
        raise failure(exc) from exc
    domain(store.write, evidence.record_apply, context.run.run_id, report)
    metadata: dict[str, Any] = {
        "mode": "live",
        "context": report.context or "",
        "rendered_sha256": rendered.sha256,
        **{f"count_{k}": v for k, v in report.counts().items()},
        "orphans": dg.MetadataValue.json(list(report.orphans)),
        "results": md_table(
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


def _apply_live(
    access: "ClusterAccess", rendered: "RenderedSet", force: bool, kinds: tuple[str, ...]
) -> "ApplyReport":
    from kgents_pipeline.kube.apply import apply_set
    from kgents_pipeline.kube.client import KubeClient

    with KubeClient(access) as client:
        return apply_set(client, rendered, force_conflicts=force, allowed_kinds=kinds)


def _verify(access: "ClusterAccess", rendered: "RenderedSet", intent_path: str) -> "Verification":
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
    owners=OWNERS,
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
    rendered = domain(cluster.rendered)
    access = domain(cluster.access)
    v = domain(_verify, access, rendered, cluster.intent_path)
    domain(history.store().write, evidence.record_verification, context.run.run_id, v)
    mode: dict[str, Any] = {"mode": v.mode, "rehearsal": v.mode == "offline"}
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
