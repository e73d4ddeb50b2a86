"""The load test through k6-operator, against the real API server with the TestRun CRD installed.

No k6-operator controller runs here (nor a kubelet): the test plays them. It drives the TestRun's
status through its stages via the status subresource, as the operator does; it starts each
runner as the operator's runner pod would (the TestRun's arguments and env, the script read back
from the ConfigMap, `--execution-segment` i of N) but as a real local k6 process writing into the
shared archive; and it records each runner pod's terminated k6 container, as the kubelet does.

The CRD is a stand-in (tests/kube/k6-testrun-crd.yaml says why): k6-operator's Go module, where
its CRD lives, cannot be fetched from the module proxy this project builds from.
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kgents_pipeline.errors import ClusterError
from kgents_pipeline.history.ingest import ingest_run_dir
from kgents_pipeline.history.merge import read_runners
from kgents_pipeline.history.store import open_history
from kgents_pipeline.kube.client import FIELD_MANAGER, KubeClient, Rejected
from kgents_pipeline.kube.testrun import (
    GROUP,
    PLURAL,
    RUNNER_ENV,
    RUNNER_OUT,
    VERSION,
    TestRunPlan,
    objects,
    run_testrun,
)
from kgents_pipeline.loadtest.runner import LoadTestRequest, find_k6
from kgents_pipeline.loadtest.segments import segment_args
from kgents_pipeline.loadtest.target import DemoTarget
from kgents_pipeline.verdict.operator_run import run_with_k6_operator
from tests.kube.control_plane import ControlPlane, wait_until

CRD = Path(__file__).with_name("k6-testrun-crd.yaml")
CLAIM = "kgents-archive"


@pytest.fixture(scope="module")
def testrun_crd(kube: ControlPlane) -> None:
    kube.kubectl("apply", "--server-side", "-f", str(CRD))
    kube.kubectl("wait", "--for=condition=Established", "crd/testruns.k6.io", "--timeout=30s")


@pytest.fixture
def namespace(kube: ControlPlane, testrun_crd: None):
    name = f"kgents-k6op-{secrets.token_hex(3)}"
    kube.ensure_namespace(name)
    yield name
    kube.core.delete_namespace(name)


class Operator:
    """What k6-operator, the Job controller and the kubelet would do for one TestRun."""

    def __init__(self, kube: ControlPlane, namespace: str, archive: Path) -> None:
        from kubernetes import client

        self.kube, self.ns, self.archive = kube, namespace, archive
        self.custom = client.CustomObjectsApi(kube.api)

    def testrun(self, name: str | None = None) -> dict[str, Any]:
        def found():
            items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL)
            items = [i for i in items["items"] if name is None or i["metadata"]["name"] == name]
            return items[0] if items else None

        return wait_until("the pipeline's TestRun", found)

    def stage(self, name: str, stage: str) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.ns, PLURAL, name, {"status": {"stage": stage}}
        )

    def run_runners(self, tr: dict[str, Any]) -> dict[str, tuple[int, str, str]]:
        """Each runner as its pod would run it, as a local k6 process; their exit codes."""
        spec, name = tr["spec"], tr["metadata"]["name"]
        cm = self.kube.core.read_namespaced_config_map(spec["script"]["configMap"]["name"], self.ns)
        script_file = spec["script"]["configMap"]["file"]
        n = spec["parallelism"]
        mount = spec["runner"]["volumeMounts"][0]
        results: dict[str, tuple[int, str, str]] = {}

        def one(i: int) -> None:
            runner = f"{name}-{i}"  # its Job's name, which the downward API gives KGENTS_RUNNER
            out = self.archive / mount["subPathExpr"].replace(f"$({RUNNER_ENV})", runner)
            out.mkdir(parents=True)
            (out / "test").mkdir()
            (out / "test" / script_file).write_text(cm.data[script_file])  # /test/<file>
            env = {"PATH": os.environ["PATH"]}
            for e in spec["runner"]["env"]:
                env[e["name"]] = e.get("value", runner)  # the one valueFrom is the Job name
            env = {k: v.replace(RUNNER_OUT, str(out)) for k, v in env.items()}
            args = [a.replace(RUNNER_OUT, str(out)) for a in shlex.split(spec["arguments"])]
            # k6-operator's runner command, less --paused and the REST API (no starter here).
            cmd = [str(find_k6()), "run", "--quiet", *segment_args(i, n), *args]
            cmd += [str(out / "test" / script_file), "--address", ""]
            cmd += ["--tag", f"instance_id={i}", "--tag", f"testrun_name={name}"]
            started = _now()
            code = subprocess.run(
                cmd, env=env, cwd=out, capture_output=True, timeout=120
            ).returncode
            results[runner] = (code, started, _now())

        threads = [threading.Thread(target=one, args=(i,)) for i in range(1, n + 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def pods_terminated(self, name: str, exits: dict[str, tuple[int, str, str]]) -> None:
        """The runner pods with their k6 containers terminated, as the kubelet reports them."""
        for runner, (code, started, finished) in exits.items():
            labels = {"app": "k6", "k6_cr": name, "runner": "true", "job-name": runner}
            pod = f"{runner}-x{secrets.token_hex(2)}"
            self.kube.core.create_namespaced_pod(
                self.ns,
                {
                    "metadata": {"name": pod, "labels": labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "k6", "image": "grafana/k6:1.1.0"}],
                    },
                },
            )
            term = {"exitCode": code, "startedAt": started, "finishedAt": finished}
            term["reason"] = "Completed" if code == 0 else "Error"
            self.kube.core.patch_namespaced_pod_status(
                pod,
                self.ns,
                {
                    "status": {
                        "phase": "Succeeded" if code == 0 else "Failed",
                        "containerStatuses": [
                            {
                                "name": "k6",
                                "image": "grafana/k6:1.1.0",
                                "imageID": "",
                                "ready": False,
                                "restartCount": 0,
                                "state": {"terminated": term},
                            }
                        ],
                    }
                },
            )


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_testrun_round_trip_through_the_real_api_server(kube, namespace, tmp_path):
    archive = tmp_path / "shared"  # the claim's content, as this machine sees it
    mark = kube.audit.mark()
    operator = Operator(kube, namespace, archive)
    holder: dict[str, Any] = {}
    with DemoTarget(latency_ms=5) as target:
        request = LoadTestRequest(target.url, "demo", rate=40, duration="3s")
        pipeline = threading.Thread(
            target=lambda: holder.update(
                run=run_with_k6_operator(
                    request,
                    2,
                    kube.access(),
                    namespace=namespace,
                    shared_claim=CLAIM,
                    archive_root=archive,
                    timeout_s=90,
                    log=lambda line: None,
                )
            )
        )
        pipeline.start()
        tr = operator.testrun()
        name = tr["metadata"]["name"]
        # Accepted by the CRD's schema; its defaults applied by the API server.
        assert tr["spec"]["parallelism"] == 2 and tr["spec"]["cleanup"] == "post"
        assert (tr["spec"]["quiet"], tr["spec"]["paused"]) == ("true", "true")
        assert tr["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kgents-pipeline"
        managers = {m["manager"]: m["operation"] for m in tr["metadata"]["managedFields"]}
        assert managers == {FIELD_MANAGER: "Apply"}
        for stage in ("initialization", "initialized", "created", "started"):
            operator.stage(name, stage)
        exits = operator.run_runners(tr)
        operator.pods_terminated(name, exits)
        operator.stage(name, "finished")
        pipeline.join(timeout=60)
    run = holder["run"]
    assert run.testrun.stages == ("initialization", "initialized", "created", "started", "finished")
    assert run.testrun.final == "finished" and run.completed
    assert run.testrun.runner_exit_codes == {f"{name}-1": 0, f"{name}-2": 0}
    # Cleanup removed exactly what the pipeline created.
    assert sorted(run.testrun.deleted) == [f"configmaps/{name}", f"testruns/{name}"]
    assert not operator.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)[
        "items"
    ]
    assert not kube.core.list_namespaced_config_map(
        namespace, label_selector="app.kubernetes.io/managed-by=kgents-pipeline"
    ).items
    sent = {
        (e.verb, e.resource, e.field_manager, e.code)
        for e in kube.audit.pipeline_requests(mark)
        if e.namespace == namespace
    }
    assert ("patch", "configmaps", FIELD_MANAGER, 201) in sent
    assert ("patch", "testruns", FIELD_MANAGER, 201) in sent
    assert ("watch", "testruns", None, 200) in sent
    assert {("delete", "configmaps"), ("delete", "testruns")} <= {(v, r) for v, r, _, _ in sent}

    # The runners' points landed in the shared archive; the run is one run of the history.
    runners = sorted(p.name for p in (run.run_dir / "runners").iterdir())
    assert runners == [f"{name}-1", f"{name}-2"]
    db = tmp_path / "metrics.duckdb"
    ingested = ingest_run_dir(open_history(db), run.run_dir)
    assert ingested.valid, ingested.invalid_reasons
    assert ingested.record.runners == 2 and 118 <= ingested.record.http_reqs <= 121
    with open_history(db).reader() as con:
        own = read_runners(con, run.run_id)
    assert [(x["name"], x["segment"], x["exit_code"]) for x in own] == [
        (f"{name}-1", "0:1/2", 0),
        (f"{name}-2", "1/2:1", 0),
    ]
    assert sum(x["http_reqs"] for x in own) == ingested.record.http_reqs


def test_a_runner_that_failed_in_the_cluster_invalidates_the_run(kube, namespace, tmp_path):
    """Stage error, runner 2's pod killed (exit 137) and its files missing: invalid, naming it."""
    archive = tmp_path / "shared"
    operator = Operator(kube, namespace, archive)
    holder: dict[str, Any] = {}
    request = LoadTestRequest("http://127.0.0.1:9", "remote", rate=10, duration="2s")
    pipeline = threading.Thread(
        target=lambda: holder.update(
            run=run_with_k6_operator(
                request,
                2,
                kube.access(),
                namespace=namespace,
                shared_claim=CLAIM,
                archive_root=archive,
                timeout_s=60,
                log=lambda line: None,
            )
        )
    )
    pipeline.start()
    name = operator.testrun()["metadata"]["name"]
    operator.stage(name, "started")
    operator.pods_terminated(
        name, {f"{name}-1": (0, _now(), _now()), f"{name}-2": (137, _now(), _now())}
    )
    operator.stage(name, "error")
    pipeline.join(timeout=60)
    run = holder["run"]
    assert run.testrun.final == "error" and not run.completed
    assert run.exit_code == 137
    ingested = ingest_run_dir(open_history(tmp_path / "m.duckdb"), run.run_dir)
    assert not ingested.valid
    why = "; ".join(ingested.invalid_reasons)
    assert "runner 2 of 2" in why and "137" in why


