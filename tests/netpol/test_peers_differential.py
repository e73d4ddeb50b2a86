"""Differential test: our engine against the peer tools, answer by answer, on seeded random clusters.

Every answer of ours must equal cyclonus' and np-guard's NCA's, except where a documented rule in
benchmarks/peers/peers_compare.py (a peer's deviation from the Kubernetes API reference, cited there)
reproduces the peer's answer. A disagreement no rule explains is a new kind of disagreement: a bug
in ours, or a peer behaviour nobody has documented yet, and it fails here. np-guard's
netpol-analyzer would be the first peer; the Go module proxy refuses its module on this project's
machines, so NCA (np-guard's analyzer on PyPI) stands for np-guard. The tools come from
`make peers`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PEERS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "peers"
sys.path.insert(0, str(PEERS_DIR))

import peers_build as tools  # noqa: E402
import peers_compare as compare  # noqa: E402
import peers_generate as generate  # noqa: E402

SEEDS = (11, 12, 13, 14)
PEERS = ("cyclonus", "nca")


@pytest.fixture(scope="module")
def peer_tools() -> dict[str, Path]:
    try:
        return tools.require()
    except tools.PeersMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def _cluster(tmp_path: Path, objects: list[dict]) -> tuple[Path, compare.Universe]:
    cluster_dir = generate.write(objects, tmp_path / "cluster")
    return cluster_dir, compare.Universe.of(compare.load_objects([cluster_dir]))


def _run(tool: str, cluster_dir: Path, universe: compare.Universe) -> compare.Answers:
    run = compare.run_tool(tool, cluster_dir, universe, timeout=120)
    assert run.status == "ok", f"{tool}: {run.status}"
    assert run.answers is not None
    return run.answers


def _report(ag: compare.Agreement) -> str:
    return "\n".join(
        f"{n:>8}  {label}  e.g. {ag.examples[label]}" for label, n in ag.classes.items()
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_every_disagreement_with_a_peer_is_a_documented_deviation(
    peer_tools: dict[str, Path], tmp_path: Path, seed: int
) -> None:
    objects = generate.generate(60, 14, seed)
    cluster_dir, universe = _cluster(tmp_path, objects)
    explainer = compare.Explainer(compare.load_objects([cluster_dir]), universe)
    ours = _run("ours", cluster_dir, universe)
    assert ours == explainer.variants("ours")[0][1], (
        "ours as a process differs from ours in-process"
    )
    for peer in PEERS:
        ag = compare.compare("ours", ours, peer, _run(peer, cluster_dir, universe), explainer)
        assert ag.unexplained == 0, f"ours vs {peer}, seed {seed}:\n{_report(ag)}"
        assert ag.agree + sum(ag.classes.values()) == ag.total == universe.answers


def _ns(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _pod(ns: str, name: str, ip: str, port: int = 80, **labels: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "containers": [{"name": "c", "image": "app:1", "ports": [{"containerPort": port}]}]
        },
        "status": {"podIP": ip},
    }


def _policy(ns: str, name: str, spec: dict) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def _deviation_cluster() -> list[dict]:
    """One cluster where each documented deviation changes at least one answer."""
    ingress_from = lambda *peers: {"ingress": [{"from": list(peers)}], "policyTypes": ["Ingress"]}  # noqa: E731
    return [
        _ns("a", env="prod"),
        _ns("b"),
        _pod("a", "web", "10.1.0.1", app="web"),
        _pod("a", "api", "10.1.0.7", app="api"),
        _pod("a", "plain", "10.1.0.2", app="plain"),
        _pod("a", "tagged", "10.1.0.3", app="tagged", canary=""),
        _pod("b", "other", "10.1.0.4", app="other"),
        _pod("b", "db", "10.1.0.5", app="db"),
        _pod("b", "cache", "10.1.0.6", app="cache"),
        # web admits pods of a without a `tier` label (NotIn) and the address of b/other
        _policy(
            "a",
            "web",
            {
                "podSelector": {"matchLabels": {"app": "web"}},
                **ingress_from(
                    {
                        "podSelector": {
                            "matchExpressions": [
                                {"key": "tier", "operator": "NotIn", "values": ["x"]}
                            ]
                        }
                    },
                    {"ipBlock": {"cidr": "10.1.0.4/32"}},
                ),
            },
        ),
        # api admits pods of a labelled canary="" and pods of b without `version`
        _policy(
            "a",
            "api",
            {
                "podSelector": {"matchLabels": {"app": "api"}},
                **ingress_from(
                    {"podSelector": {"matchLabels": {"canary": ""}}},
                    {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "b"}},
                        "podSelector": {
                            "matchExpressions": [{"key": "version", "operator": "DoesNotExist"}]
                        },
                    },
                ),
            },
        ),
        # db is isolated for ingress by its own policy; the only way in is from b/cache
        _policy(
            "b",
            "db",
            {
                "podSelector": {"matchLabels": {"app": "db"}},
                **ingress_from({"podSelector": {"matchLabels": {"app": "cache"}}}),
            },
        ),
        # `egress: []` without policyTypes: the API server makes this an Ingress-only policy
        _policy(
            "b",
            "cache",
            {"podSelector": {"matchLabels": {"app": "cache"}}, "ingress": [{}], "egress": []},
        ),
    ]


def test_each_documented_deviation_shows_on_a_cluster_built_for_it(
    peer_tools: dict[str, Path], tmp_path: Path
) -> None:
    cluster_dir, universe = _cluster(tmp_path, _deviation_cluster())
    explainer = compare.Explainer(compare.load_objects([cluster_dir]), universe)
    ours = _run("ours", cluster_dir, universe)
    seen: set[str] = set()
    for peer in PEERS:
        ag = compare.compare("ours", ours, peer, _run(peer, cluster_dir, universe), explainer)
        assert ag.unexplained == 0, _report(ag)
        for label in ag.classes:
            seen.update(label.split(f"{peer}:", 1)[1].split("+"))
    assert seen == {rule.name for rule in compare.RULES}


def test_a_disagreement_no_rule_explains_is_reported_unexplained(
    peer_tools: dict[str, Path], tmp_path: Path
) -> None:
    cluster_dir, universe = _cluster(tmp_path, generate.generate(40, 10, SEEDS[0]))
    explainer = compare.Explainer(compare.load_objects([cluster_dir]), universe)
    ours = _run("ours", cluster_dir, universe)
    cyclonus = _run("cyclonus", cluster_dir, universe)
    # flip one answer between two different pods on which ours and cyclonus agree
    row = next(
        r
        for r in universe.rows
        if (ours[r] ^ cyclonus[r]) >> 0 & 1 == 0 and r[0] != universe.pods[0]
    )
    flipped = dict(cyclonus)
    flipped[row] ^= 1
    ag = compare.compare("ours", ours, "cyclonus", flipped, explainer)
    assert ag.unexplained == 1
    assert compare.UNEXPLAINED in ag.examples
    assert ag.examples[compare.UNEXPLAINED].startswith(f"{universe.pods[0]} -> {row[0]}")
