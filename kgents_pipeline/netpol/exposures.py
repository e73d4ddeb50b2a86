"""Exposures: the namespace labels (or addresses) through which something created tomorrow would
gain access, whatever exists today."""

from __future__ import annotations

from kgents_pipeline.netpol.engine import Cluster
from kgents_pipeline.netpol.lints import labels_text
from kgents_pipeline.netpol.model import (
    NetworkPolicy,
)
from kgents_pipeline.netpol.report import Exposure


def find_exposures(cluster: Cluster, policies: list[NetworkPolicy]) -> list[Exposure]:
    out: list[Exposure] = []
    for policy in policies:
        target = f"pods [{policy.pod_selector.render()}] in {policy.namespace}"
        for ri, rule in enumerate(policy.ingress):
            ports = rule.ports.render()
            if rule.peers is None:
                out.append(
                    Exposure(
                        policy.key,
                        ri,
                        None,
                        "any source (every namespace and outside the cluster)",
                        None,
                        target,
                        ports,
                        tuple(sorted(cluster.namespaces)),
                    )
                )
                continue
            for pi, peer in enumerate(rule.peers):
                if peer.ip_block is not None:
                    out.append(
                        Exposure(
                            policy.key,
                            ri,
                            pi,
                            f"addresses in {peer.ip_block.render()}",
                            None,
                            target,
                            ports,
                            (),
                        )
                    )
                    continue
                if peer.namespace_selector is None:
                    continue  # own namespace only: no new namespace gains anything
                current = tuple(sorted(cluster.namespaces_matching(peer, policy.namespace)))
                pods = (
                    "" if peer.pod_selector is None else f" (pods [{peer.pod_selector.render()}])"
                )
                eq = peer.namespace_selector.equality_labels()
                if peer.namespace_selector.selects_all:
                    via, labels = "any namespace", {}
                elif eq is not None:
                    via, labels = f"namespaces labelled {labels_text(eq)}", eq
                else:
                    via, labels = f"namespaces matching [{peer.namespace_selector.render()}]", None
                out.append(Exposure(policy.key, ri, pi, via + pods, labels, target, ports, current))
    return out
