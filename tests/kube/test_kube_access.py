"""Cluster access: explicit context only, allowlist, proxies, lazy import, in-cluster mode."""

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


def test_kubeconfig_mode_without_a_context_name_is_refused(kube):
    with pytest.raises(ClusterError, match="explicit context name"):
        ClusterAccess(mode="kubeconfig", kubeconfig=str(kube.kubeconfig)).checked()


def test_unknown_mode_and_missing_kubeconfig_are_refused(tmp_path):
    with pytest.raises(ClusterError, match="expected one of"):
        ClusterAccess(mode="prod").checked()
    with pytest.raises(ClusterError, match="does not exist"):
        api_client(ClusterAccess(mode="kubeconfig", kubeconfig=str(tmp_path / "nope"), context="x"))
    with pytest.raises(ClusterError, match="offline mode has no cluster"):
        api_client(ClusterAccess())


def test_context_not_in_the_allowlist_is_refused_before_any_request(kube):
    mark = kube.audit.mark()
    access = kube.access(context_allowlist=parse_allowlist("kind-kgents, staging"))
    with pytest.raises(
        ClusterError,
        match=r"context 'kgents-test' is not in the context allowlist \(kind-kgents, staging\)",
    ):
        KubeClient(access)
    assert kube.audit.since(mark) == []
    assert KubeClient(kube.access(context_allowlist=("kgents-test",))).access.context == (
        "kgents-test"
    )


def test_context_missing_from_the_kubeconfig_is_refused(kube):
    with pytest.raises(ClusterError, match="context 'prod' not found"):
        KubeClient(kube.access(context="prod"))


def test_the_named_context_is_used_never_the_current_one(kube, tmp_path):
    # the kubeconfig's current-context ("decoy") points at a closed port: any use of it would fail
    kubeconfig = kube.admin_kubeconfig_copy(tmp_path / "kc", current_context="decoy")
    mark = kube.audit.mark()
    with KubeClient(fast_access(kubeconfig, context="kgents-test")) as client:
        report = apply_set(client, render(MANIFESTS), dry_run=True)
    assert report.context == "kgents-test" and kube.audit.pipeline_requests(mark)


def test_proxy_variables_do_not_capture_loopback_traffic(kube, monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    with KubeClient(kube.access()) as client:
        assert client._api_client.configuration.proxy == ""
        assert isinstance(client.list_pods(), list)


def test_unreachable_api_server_is_a_clear_error(kube, tmp_path, free_port):
    kc = kube.token_kubeconfig(tmp_path / "kc", "t", server=f"https://127.0.0.1:{free_port}")
    with (
        KubeClient(fast_access(kc, context="kgents-test", retries=2)) as client,
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
    mounted = tmp_path / "serviceaccount"
    mounted.mkdir()
    (mounted / "token").write_text("sa-token")
    (mounted / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("KGENTS_SERVICE_ACCOUNT_DIR", str(mounted))
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
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.delenv("KGENTS_SERVICE_ACCOUNT_DIR")  # the pod's own mount, absent here
    with pytest.raises(
        ClusterError,
        match=r"token file does not exist.* /var/run/secrets/kubernetes\.io/serviceaccount",
    ):
        api_client(ClusterAccess(mode="in-cluster"))


def test_bearer_tokens_never_reach_the_output_even_with_kgents_kube_debug(
    kube, pipeline_sa, monkeypatch, capfd
):
    monkeypatch.setenv("KGENTS_KUBE_DEBUG", "1")
    with KubeClient(pipeline_sa.access()) as client:
        assert client._api_client.configuration.debug is False
        client.list_pods()
    out, err = capfd.readouterr()
    assert pipeline_sa.token not in out + err and "authorization" not in (out + err).lower()


def test_a_kubeconfig_without_current_context_is_accepted(kube, launch, tmp_path):
    kubeconfig = kube.admin_kubeconfig_copy(tmp_path / "kc", current_context=None)
    with KubeClient(fast_access(kubeconfig, context="kgents-test")) as client:
        assert isinstance(client.list_pods(), list)
    from click.testing import CliRunner

    from kgents_pipeline.cli import main

    args = ["--kubeconfig", str(kubeconfig), "--context", "kgents-test"]
    result = CliRunner().invoke(main, ["manifests", "diff", str(launch.dir), *args])
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
