"""The load test in a cluster through k6-operator: a `TestRun` (k6.io/v1alpha1) with
`parallelism: N` and its script in a ConfigMap, applied, watched and cleaned up by the
pipeline's own client with the guarantees the manifests have: an explicit context, server-side
apply as our field manager with our label, a timeout, and deletion of exactly what it created.

k6-operator starts N runner pods, runner i with `--execution-segment=(i-1)/N:i/N` and the
sequence `0,1/N,...,1` (the same flags `loadtest.segments` gives local runners). Each runner
writes its raw points and summary to the shared archive volume: the volume is mounted at
`RUNNER_OUT` with `subPathExpr` `<run dir>/runners/$(KGENTS_RUNNER)`, where KGENTS_RUNNER is the
runner's Job name (`<testrun>-<i>`, from the downward API), so every runner's files land in a
directory of their own under the run, exactly where `history.merge` reads them. When the TestRun
reaches `finished` (or `error`), each runner's exit code is read from its pod.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kgents_pipeline.errors import ClusterError
from kgents_pipeline.kube.client import MANAGED_BY_LABEL, MANAGED_BY_VALUE, KubeClient

GROUP, VERSION, PLURAL, KIND = "k6.io", "v1alpha1", "testruns", "TestRun"
STAGES = ("initialization", "initialized", "created", "started", "stopped", "finished", "error")
FINAL_STAGES = ("finished", "error")
RUN_ID_LABEL = "kgents.io/run-id"
RUNNER_OUT = "/kgents/out"  # in each runner pod: its own directory of the shared archive
RUNNER_ENV = "KGENTS_RUNNER"
SHARED_VOLUME = "kgents-archive"
POINTS = f"{RUNNER_OUT}/points.ndjson.gz"
SUMMARY = f"{RUNNER_OUT}/summary.json"


@dataclass(frozen=True)
class TestRunPlan:
    """One load test as a TestRun: where, what script, how many runners, where results go."""

    __test__ = False  # not a pytest test class, whatever its name

    run_id: str
    namespace: str
    script_name: str
    script_text: str
    parallelism: int
    target_url: str
    rate: int
    duration: str
    shared_claim: str  # the PersistentVolumeClaim holding the run archive
    archive_subpath: str = ""  # the archive root inside the claim ("" = its root)
    image: str = "grafana/k6:1.1.0"  # the k6 the pipeline itself runs
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The TestRun's name (and the ConfigMap's): DNS-1123, from the run id."""
        return "kgents-" + self.run_id.lower().replace("_", "-")[:50].strip("-")

    @property
    def run_subpath(self) -> str:
        return "/".join(p for p in (self.archive_subpath.strip("/"), self.run_id) if p)


def runner_name(plan: TestRunPlan, index: int) -> str:
    """k6-operator's name for runner `index` (1-based): its Job, and its directory."""
    return f"{plan.name}-{index}"


def arguments(plan: TestRunPlan) -> str:
    """`spec.arguments`: what every runner adds to `k6 run` (k6-operator adds the segments)."""
    return shlex.join(["--no-color", "--out", f"json={POINTS}"])


def objects(plan: TestRunPlan) -> tuple[dict[str, Any], dict[str, Any]]:
    """(ConfigMap with the script, TestRun) as the pipeline applies them."""
    if plan.parallelism < 1:
        raise ClusterError(f"TestRun parallelism must be >= 1, got {plan.parallelism}")
    labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, RUN_ID_LABEL: plan.run_id}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": plan.name, "namespace": plan.namespace, "labels": labels},
        "data": {plan.script_name: plan.script_text},
    }
    env = [
        {"name": "KGENTS_TARGET_URL", "value": plan.target_url},
        {"name": "KGENTS_RATE", "value": str(plan.rate)},
        {"name": "KGENTS_DURATION", "value": plan.duration},
        {"name": "KGENTS_SUMMARY_PATH", "value": SUMMARY},
        {"name": "K6_NO_USAGE_REPORT", "value": "true"},
        *({"name": k, "value": v} for k, v in sorted(plan.extra_env.items())),
        {
            "name": RUNNER_ENV,
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}},
        },
    ]
    testrun = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": plan.name, "namespace": plan.namespace, "labels": labels},
        "spec": {
            "parallelism": plan.parallelism,
            "script": {"configMap": {"name": plan.name, "file": plan.script_name}},
            "arguments": arguments(plan),
            "cleanup": "post",
            "runner": {
                "image": plan.image,
                "metadata": {"labels": labels},
                "env": env,
                "volumes": [
                    {
                        "name": SHARED_VOLUME,
                        "persistentVolumeClaim": {"claimName": plan.shared_claim},
                    }
                ],
                "volumeMounts": [
                    {
                        "name": SHARED_VOLUME,
                        "mountPath": RUNNER_OUT,
                        "subPathExpr": f"{plan.run_subpath}/runners/$({RUNNER_ENV})",
                    }
                ],
            },
        },
    }
    return config_map, testrun


