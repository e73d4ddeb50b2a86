#!/usr/bin/env python3
"""Smoke proof of the control plane `cluster.py up` starts, driven by the real kubectl.

Proves what the tests will lean on: /readyz; the StatefulSet controller creating pods; pods made
Ready through the status subresource (no kubelet runs); the disruption controller computing the
PDB status; server-side apply and its 409 conflict for a second field manager; a ServiceAccount
token from the TokenRequest API used in a second kubeconfig, judged by the RBAC authorizer;
namespace deletion by the namespace controller. Standard library only; exit 0 when all held.

    python3 tools/kube/smoke.py [--kubectl .venv/bin/kubectl] [--kubeconfig .kube-test/kubeconfig]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
CONTEXT = "kgents-test"
TIMEOUT_S = 60.0

STATEFULSET = {
    "apiVersion": "apps/v1",
    "kind": "StatefulSet",
    "metadata": {"name": "nats"},
    "spec": {
        "serviceName": "nats",
        "replicas": 3,
        "selector": {"matchLabels": {"app": "nats"}},
        "template": {
            "metadata": {"labels": {"app": "nats"}},
            "spec": {"containers": [{"name": "nats", "image": "nats:2.10-alpine"}]},
        },
    },
}
PDB = {
    "apiVersion": "policy/v1",
    "kind": "PodDisruptionBudget",
    "metadata": {"name": "nats"},
    "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "nats"}}},
}
READY_STATUS = {
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": "True"},
            {"type": "Ready", "status": "True"},
        ],
    }
}


class SmokeError(Exception):
    pass


class Kubectl:
    def __init__(self, binary: str, kubeconfig: Path) -> None:
        self.binary, self.kubeconfig = binary, kubeconfig

    def run(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        config = kubeconfig or self.kubeconfig
        command = [self.binary, f"--kubeconfig={config}", f"--context={CONTEXT}", *args]
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise SmokeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)


def until(what: str, probe: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise SmokeError(f"timed out after {TIMEOUT_S:.0f}s waiting for {what}")


def show(step: str, detail: str) -> None:
    print(f"ok  {step}: {detail}", flush=True)


def pdb_status(k: Kubectl, ns: str, healthy: int) -> dict[str, Any] | None:
    pdb = k.json("-n", ns, "get", "pdb", "nats")
    status = pdb.get("status", {})
    settled = status.get("observedGeneration") == pdb["metadata"]["generation"]
    return status if settled and status.get("currentHealthy") == healthy else None


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def mark_ready(k: Kubectl, ns: str, names: list[str]) -> None:
    for name in names:
        k.run(
            "-n",
            ns,
            "patch",
            "pod",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(READY_STATUS),
        )


def smoke(k: Kubectl) -> None:
    readyz = k.run("get", "--raw", "/readyz").stdout.strip()
    if readyz != "ok":
        raise SmokeError(f"/readyz answered {readyz!r}")
    show("readyz", readyz)
    version = json.loads(k.run("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
    show("server version", version)

    ns = f"kgents-smoke-{uuid.uuid4().hex[:6]}"
    k.run("create", "namespace", ns)
    try:
        k.run(
            "-n",
            ns,
            "apply",
            "--server-side",
            "--field-manager=kgents-smoke",
            "-f",
            "-",
            stdin=json.dumps(STATEFULSET),
        )

        def pods() -> list[dict[str, Any]]:
            return k.json("-n", ns, "get", "pods", "-l", "app=nats")["items"]

        # The default OrderedReady policy creates nats-1 only once nats-0 is Running and Ready:
        # play the kubelet's part and mark each pod Ready as the controller creates it.
        def three_ready_pods() -> list[dict[str, Any]] | None:
            found = pods()
            mark_ready(k, ns, [p["metadata"]["name"] for p in found if not is_ready(p)])
            return found if len(found) == 3 and all(is_ready(p) for p in pods()) else None

        created = until("3 StatefulSet pods", three_ready_pods)
        names = sorted(p["metadata"]["name"] for p in created)
        owners = {
            o["kind"] + "/" + o["name"] for p in created for o in p["metadata"]["ownerReferences"]
        }
        show("statefulset controller", f"pods {names} owned by {sorted(owners)}, one at a time")
        phases = sorted({p["status"]["phase"] for p in pods()})
        show("status subresource", f"pods marked Ready, phases {phases}")

        k.run(
            "-n",
            ns,
            "apply",
            "--server-side",
            "--field-manager=kgents-smoke",
            "-f",
            "-",
            stdin=json.dumps(PDB),
        )
        status = until("PDB status with 3 healthy pods", lambda: pdb_status(k, ns, 3))
        keys = ("expectedPods", "currentHealthy", "desiredHealthy", "disruptionsAllowed")
        show("disruption controller", ", ".join(f"{key}={status[key]}" for key in keys))
        if (status["expectedPods"], status["disruptionsAllowed"]) != (3, 1):
            raise SmokeError(f"PDB status {status}: expected 3 expected pods, 1 disruption allowed")

        k.run("-n", ns, "scale", "statefulset", "nats", "--replicas=2")
        status = until("PDB status with 2 healthy pods", lambda: pdb_status(k, ns, 2))
        show("scaled to 2", ", ".join(f"{key}={status[key]}" for key in keys))
        if status["disruptionsAllowed"] != 0:
            raise SmokeError(f"PDB status {status}: expected 0 disruptions allowed at 2 replicas")

        server_side_apply(k, ns)
        service_account_token(k, ns)
    finally:
        k.run("delete", "namespace", ns, "--wait=false", check=False)
    until(
        f"namespace {ns} deleted",
        lambda: k.run("get", "namespace", ns, check=False).returncode != 0,
    )
    show("namespace controller", f"{ns} deleted with its contents")


def server_side_apply(k: Kubectl, ns: str) -> None:
    def config_map(value: str) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "owned"},
                "data": {"key": value},
            }
        )

    k.run(
        "-n",
        ns,
        "apply",
        "--server-side",
        "--field-manager=first",
        "-f",
        "-",
        stdin=config_map("a"),
    )
    # -v=6 logs each request with its status code: the conflict is the API server's 409.
    second = k.run(
        "-n",
        ns,
        "apply",
        "--server-side",
        "--field-manager=second",
        "-v=6",
        "-f",
        "-",
        stdin=config_map("b"),
        check=False,
    )
    if second.returncode == 0 or "409 Conflict" not in second.stderr:
        raise SmokeError(
            f"expected a 409 conflict for a second field manager, got: {second.stderr[-500:]}"
        )
    message = next(
        line
        for line in second.stderr.splitlines()
        if "conflict" in line.lower() and "409" not in line
    )
    show("server-side apply", f"second manager refused with 409: {message.strip()[:120]}")
    k.run(
        "-n",
        ns,
        "apply",
        "--server-side",
        "--field-manager=second",
        "--force-conflicts",
        "-f",
        "-",
        stdin=config_map("b"),
    )
    managers = [
        entry["manager"]
        for entry in k.json("-n", ns, "get", "configmap", "owned", "--show-managed-fields")[
            "metadata"
        ]["managedFields"]
    ]
    show("force-conflicts", f"field managers now {managers}")


def service_account_token(k: Kubectl, ns: str) -> None:
    k.run("-n", ns, "create", "serviceaccount", "reader")
    k.run("-n", ns, "create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    k.run(
        "-n",
        ns,
        "create",
        "rolebinding",
        "reader",
        "--role=pod-reader",
        f"--serviceaccount={ns}:reader",
    )
    token = k.run("-n", ns, "create", "token", "reader", "--duration=10m").stdout.strip()
    show("TokenRequest", f"token for {ns}:reader ({len(token)} chars)")

    admin = json.loads(k.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": CONTEXT, "cluster": cluster}],
            "users": [{"name": "reader", "user": {"token": token}}],
            "contexts": [
                {
                    "name": CONTEXT,
                    "context": {"cluster": CONTEXT, "user": "reader", "namespace": ns},
                }
            ],
            "current-context": CONTEXT,
        }
        path.write_text(json.dumps(config))
        whoami = json.loads(k.run("auth", "whoami", "-o", "json", kubeconfig=path).stdout)
        show("token authentication", f"whoami {whoami['status']['userInfo']['username']}")
        pods = k.run("get", "pods", "-o", "name", kubeconfig=path).stdout.split()
        show("token authorization", f"get pods as the ServiceAccount: {pods}")
        answers = {}
        for verb, resource in (
            ("list", "pods"),
            ("delete", "pods"),
            ("get", "secrets"),
            ("list", "namespaces"),
        ):
            result = k.run("auth", "can-i", verb, resource, kubeconfig=path, check=False)
            answers[f"{verb} {resource}"] = result.stdout.strip()
        show("auth can-i", ", ".join(f"{key}: {value}" for key, value in answers.items()))
        if answers != {
            "list pods": "yes",
            "delete pods": "no",
            "get secrets": "no",
            "list namespaces": "no",
        }:
            raise SmokeError(f"RBAC answered {answers}")
        denied = k.run("get", "secrets", kubeconfig=path, check=False)
        if "Forbidden" not in denied.stderr:
            raise SmokeError(f"expected 403 Forbidden for secrets, got: {denied.stderr.strip()}")
        show("403", denied.stderr.strip().splitlines()[-1][:140])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubectl", default=str(REPO_ROOT / ".venv" / "bin" / "kubectl"))
    parser.add_argument("--kubeconfig", type=Path, default=REPO_ROOT / ".kube-test" / "kubeconfig")
    args = parser.parse_args()
    if not args.kubeconfig.is_file():
        print(f"smoke: error: no {args.kubeconfig}: run `make kube-up` first", file=sys.stderr)
        return 2
    os.environ.pop("KUBECONFIG", None)
    started = time.monotonic()
    try:
        smoke(Kubectl(args.kubectl, args.kubeconfig))
    except SmokeError as error:
        print(f"smoke: error: {error}", file=sys.stderr)
        return 1
    print(f"smoke: all held in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
