"""Lints: the traps a reachability answer alone does not show.

Severities (an `error` makes the check fail, a `warning` is shown only):
- pdb-selector-matches-nothing (error): a PDB that protects nothing lets quorum be evicted away.
- peer-own-namespace (error): a podSelector-only peer means the policy's own namespace; when its
  pods exist only in other namespaces the author meant a cross-namespace allow that never happens.
- named-port-unresolved (error): a rule that names a port no pod it applies to declares is dead.
- egress-not-closed (error): a namespace the intent needs egress-isolated is not (e.g. its
  default-deny is ingress-only).
- selector-matches-nothing (warning): a NetworkPolicy selecting no pod changes nothing today; the
  expectations already decide whether that matters.
- namespace-label-mismatch (error): a namespace lacks a label the intent's `namespace_labels`
  requires; expectations with namespace_labels sources cannot see that on their own.
- expectation-without-destination (error): the destination workload matches no pod, so the
  expectation proves nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from kgents_pipeline.netpol.engine import INGRESS, Cluster
from kgents_pipeline.netpol.intent import Intent
from kgents_pipeline.netpol.model import (
    NetworkPolicy,
    PodDisruptionBudget,
)
from kgents_pipeline.netpol.report import Lint


def labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "{}"


def find_lints(
    intent: Intent,
    cluster: Cluster,
    policies: list[NetworkPolicy],
    pdbs: list[PodDisruptionBudget],
) -> list[Lint]:
    out: list[Lint] = []
    pods = list(cluster.pods.values())
    for pdb in pdbs:
        matched = pdb.selector is not None and any(
            p.namespace == pdb.namespace and pdb.selector.matches(p.labels) for p in pods
        )
        if not matched:
            what = (
                "has no selector" if pdb.selector is None else f"selector [{pdb.selector.render()}]"
            )
            out.append(
                Lint(
                    "pdb-selector-matches-nothing",
                    "error",
                    f"PodDisruptionBudget {pdb.key}",
                    f"{what} matches no pod in {pdb.namespace}: it protects nothing",
                )
            )
    for policy in policies:
        selected = cluster.selected_pods(policy)
        obj = f"NetworkPolicy {policy.key}"
        if not selected:
            out.append(
                Lint(
                    "selector-matches-nothing",
                    "warning",
                    obj,
                    f"spec.podSelector [{policy.pod_selector.render()}] matches no pod in "
                    f"{policy.namespace}: the policy changes nothing today",
                )
            )
        for direction in ("Ingress", "Egress"):
            field_name = "ingress" if direction == INGRESS else "egress"
            peer_field = "from" if direction == INGRESS else "to"
            for ri, rule in enumerate(policy.rules(direction)):
                for pi, peer in enumerate(rule.peers or ()):
                    if peer.ip_block is not None or peer.namespace_selector is not None:
                        continue
                    if peer.pod_selector is None:
                        continue
                    here = [
                        p
                        for p in pods
                        if p.namespace == policy.namespace and peer.pod_selector.matches(p.labels)
                    ]
                    elsewhere = sorted(
                        {
                            p.namespace
                            for p in pods
                            if p.namespace != policy.namespace
                            and peer.pod_selector.matches(p.labels)
                        }
                    )
                    if not here and elsewhere:
                        out.append(
                            Lint(
                                "peer-own-namespace",
                                "error",
                                obj,
                                f"{field_name}[{ri}].{peer_field}[{pi}] has only a podSelector "
                                f"[{peer.pod_selector.render()}], which means namespace "
                                f"{policy.namespace}; the pods it matches are in "
                                f"{', '.join(elsewhere)} (add a namespaceSelector)",
                            )
                        )
                if rule.ports.everything or not rule.ports.named:
                    continue
                if direction == INGRESS:
                    candidates = selected
                elif rule.peers is None:
                    candidates = pods
                else:
                    candidates = [
                        p
                        for p in pods
                        if any(
                            cluster.peer_matches_pod(peer, policy.namespace, p)
                            for peer in rule.peers
                        )
                    ]
                if direction == INGRESS and not selected:
                    continue  # already reported: the policy selects nothing
                for name, proto in sorted(rule.ports.named):
                    if not any(
                        cp.name == name and cp.protocol == proto
                        for p in candidates
                        for cp in p.ports
                    ):
                        whose = "selected pod" if direction == INGRESS else "destination pod"
                        out.append(
                            Lint(
                                "named-port-unresolved",
                                "error",
                                obj,
                                f"{field_name}[{ri}] names port {name!r}/{proto}, which no "
                                f"{whose} declares: the rule allows nothing through it",
                            )
                        )
    for name, required in sorted(intent.namespace_labels.items()):
        ns = cluster.namespaces.get(name)
        have = ns.labels if ns is not None else {}
        wrong = {k: v for k, v in required.items() if have.get(k) != v}
        if wrong:
            found = "does not exist" if ns is None else f"has {labels_text(have)}"
            out.append(
                Lint(
                    "namespace-label-mismatch",
                    "error",
                    f"Namespace {name}",
                    f"the intent needs {labels_text(wrong)} on it, but it {found}; the "
                    "NetworkPolicy peers that select on these labels do not see it",
                )
            )
    for ns_name in intent.egress_isolated_namespaces:
        closers = [
            p
            for p in policies
            if p.namespace == ns_name and "Egress" in p.policy_types and p.pod_selector.selects_all
        ]
        if closers:
            continue
        ingress_only = [
            p.key
            for p in policies
            if p.namespace == ns_name
            and p.pod_selector.selects_all
            and not p.ingress
            and "Egress" not in p.policy_types
        ]
        open_pods = [
            p.key
            for p in pods
            if p.namespace == ns_name and not cluster.isolating_policies(p, "Egress")
        ]
        if ingress_only:
            msg = (
                f"the intent needs egress closed in {ns_name}, but its default-deny "
                f"{', '.join(ingress_only)} is ingress-only (policyTypes lacks Egress)"
            )
        else:
            msg = f"the intent needs egress closed in {ns_name}, but no policy isolates all its pods for egress"
        if open_pods:
            msg += f"; not isolated for egress: {', '.join(sorted(open_pods))}"
        out.append(Lint("egress-not-closed", "error", f"Namespace {ns_name}", msg))
    return out
