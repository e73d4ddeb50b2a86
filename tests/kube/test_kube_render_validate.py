"""Rendering with the real kustomize and offline validation (no cluster involved)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from kgents_pipeline.errors import ManifestError
from kgents_pipeline.kube.render import RenderedObject, render
from kgents_pipeline.kube.validate import (
    InvalidManifests,
    SchemaValidator,
    require_valid,
    schema_validator,
    validate_objects,
)
from tests.kube.conftest import MANIFESTS


def _tree(tmp_path: Path, files: dict[str, str], resources: list[str] | None = None) -> Path:
    root = tmp_path / "m"
    root.mkdir()
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    res = resources if resources is not None else [n for n in files if n != "kustomization.yaml"]
    (root / "kustomization.yaml").write_text("resources:\n" + "".join(f"  - {r}\n" for r in res))
    return root


NETPOL = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: {name}, namespace: ns}}
spec:
{spec}
"""


def test_repo_manifests_render_to_the_launch_set_with_sources_and_a_stable_sha(tmp_path):
    first, second = render(MANIFESTS), render(MANIFESTS)
    assert first.kinds() == {"Namespace": 4, "NetworkPolicy": 4, "PodDisruptionBudget": 1}
    assert first.sha256 == second.sha256 and len(first.sha256) == 64
    by_ref = {o.ref: o for o in first.objects}
    assert by_ref["PodDisruptionBudget kgents-triad/nats"].source.endswith(
        "manifests/nats/pdb.yaml"
    )
    assert isinstance(first.objects[0], RenderedObject)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.objects[0].name = "x"  # type: ignore[misc]
    require_valid(first.objects)


def test_sha256_changes_when_a_manifest_changes(tmp_path):
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    before = render(copy).sha256
    pdb = copy / "nats" / "pdb.yaml"
    pdb.write_text(pdb.read_text().replace("minAvailable: 2", "minAvailable: 1"))
    assert render(copy).sha256 != before


def test_malformed_yaml_names_the_file(tmp_path):
    root = _tree(
        tmp_path, {"bad.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: [unclosed\n"}
    )
    with pytest.raises(ManifestError, match=r"kustomize failed for .*m"):
        render(root)


def test_kustomize_error_for_a_missing_resource_file(tmp_path):
    root = _tree(
        tmp_path,
        {"ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"},
        resources=["ns.yaml", "missing.yaml"],
    )
    with pytest.raises(ManifestError, match=r"missing\.yaml"):
        render(root)


def test_kustomize_refuses_a_resource_outside_the_manifests_tree(tmp_path):
    (tmp_path / "outside.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
    root = _tree(tmp_path, {}, resources=["../outside.yaml"])
    with pytest.raises(ManifestError, match="kustomize failed"):
        render(root)


def test_not_a_directory_is_bad_input(tmp_path):
    with pytest.raises(ManifestError, match="not a directory"):
        render(tmp_path / "nope")


def test_every_schema_error_of_every_document_is_reported_with_file_and_object(tmp_path):
    root = _tree(
        tmp_path,
        {
            "a.yaml": NETPOL.format(name="a", spec="  podSelector: {matchLabelz: {}}"),
            "b.yaml": NETPOL.format(
                name="b", spec="  podSelector: {}\n  ingress: [{ports: [{port: 80, bogus: 1}]}]"
            ),
        },
    )
    issues = validate_objects(render(root).objects)
    described = [str(i) for i in issues]
    assert any(
        "a.yaml: NetworkPolicy ns/a at spec.podSelector" in d and "matchLabelz" in d
        for d in described
    )
    assert any(
        "b.yaml: NetworkPolicy ns/b at spec.ingress[0].ports[0]" in d and "bogus" in d
        for d in described
    )
    with pytest.raises(InvalidManifests, match="2 validation issue"):
        require_valid(render(root).objects)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("  podSelector: {}\n  ingress: [{ports: [{port: 70000}]}]", "out of range 1-65535"),
        ("  podSelector: {}\n  ingress: [{ports: [{port: 0}]}]", "out of range 1-65535"),
        (
            "  podSelector: {}\n  ingress: [{ports: [{port: 9000, endPort: 8000}]}]",
            "endPort 8000 is less than port 9000",
        ),
        ("  podSelector: {}\n  ingress: [{ports: [{port: 53, protocol: udp}]}]", "protocol 'udp'"),
        ("  podSelector: {}\n  policyTypes: [ingress]", "policyTypes value 'ingress'"),
        (
            "  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.300/8}}]}]",
            "not a valid CIDR",
        ),
        (
            "  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16]}}]}]",
            "not strictly inside cidr",
        ),
        (
            "  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/33]}}]}]",
            "not a valid CIDR",
        ),
    ],
)
def test_checks_the_schemas_miss(tmp_path, spec, needle):
    root = _tree(tmp_path, {"p.yaml": NETPOL.format(name="p", spec=spec)})
    issues = validate_objects(render(root).objects)
    assert any(needle in i.message and i.source.endswith("p.yaml") for i in issues), issues


def test_pdb_with_both_min_available_and_max_unavailable(tmp_path):
    root = _tree(
        tmp_path,
        {
            "pdb.yaml": (
                "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x, namespace: ns}\n"
                "spec: {minAvailable: 2, maxUnavailable: 1, selector: {matchLabels: {a: b}}}\n"
            )
        },
    )
    (issue,) = validate_objects(render(root).objects)
    assert issue.check == "pdb" and "mutually exclusive" in issue.message


def test_disallowed_kind_and_configurable_allowlist(tmp_path):
    root = _tree(
        tmp_path,
        {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: ns}\n"},
    )
    objects = render(root).objects
    assert [i.check for i in validate_objects(objects)] == ["kind-allowlist"]
    assert validate_objects(objects, allowed_kinds=("ConfigMap",)) == []
    ns_only = validate_objects(render(MANIFESTS).objects, allowed_kinds=("Namespace",))
    assert len(ns_only) == 5 and all(i.check == "kind-allowlist" for i in ns_only)


def test_validator_is_built_once_per_version_and_cached_per_kind():
    v = schema_validator("1.37")
    assert schema_validator("1.37") is v
    objects = render(MANIFESTS).objects
    validate_objects(objects)
    built = dict(v._validators)
    assert {
        ("v1", "Namespace"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("policy/v1", "PodDisruptionBudget"),
    } <= set(built)
    validate_objects(objects)
    assert all(v._validators[k] is built[k] for k in built)  # nothing rebuilt per document


def test_unsupported_kube_version_is_bad_input():
    with pytest.raises(ManifestError, match="no schemas"):
        SchemaValidator("1.99")
    with pytest.raises(ManifestError, match=r"MAJOR\.MINOR"):
        SchemaValidator("latest")
    assert SchemaValidator("v1.36.2").kube_version == "1.36"
