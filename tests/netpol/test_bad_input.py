"""Bad input: exit 2 and one line naming the file (and document) and what is wrong; never a
traceback, never a silent wrong answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kgents_pipeline.cli import main

GOOD = """
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: a}
spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
"""


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def assert_bad(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    for n in needles:
        assert n in lines[0], lines[0]


def write(tmp_path: Path, text: str, name: str = "objs.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def netpol_doc(spec: str) -> str:
    return (
        GOOD
        + f"---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np, namespace: a}}\n{spec}\n"
    )


def test_malformed_yaml_names_file_and_line(tmp_path):
    f = write(tmp_path, "kind: Pod\nmetadata: {name: [unclosed\n")
    assert_bad(run("policy", "reach", f), f, "malformed YAML", "line")


def test_network_policy_missing_pod_selector_is_rejected(tmp_path):
    f = write(tmp_path, netpol_doc("spec: {ingress: [{}]}"))
    assert_bad(run("policy", "reach", f), f, "document 1", "spec.podSelector is required")


def test_network_policy_missing_spec_is_rejected(tmp_path):
    f = write(tmp_path, netpol_doc(""))
    assert_bad(run("policy", "reach", f), "document 1", "spec is required")


def test_network_policy_missing_name_is_rejected(tmp_path):
    f = write(tmp_path, "kind: NetworkPolicy\nmetadata: {namespace: a}\nspec: {podSelector: {}}\n")
    assert_bad(run("policy", "reach", f), "document 0", "metadata.name is required")


@pytest.mark.parametrize("port", ["0", "70000"])
def test_port_out_of_range_is_rejected(tmp_path, port):
    f = write(
        tmp_path,
        netpol_doc(f"spec: {{podSelector: {{}}, ingress: [{{ports: [{{port: {port}}}]}}]}}"),
    )
    assert_bad(
        run("policy", "reach", f), "document 1", "spec.ingress[0].ports[0].port", "out of range"
    )


def test_end_port_below_port_is_rejected(tmp_path):
    f = write(
        tmp_path,
        netpol_doc("spec: {podSelector: {}, ingress: [{ports: [{port: 90, endPort: 80}]}]}"),
    )
    assert_bad(run("policy", "reach", f), "endPort", "less than")


def test_quoted_numeric_port_is_not_a_valid_port_name(tmp_path):
    f = write(tmp_path, netpol_doc("spec: {podSelector: {}, ingress: [{ports: [{port: '80'}]}]}"))
    assert_bad(run("policy", "reach", f), "not a valid port name")


def test_unknown_protocol_is_rejected(tmp_path):
    f = write(
        tmp_path,
        netpol_doc("spec: {podSelector: {}, ingress: [{ports: [{port: 80, protocol: HTTP}]}]}"),
    )
    assert_bad(run("policy", "reach", f), "document 1", "'HTTP' is not one of TCP, UDP, SCTP")


def test_unknown_selector_operator_is_rejected(tmp_path):
    f = write(
        tmp_path,
        netpol_doc(
            "spec: {podSelector: {matchExpressions: [{key: a, operator: Equals, values: [b]}]}}"
        ),
    )
    assert_bad(run("policy", "reach", f), "operator 'Equals'")


def test_ip_block_except_outside_cidr_is_rejected(tmp_path):
    f = write(
        tmp_path,
        netpol_doc(
            "spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16]}}]}]}"
        ),
    )
    assert_bad(run("policy", "reach", f), "is not strictly inside cidr 10.0.0.0/8")


def test_empty_peer_is_rejected(tmp_path):
    f = write(tmp_path, netpol_doc("spec: {podSelector: {}, ingress: [{from: [{}]}]}"))
    assert_bad(run("policy", "reach", f), "a peer needs")


def test_container_port_out_of_range_is_rejected(tmp_path):
    f = write(tmp_path, GOOD.replace("80}", "99999}"))
    assert_bad(run("policy", "reach", f), "containerPort", "out of range")


def test_list_item_errors_name_the_item(tmp_path):
    f = write(tmp_path, "kind: List\nitems:\n- kind: NetworkPolicy\n  metadata: {name: x}\n")
    assert_bad(run("policy", "reach", f), "document 0 item 0", "spec is required")


def test_unknown_query_endpoint_is_rejected(tmp_path):
    f = write(tmp_path, GOOD)
    q = write(tmp_path, json.dumps([{"src": "a/p", "dst": "a/nope", "port": 80}]), "q.json")
    assert_bad(
        run("policy", "reach", f, "--queries", q), q, "query 0", "unknown query endpoint 'a/nope'"
    )
    q = write(tmp_path, json.dumps([{"src": "not-an-ip", "dst": "a/p", "port": 80}]), "q.json")
    assert_bad(run("policy", "reach", f, "--queries", q), "unknown query endpoint 'not-an-ip'")


def test_queries_file_that_is_not_a_json_array_is_rejected(tmp_path):
    f = write(tmp_path, GOOD)
    q = write(tmp_path, json.dumps({"src": "a/p", "dst": "a/p", "port": 80}), "q.json")
    assert_bad(run("policy", "reach", f, "--queries", q), q, "must be a JSON array")
    q = write(tmp_path, "[{", "q.json")
    assert_bad(run("policy", "reach", f, "--queries", q), q, "malformed JSON")


def test_query_with_bad_port_or_protocol_is_rejected(tmp_path):
    f = write(tmp_path, GOOD)
    q = write(tmp_path, json.dumps([{"src": "a/p", "dst": "1.2.3.4", "port": 0}]), "q.json")
    assert_bad(run("policy", "reach", f, "--queries", q), "query 0", "out of range")
    q = write(
        tmp_path,
        json.dumps([{"src": "a/p", "dst": "1.2.3.4", "port": 80, "protocol": "ICMP"}]),
        "q.json",
    )
    assert_bad(run("policy", "reach", f, "--queries", q), "query 0", "ICMP")
    q = write(tmp_path, json.dumps([{"src": "a/p", "port": 80}]), "q.json")
    assert_bad(run("policy", "reach", f, "--queries", q), "query 0", "missing dst")


def test_missing_path_is_rejected(tmp_path):
    assert_bad(run("policy", "reach", str(tmp_path / "nope.yaml")), "no such file")


def test_duplicate_pod_is_rejected(tmp_path):
    f = write(tmp_path, GOOD + "---\n" + GOOD)
    assert_bad(run("policy", "reach", f), "declared twice")


def test_bad_intent_names_the_file_and_field(tmp_path):
    intent = write(
        tmp_path,
        "workloads: [{name: w, namespace: a, labels: {app: w}}]\n"
        "expectations: [{destination: w, port: 70000, only_from: []}]\n",
        "intent.yaml",
    )
    (tmp_path / "m").mkdir()
    assert_bad(
        run("policy", "check", "--manifests", str(tmp_path / "m"), "--intent", intent),
        intent,
        "expectations[0].port",
    )


def test_intent_referring_to_unknown_workload_is_rejected(tmp_path):
    intent = write(
        tmp_path,
        "workloads: [{name: w, namespace: a, labels: {app: w}}]\n"
        "expectations: [{destination: w, port: 80, only_from: [{workload: ghost}]}]\n",
        "intent.yaml",
    )
    (tmp_path / "m").mkdir()
    assert_bad(
        run("policy", "check", "--manifests", str(tmp_path / "m"), "--intent", intent), "'ghost'"
    )


def test_missing_intent_file_is_rejected(tmp_path):
    assert_bad(
        run(
            "policy", "check", "--manifests", str(tmp_path), "--intent", str(tmp_path / "none.yaml")
        ),
        "cannot read the intent",
    )


def test_path_set_without_pods_is_bad_input(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_bad(run("policy", "reach", str(empty)), str(empty), "no Pods")
    only_policy = write(
        tmp_path,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np, namespace: a}\n"
        "spec: {podSelector: {}}\n",
    )
    assert_bad(
        run("policy", "reach", str(empty), only_policy), f"{empty}, {only_policy}", "no Pods"
    )


@pytest.mark.parametrize(
    ("ports", "needle"),
    [
        ("[{port: '80'}]", "'80' is not a valid port name"),
        ("[{port: abcdefghij-klmnopqrst}]", "is not a valid port name"),  # 20 characters
        ("[{port: web--ui}]", "is not a valid port name"),
        ("[{port: 80, endPort: 70000}]", "endPort 70000 is out of range"),
        ("[{port: web, endPort: 90}]", "cannot be used with the named port"),
    ],
)
def test_port_rules_are_the_same_for_reach_and_manifests_validate(tmp_path, ports, needle):
    """One validator: `policy reach` refuses what `manifests validate` reports, same message."""
    f = write(tmp_path, netpol_doc(f"spec: {{podSelector: {{}}, ingress: [{{ports: {ports}}}]}}"))
    assert_bad(run("policy", "reach", f), "spec.ingress[0].ports[0]", needle)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "kustomization.yaml").write_text("resources: [np.yaml]\n")
    (tree / "np.yaml").write_text(
        netpol_doc(f"spec: {{podSelector: {{}}, ingress: [{{ports: {ports}}}]}}").split("---\n")[1]
    )
    result = run("manifests", "validate", str(tree))
    assert result.exit_code == 1 and needle in result.output, result.output


@pytest.mark.parametrize("except_", ["10.0.0.0/8", "10.0.0.0/7", "10.1.2.3"])
def test_ip_block_except_must_be_a_strict_subset_for_reach_and_manifests_validate(
    tmp_path, except_
):
    block = f"{{cidr: 10.0.0.0/8, except: ['{except_}']}}"
    spec = f"spec: {{podSelector: {{}}, ingress: [{{from: [{{ipBlock: {block}}}]}}]}}"
    f = write(tmp_path, netpol_doc(spec))
    assert_bad(run("policy", "reach", f), "ipBlock.except[0]")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "kustomization.yaml").write_text("resources: [np.yaml]\n")
    (tree / "np.yaml").write_text(netpol_doc(spec).split("---\n")[1])
    result = run("manifests", "validate", str(tree))
    assert result.exit_code == 1 and "ipBlock.except[0]" in result.output, result.output