@dataclass(frozen=True)
class TestRunOutcome:
    """How the TestRun ended, as the API server showed it."""

    __test__ = False

    name: str
    stages: tuple[str, ...]  # every stage seen, in order
    final: str | None  # finished | error | None (timed out)
    timed_out: bool
    runner_exit_codes: Mapping[str, int | None]  # runner name -> its container's exit code
    runner_times: Mapping[str, tuple[str | None, str | None]]  # started_at, finished_at
    deleted: tuple[str, ...]  # what cleanup removed


def _stage(obj: Mapping[str, Any] | None) -> str | None:
    stage = ((obj or {}).get("status") or {}).get("stage")
    return str(stage) if stage else None


def _runner_exits(
    client: KubeClient, plan: TestRunPlan
) -> tuple[dict[str, int | None], dict[str, tuple[str | None, str | None]]]:
    """Each runner's exit code and times, from its pod's terminated k6 container."""
    exits: dict[str, int | None] = {}
    times: dict[str, tuple[str | None, str | None]] = {}
    pods = client.list_pods_labelled(plan.namespace, f"app=k6,k6_cr={plan.name},runner=true")
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        name = labels.get("job-name") or pod["metadata"]["name"]
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        k6 = next((c for c in statuses if c.get("name") == "k6"), statuses[0] if statuses else {})
        term = (k6.get("state") or {}).get("terminated")
        exits[name] = int(term["exitCode"]) if term and "exitCode" in term else None
        times[name] = (
            (term or {}).get("startedAt"),
            (term or {}).get("finishedAt"),
        )
    return exits, times


def run_testrun(
    client: KubeClient,
    plan: TestRunPlan,
    *,
    timeout_s: float,
    on_stage: Callable[[str], None] = lambda stage: None,
    cleanup: bool = True,
) -> TestRunOutcome:
    """Apply the ConfigMap and the TestRun, watch the TestRun's stage until `finished` or
    `error` or `timeout_s`, read the runners' exit codes, delete what was created."""
    config_map, testrun = objects(plan)
    created: list[tuple[str, str]] = []
    stages: list[str] = []
    final: str | None = None
    exits: dict[str, int | None] = {}
    times: dict[str, tuple[str | None, str | None]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        client.apply_config_map(config_map)
        created.append(("configmaps", plan.name))
        applied = client.apply_custom(GROUP, VERSION, PLURAL, testrun)
        created.append((PLURAL, plan.name))

        def seen(obj: Mapping[str, Any] | None) -> str | None:
            stage = _stage(obj)
            if stage and (not stages or stages[-1] != stage):
                stages.append(stage)
                on_stage(stage)
            return stage if stage in FINAL_STAGES else None

        final = seen(applied)
        version = str(applied["metadata"]["resourceVersion"])
        while final is None and (left := deadline - time.monotonic()) > 0:
            try:
                for event in client.watch_custom(
                    GROUP,
                    VERSION,
                    PLURAL,
                    plan.namespace,
                    plan.name,
                    resource_version=version,
                    timeout_s=min(left, 30.0),
                ):
                    obj = event.get("object") or {}
                    if event.get("type") == "DELETED":
                        raise ClusterError(f"TestRun {plan.namespace}/{plan.name} was deleted")
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    final = seen(obj)
                    if final is not None or time.monotonic() >= deadline:
                        break
            except ClusterError:
                raise
            except Exception as exc:  # a dropped watch: read the object, then watch again
                current = client.read_custom(GROUP, VERSION, PLURAL, plan.namespace, plan.name)
                if current is None:
                    raise ClusterError(
                        f"TestRun {plan.namespace}/{plan.name} disappeared while watched"
                    ) from exc
                version = str(current["metadata"]["resourceVersion"])
                final = seen(current)
        if final is not None:
            exits, times = _runner_exits(client, plan)
    finally:
        deleted: list[str] = []
        if cleanup:
            for kind, name in reversed(created):
                group = GROUP if kind == PLURAL else ""
                version_ = VERSION if kind == PLURAL else "v1"
                if client.delete_owned(kind, plan.namespace, name, group=group, version=version_):
                    deleted.append(f"{kind}/{name}")
    return TestRunOutcome(
        name=plan.name,
        stages=tuple(stages),
        final=final,
        timed_out=final is None,
        runner_exit_codes=exits,
        runner_times=times,
        deleted=tuple(deleted),
    )
