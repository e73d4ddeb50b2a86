"""The intent checked both ways (a missing allow and an unexpected allow are both violations)
against the NetworkPolicy semantics, with the lints and the exposures, on objects handed in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kgents_pipeline.errors import PolicyError
from kgents_pipeline.netpol.engine import Cluster, Endpoint
from kgents_pipeline.netpol.exposures import find_exposures
from kgents_pipeline.netpol.intent import Intent, Source, workload_model
from kgents_pipeline.netpol.lints import find_lints, labels_text
from kgents_pipeline.netpol.model import (
    Namespace,
    parse_namespace,
    parse_network_policy,
    parse_pdb,
    parse_pod,
)
from kgents_pipeline.netpol.report import IntentReport, Lint, Violation


def _merge_namespaces(raw: Iterable[Mapping[str, Any]]) -> list[Namespace]:
    merged: dict[str, dict[str, str]] = {}
    for obj in raw:
        ns = parse_namespace(obj)
        labels = merged.setdefault(ns.name, {})
        for k, v in ns.labels.items():
            if k in labels and labels[k] != v:
                raise PolicyError(f"Namespace {ns.name}: label {k} is both {labels[k]!r} and {v!r}")
            labels[k] = v
    return [Namespace(name, labels) for name, labels in merged.items()]


def _source_matches(source: Source, ep: Endpoint, cluster: Cluster, intent: Intent) -> bool:
    if source.kind == "any":
        return True
    pod = ep.pod
    if pod is None:
        return False
    if source.kind == "namespace":
        return pod.namespace == source.value
    if source.kind == "workload":
        return intent.workload(str(source.value)).selects(pod)
    ns_labels = cluster.namespaces[pod.namespace].labels
    assert isinstance(source.value, Mapping)  # namespace_labels
    return all(ns_labels.get(k) == v for k, v in source.value.items())


def check_intent(
    intent: Intent,
    *,
    namespaces: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    policies: list[dict[str, Any]],
    pdbs: Sequence[dict[str, Any]] = (),
) -> IntentReport:
    """Check every expectation both ways on these objects (camelCase API dicts, as YAML or
    `ApiClient().sanitize_for_serialization` give them), lint the traps, list the exposures.
    Terminated pods (status.phase Succeeded/Failed) are left out."""
    parsed_policies = [parse_network_policy(p) for p in policies]
    parsed_pdbs = [parse_pdb(p) for p in pdbs]
    # Pods that have terminated (phase Succeeded/Failed) hold no IP and take no traffic.
    live = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    cluster = Cluster(_merge_namespaces(namespaces), [parse_pod(p) for p in live], parsed_policies)
    lints: list[Lint] = []
    violations: list[Violation] = []
    pairs = 0
    all_pods = sorted(cluster.pods.values(), key=lambda p: p.key)
    sources = [Endpoint(pod=p) for p in all_pods] + [
        Endpoint(ip=ip) for ip in intent.external_probes
    ]
    cache: dict[tuple[Any, ...], tuple[bool, str]] = {}
    for exp in intent.expectations:
        workload = intent.workload(exp.destination)
        dsts = [p for p in all_pods if workload.selects(p)]
        if not dsts:
            lints.append(
                Lint(
                    "expectation-without-destination",
                    "error",
                    exp.name,
                    f"workload {workload.name} ({workload.namespace}, "
                    f"{labels_text(workload.labels)}) matches no pod; the expectation proves nothing",
                )
            )
            continue
        for dst in dsts:
            dcls = cluster.class_of[dst.key].index
            for src in sources:
                if src.pod is dst:
                    continue  # a pod may always reach itself; nothing to check
                pairs += 1
                expected = any(_source_matches(s, src, cluster, intent) for s in exp.only_from)
                skey = cluster.class_of[src.pod.key].index if src.pod is not None else str(src.ip)
                key = (skey, dcls, exp.port, exp.protocol)
                answer = cache.get(key)
                if answer is None:
                    r = cluster.explain(src, Endpoint(pod=dst), exp.port, exp.protocol)
                    answer = cache[key] = (r.allowed, r.explanation)
                allowed, explanation = answer
                if allowed != expected:
                    violations.append(
                        Violation(
                            exp.name,
                            "missing-allow" if expected else "unexpected-allow",
                            src.name,
                            dst.key,
                            exp.port,
                            exp.protocol,
                            explanation,
                        )
                    )
    lints += find_lints(intent, cluster, parsed_policies, parsed_pdbs)
    holds = not violations and not any(x.severity == "error" for x in lints)
    return IntentReport(
        holds,
        tuple(violations),
        tuple(lints),
        tuple(find_exposures(cluster, parsed_policies)),
        len(intent.expectations),
        pairs,
    )


def check_manifest_objects(intent: Intent, objects: Iterable[Mapping[str, Any]]) -> IntentReport:
    """Offline mode on manifest objects (camelCase dicts): their Namespaces, NetworkPolicies and
    PDBs (other kinds ignored), pods from the intent's workload model. The one offline code path
    of both `policy check` and `manifests verify --offline`."""
    objs = list(objects)
    model_ns, model_pods = workload_model(intent)
    return check_intent(
        intent,
        namespaces=model_ns + [dict(o) for o in objs if o.get("kind") == "Namespace"],
        pods=model_pods,
        policies=[dict(o) for o in objs if o.get("kind") == "NetworkPolicy"],
        pdbs=[dict(o) for o in objs if o.get("kind") == "PodDisruptionBudget"],
    )