def test_a_testrun_nobody_runs_times_out_and_is_still_cleaned_up(kube, namespace):
    plan = TestRunPlan("t-timeout", namespace, "s.js", "export default function () {}", 2,
                       "http://127.0.0.1:9", 10, "2s", CLAIM)  # fmt: skip
    with KubeClient(kube.access()) as client:
        started = time.monotonic()
        outcome = run_testrun(client, plan, timeout_s=2)
        assert 1.5 <= time.monotonic() - started < 15
        assert outcome.timed_out and outcome.final is None and outcome.stages == ()
        assert sorted(outcome.deleted) == [f"configmaps/{plan.name}", f"testruns/{plan.name}"]
        assert client.read_custom(GROUP, VERSION, PLURAL, namespace, plan.name) is None


def test_the_real_schema_refuses_a_malformed_testrun(kube, namespace):
    plan = TestRunPlan("t-bad", namespace, "s.js", "x", 2, "http://127.0.0.1:9", 10, "2s", CLAIM)
    _, testrun = objects(plan)
    del testrun["spec"]["script"]  # required
    testrun["spec"]["cleanup"] = "always"  # enum: post
    with KubeClient(kube.access()) as client, pytest.raises(Rejected) as refused:
        client.apply_custom(GROUP, VERSION, PLURAL, testrun)
    assert "422" in str(refused.value)
    assert "spec.script: Required value" in str(refused.value)
    assert 'spec.cleanup: Unsupported value: "always"' in str(refused.value)


def test_the_testrun_needs_an_explicit_context(kube, namespace):
    from kgents_pipeline.kube.access import ClusterAccess

    with pytest.raises(ClusterError, match="explicit context"):
        KubeClient(ClusterAccess(mode="kubeconfig", kubeconfig=str(kube.kubeconfig)))
