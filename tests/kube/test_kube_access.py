"""Cluster access: explicit context only, allowlist, proxies, lazy import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kgents_pipeline.errors import ClusterError
from kgents_pipeline.kube.access import ClusterAccess, api_client, parse_allowlist
from kgents_pipeline.kube.apply import apply_set
from kgents_pipeline.kube.client import KubeClient
from kgents_pipeline.kube.render import render
from tests.kube.conftest import MANIFESTS, fast_access


def test_kubeconfig_mode_without_a_context_name_is_refused(fake_kubeconfig):
    with pytest.raises(ClusterError, match="explicit context name"):
        ClusterAccess(mode="kubeconfig", kubeconfig=str(fake_kubeconfig)).checked()


def test_unknown_mode_and_missing_kubeconfig_are_refused(tmp_path):
    with pytest.raises(ClusterError, match="expected one of"):
        ClusterAccess(mode="prod").checked()
    with pytest.raises(ClusterError, match="does not exist"):
        api_client(ClusterAccess(mode="kubeconfig", kubeconfig=str(tmp_path / "nope"), context="x"))
    with pytest.raises(ClusterError, match="offline mode has no cluster"):
        api_client(ClusterAccess())


def test_context_not_in_the_allowlist_is_refused_before_any_request(fake_api, fake_kubeconfig):
    access = fast_access(fake_kubeconfig, context_allowlist=parse_allowlist("kind-kgents, staging"))
    with pytest.raises(
        ClusterError,
        match=r"context 'fake' is not in the context allowlist \(kind-kgents, staging\)",
    ):
        KubeClient(access)
    assert fake_api.requests == []
    assert (
        KubeClient(fast_access(fake_kubeconfig, context_allowlist=("fake",))).access.context
        == "fake"
    )


def test_context_missing_from_the_kubeconfig_is_refused(fake_kubeconfig):
    with pytest.raises(ClusterError, match="context 'prod' not found"):
        KubeClient(fast_access(fake_kubeconfig, context="prod"))


@pytest.mark.fake_only
def test_the_named_context_is_used_never_the_current_one(fake_api, fake_access):
    # the kubeconfig's current-context ("decoy") points at a closed port: any use of it would fail
    with KubeClient(fake_access) as client:
        report = apply_set(client, render(MANIFESTS), dry_run=True)
    assert report.context == "fake" and fake_api.resource_requests()


@pytest.mark.fake_only
def test_proxy_variables_do_not_capture_loopback_traffic(fake_api, fake_access, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    with KubeClient(fake_access) as client:
        assert client._api_client.configuration.proxy == ""
        assert client.list_pods() == []


@pytest.mark.fake_only
def test_unreachable_api_server_is_a_clear_error(tmp_path):
    from tests.k8s_api import FakeKubeAPI

    api = FakeKubeAPI().start()
    kc = api.kubeconfig(tmp_path / "kc")
    api.stop()  # nothing listens any more
    with (
        KubeClient(fast_access(kc, retries=2)) as client,
        pytest.raises(ClusterError, match=r"list pods.*after 2 attempt"),
    ):
        client.list_pods()


def test_importing_the_code_location_does_not_import_kubernetes():
    code = (
        "import sys; import kgents_pipeline.defs.cluster, kgents_pipeline.cli.manifests; "
        "print('kubernetes' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_in_cluster_mode_uses_the_service_account(monkeypatch, tmp_path):
    from kubernetes.config import incluster_config

    token, cert = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("sa-token")
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(cert))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    access = ClusterAccess(mode="in-cluster", context_allowlist=("in-cluster",))
    client = api_client(access)
    assert client.configuration.host == "https://10.96.0.1:443"
    assert client.configuration.api_key["BearerToken"].lower() == "bearer sa-token"
    assert access.context_name == "in-cluster"
    with pytest.raises(ClusterError, match="not in the context allowlist"):
        ClusterAccess(mode="in-cluster", context_allowlist=("kind-kgents",)).checked()
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(ClusterError, match="cannot load cluster configuration"):
        api_client(ClusterAccess(mode="in-cluster"))


@pytest.mark.fake_only
def test_bearer_tokens_never_reach_the_output_even_with_kgents_kube_debug(
    fake_access, monkeypatch, capfd
):
    monkeypatch.setenv("KGENTS_KUBE_DEBUG", "1")
    with KubeClient(fake_access) as client:
        assert client._api_client.configuration.debug is False
        client.list_pods()
    out, err = capfd.readouterr()
    assert "fake-token" not in out + err and "authorization" not in (out + err).lower()


def _kubeconfig_without_current_context(fake_api, path):
    import yaml

    doc = yaml.safe_load(fake_api.kubeconfig(path).read_text())
    del doc["current-context"]
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.fake_only
def test_a_kubeconfig_without_current_context_is_accepted(fake_api, tmp_path):
    kubeconfig = _kubeconfig_without_current_context(fake_api, tmp_path / "kc")
    with KubeClient(fast_access(kubeconfig)) as client:
        assert client.list_pods() == []
    from click.testing import CliRunner

    from kgents_pipeline.cli import main

    result = CliRunner().invoke(
        main,
        ["manifests", "diff", str(MANIFESTS), "--kubeconfig", str(kubeconfig), "--context", "fake"],
    )
    assert result.exit_code == 1 and "+++ applied/" in result.output  # drift, not an error


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[]\n", "expected a kubeconfig mapping, got a list"),
        ("contexts: [\n  {name: x\n", "malformed YAML at line"),
        ("", "got empty"),
        ("contexts: {name: x}\n", "`contexts` must be a list"),
        ("contexts: [{context: {cluster: c}}]\n", "contexts[0] has no name"),
        ("contexts: [{name: x, context: {cluster: missing}}]\n", "context 'x'"),
    ],
)
def test_a_malformed_kubeconfig_is_one_line_naming_the_file(tmp_path, text, needle):
    from click.testing import CliRunner

    from kgents_pipeline.cli import main

    kubeconfig = tmp_path / "kc.yaml"
    kubeconfig.write_text(text)
    result = CliRunner().invoke(
        main,
        ["manifests", "diff", str(MANIFESTS), "--kubeconfig", str(kubeconfig), "--context", "x"],
    )
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "internal error" not in result.output
    assert f"kubeconfig {kubeconfig}" in result.output and needle in result.output
