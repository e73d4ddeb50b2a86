#!/usr/bin/env python3
"""A real Kubernetes control plane for the tests: etcd, kube-apiserver, kube-controller-manager.

Built from the Go module next to this file into a cache outside the repository, started on
127.0.0.1 with generated certificates, stopped by PID. Standard library only.

    cluster.py build     build (or reuse) the binaries and print where they are
    cluster.py up        start everything, wait for /readyz, write .kube-test/kubeconfig
    cluster.py down      stop everything by PID (SIGTERM, then SIGKILL) and remove .kube-test/
    cluster.py status    exit 0 when up and ready, 1 when not
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parent
REPO_ROOT = MODULE_DIR.parent.parent
STATE_DIR = Path(os.environ.get("KGENTS_KUBE_STATE_DIR", REPO_ROOT / ".kube-test")).resolve()
CONTEXT = "kgents-test"
# Order matters: started in this order, stopped in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")
BUILD_PACKAGES = {
    "etcd": "./etcd",
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
}
# Files whose content decides the binaries: any change makes a new cache key, so a new build.
BUILD_INPUTS = ("go.mod", "go.sum", "etcd/main.go")
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# What the tests need with no kubelet and no scheduler: StatefulSet pods, PDB status, ServiceAccounts
# and their tokens, namespace deletion, owner-based deletion, the aggregated admin/edit/view roles,
# and kube-root-ca.crt in every namespace (what an in-cluster client reads as its CA).
CONTROLLERS = (
    "statefulset-controller",
    "disruption-controller",
    "deployment-controller",
    "replicaset-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "clusterrole-aggregation-controller",
    "root-ca-certificate-publisher-controller",
)
READY_TIMEOUT_S = float(os.environ.get("KGENTS_KUBE_READY_TIMEOUT", "180"))
# Bumped when the way components are started changes: `up` restarts an instance of another layout.
LAYOUT = 2
# The tests' request log: every request but the control plane's own traffic, at Metadata level
# (verb, user, user agent, object, the request URI with dryRun/fieldManager, the response code).
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    users: ["system:kube-controller-manager", "system:apiserver"]
  - level: None
    userGroups: ["system:serviceaccounts:kube-system"]
  - level: None
    nonResourceURLs: ["/healthz*", "/livez*", "/readyz*"]
  - level: Metadata
"""
STOP_TIMEOUT_S = 15.0
CERT_DAYS = 30


class ClusterError(Exception):
    """A failure the user sees as one line (after the tail of the failing component's log)."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


def say(message: str) -> None:
    print(f"kube: {message}", flush=True)


# --- build -----------------------------------------------------------------------------------


def kubernetes_version() -> str:
    """The k8s.io/kubernetes version go.mod pins, e.g. v1.37.2."""
    match = re.search(r"^\s*k8s\.io/kubernetes\s+(v\S+)", (MODULE_DIR / "go.mod").read_text(), re.M)
    if not match:
        raise ClusterError(f"no k8s.io/kubernetes requirement in {MODULE_DIR / 'go.mod'}")
    return match.group(1)


def cache_key() -> str:
    digest = hashlib.sha256()
    for name in BUILD_INPUTS:
        digest.update(name.encode() + b"\0" + (MODULE_DIR / name).read_bytes() + b"\0")
    return f"{kubernetes_version()}-{digest.hexdigest()[:12]}"


def cache_root() -> Path:
    if "KGENTS_KUBE_CACHE" in os.environ:
        return Path(os.environ["KGENTS_KUBE_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "kgents-pipeline" / "kube"


def bin_dir() -> Path:
    return cache_root() / cache_key() / "bin"


def ldflags(version: str) -> str:
    """-s -w to keep the binaries lean; the version stamped the way Kubernetes' own build does."""
    major, minor = version.lstrip("v").split(".")[:2]
    stamp = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in stamp.items()]
    return " ".join(flags)


def build() -> Path:
    """Build the three binaries once per cache key; return their directory."""
    target = bin_dir()
    if all((target / name).is_file() for name in COMPONENTS):
        return target
    go = shutil.which("go")
    if go is None:
        raise ClusterError("the Go toolchain (go) is not on PATH")
    version = kubernetes_version()
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-buildvcs=false -mod=readonly")
    packages = list(BUILD_PACKAGES.values())
    say(f"building {', '.join(COMPONENTS)} {version} into {target} (first build: minutes)")
    started = time.monotonic()
    listed = subprocess.run(
        [go, "list", "-deps", *packages], cwd=MODULE_DIR, env=env, capture_output=True, text=True
    )
    if listed.returncode != 0:
        raise ClusterError(f"go list failed: {listed.stderr.strip().splitlines()[-1:]}")
    total = len(listed.stdout.split())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="bin.", dir=target.parent))
    # One `go build` for all three: shared packages compile once; at most 2 jobs, the machine's size.
    command = [go, "build", "-v", "-p", str(min(os.cpu_count() or 2, 2)), "-trimpath"]
    command += ["-ldflags", ldflags(version), "-o", str(staging) + os.sep, *packages]
    output: list[str] = []  # `go build -v` names each package as it compiles it
    with subprocess.Popen(
        command,
        cwd=MODULE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        reader = threading.Thread(target=lambda: output.extend(process.stdout or ()), daemon=True)
        reader.start()
        while process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            if process.returncode is None:
                compiled = sum(1 for line in output if not line.startswith(("go: ", "#")))
                say(f"  {compiled}/{total} packages compiled, {time.monotonic() - started:.0f}s")
        reader.join()
    if process.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        print("".join(output[-30:]), file=sys.stderr, end="")
        raise ClusterError(f"go build failed (exit {process.returncode})")
    if target.exists():  # another build finished first: keep its binaries
        shutil.rmtree(staging, ignore_errors=True)
    else:
        staging.rename(target)
    say(f"built in {time.monotonic() - started:.0f}s: {target}")
    return target


# --- certificates ----------------------------------------------------------------------------

OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {apiserver_sans}
[peer]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
"""
APISERVER_SANS = (
    "IP:127.0.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, "
    "DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local"
)
# name: (subject, extensions section)
CERTIFICATES = {
    "etcd": ("/CN=etcd", "peer"),
    "apiserver-etcd-client": ("/CN=kube-apiserver-etcd-client", "client"),
    "apiserver": ("/CN=kube-apiserver", "server"),
    "admin": ("/O=system:masters/CN=kgents-test-admin", "client"),
    "controller-manager": ("/CN=system:kube-controller-manager", "client"),
}


def openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ClusterError(f"openssl {args[0]} failed: {result.stderr.strip().splitlines()[-1:]}")


def generate_pki(pki: Path) -> None:
    """A CA, serving and client certificates (ECDSA P-256) and the ServiceAccount key pair (RSA)."""
    if shutil.which("openssl") is None:
        raise ClusterError("openssl is not on PATH")
    pki.mkdir(mode=0o700, parents=True)
    (pki / "openssl.cnf").write_text(OPENSSL_CONFIG.format(apiserver_sans=APISERVER_SANS))
    ec = ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    openssl("genpkey", *ec, "-out", "ca.key", cwd=pki)
    openssl(
        "req", "-x509", "-new", "-config", "openssl.cnf", "-key", "ca.key",
        "-subj", "/CN=kgents-test-ca", "-days", str(CERT_DAYS), "-extensions", "ca",
        "-out", "ca.crt", cwd=pki,
    )  # fmt: skip
    for name, (subject, section) in CERTIFICATES.items():
        openssl("genpkey", *ec, "-out", f"{name}.key", cwd=pki)
        openssl(
            "req", "-x509", "-new", "-config", "openssl.cnf", "-key", f"{name}.key",
            "-subj", subject, "-days", str(CERT_DAYS), "-extensions", section,
            "-CA", "ca.crt", "-CAkey", "ca.key", "-out", f"{name}.crt", cwd=pki,
        )  # fmt: skip
    openssl(
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "sa.key",
        cwd=pki,
    )
    openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    for key in pki.glob("*.key"):
        key.chmod(0o600)


# --- state -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out on 127.0.0.1, all held open together so they differ."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def read_pids() -> dict[str, int]:
    path = STATE_DIR / "pids"
    if not path.is_file():
        return {}
    pids = {}
    for line in path.read_text().splitlines():
        name, _, pid = line.partition(" ")
        if name and pid.isdigit():
            pids[name] = int(pid)
    return pids


def write_pids(pids: dict[str, int]) -> None:
    (STATE_DIR / "pids").write_text("".join(f"{name} {pid}\n" for name, pid in pids.items()))


def is_ours(pid: int) -> bool:
    """True when the PID is alive and is one of our binaries started for this state directory."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not cmdline or Path(os.fsdecode(cmdline[0])).name not in COMPONENTS:
        return False
    return any(os.fsencode(f"{STATE_DIR}{os.sep}") in arg for arg in cmdline[1:])


def stop(pids: dict[str, int]) -> None:
    """SIGTERM each live process of ours (controllers first), wait, then SIGKILL what is left."""
    for name in reversed(COMPONENTS):
        pid = pids.get(name)
        if pid is None or not is_ours(pid):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while is_ours(pid) and time.monotonic() < deadline:
            reap(pid)
            time.sleep(0.1)
        if is_ours(pid):
            say(f"{name} (pid {pid}) ignored SIGTERM; sending SIGKILL")
            os.kill(pid, signal.SIGKILL)
            while is_ours(pid):
                reap(pid)
                time.sleep(0.05)


def reap(pid: int) -> None:
    """Collect a child we started in this process, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


# --- probes ----------------------------------------------------------------------------------


def tls_context(pki: Path, client: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(pki / f"{client}.crt", pki / f"{client}.key")
    return context


def get(url: str, context: ssl.SSLContext) -> tuple[int, str]:
    """HTTP status and body; 0 when nothing answers. No proxy: everything is on 127.0.0.1."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (OSError, ssl.SSLError):
        return 0, ""


def wait_for(what: str, ready: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready():
            return
        if process.poll() is not None:
            raise ClusterError(f"{what} exited with code {process.returncode} before it was ready")
        time.sleep(0.25)
    raise ClusterError(f"{what} not ready after {READY_TIMEOUT_S:.0f}s")


def state() -> dict[str, object]:
    path = STATE_DIR / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def healthy() -> bool:
    """Every recorded process alive and kube-apiserver's /readyz answering 200."""
    pids, recorded = read_pids(), state()
    if set(pids) != set(COMPONENTS) or not all(is_ours(pid) for pid in pids.values()):
        return False
    if recorded.get("layout") != LAYOUT:
        return False
    try:
        admin = tls_context(STATE_DIR / "pki", "admin")
    except (OSError, ssl.SSLError):
        return False
    return get(f"{recorded.get('server')}/readyz", admin)[0] == 200


# --- kubeconfig ------------------------------------------------------------------------------


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig(server: str, pki: Path, user: str, cert: str) -> str:
    """A self-contained kubeconfig (certificates embedded) with one context, `kgents-test`."""
    # JSON is YAML: no YAML library needed.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {"server": server, "certificate-authority-data": b64(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(pki / f"{cert}.crt"),
                    "client-key-data": b64(pki / f"{cert}.key"),
                },
            }
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return json.dumps(config, indent=2) + "\n"


def write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600)
    path.write_text(text)


# --- up / down -------------------------------------------------------------------------------


def start(name: str, binary: Path, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start one component in its own session (it outlives `make`), output to its log."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(binary), *args],
            cwd=STATE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    say(f"started {name} (pid {process.pid})")
    return process


def etcd_args(pki: Path, ports: Ports) -> list[str]:
    client, peer = f"https://127.0.0.1:{ports.etcd_client}", f"https://127.0.0.1:{ports.etcd_peer}"
    return [
        "--name=kgents-test",
        f"--data-dir={STATE_DIR / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=kgents-test={peer}",
        "--initial-cluster-state=new",
        f"--cert-file={pki / 'etcd.crt'}",
        f"--key-file={pki / 'etcd.key'}",
        f"--trusted-ca-file={pki / 'ca.crt'}",
        "--client-cert-auth=true",
        f"--peer-cert-file={pki / 'etcd.crt'}",
        f"--peer-key-file={pki / 'etcd.key'}",
        f"--peer-trusted-ca-file={pki / 'ca.crt'}",
        "--peer-client-cert-auth=true",
        "--listen-metrics-urls=",
        "--unsafe-no-fsync=true",  # test data only: fsync per write is the slowest part of etcd
    ]


def apiserver_args(pki: Path, ports: Ports) -> list[str]:
    return [
        f"--etcd-servers=https://127.0.0.1:{ports.etcd_client}",
        f"--etcd-cafile={pki / 'ca.crt'}",
        f"--etcd-certfile={pki / 'apiserver-etcd-client.crt'}",
        f"--etcd-keyfile={pki / 'apiserver-etcd-client.key'}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        # The lease reconciler refuses a loopback address for the `kubernetes` Service's endpoints;
        # no pod runs here to use them.
        "--endpoint-reconciler-type=none",
        f"--secure-port={ports.apiserver}",
        f"--cert-dir={STATE_DIR / 'apiserver'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        "--authorization-mode=Node,RBAC",
        # The default admission plugins stay on (NamespaceLifecycle, ServiceAccount, PodSecurity, ...);
        # NodeRestriction as on every kubeadm cluster. None of them needs a kubelet.
        "--enable-admission-plugins=NodeRestriction",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--profiling=false",
        f"--audit-policy-file={STATE_DIR / 'audit-policy.yaml'}",
        f"--audit-log-path={STATE_DIR / 'logs' / 'audit.log'}",
        "--audit-log-format=json",
        "--audit-log-mode=blocking",
        "--audit-log-maxsize=200",
        "--audit-log-maxbackup=1",
    ]


def controller_manager_args(ports: Ports) -> list[str]:
    config = str(STATE_DIR / "controller-manager.kubeconfig")
    pki = STATE_DIR / "pki"
    return [
        f"--kubeconfig={config}",
        f"--authentication-kubeconfig={config}",
        f"--authorization-kubeconfig={config}",
        # Its own serving endpoint trusts our CA directly: no front proxy to look up.
        "--authentication-skip-lookup=true",
        f"--client-ca-file={pki / 'ca.crt'}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.controller_manager}",
        f"--cert-dir={STATE_DIR / 'controller-manager'}",
        f"--controllers={','.join(CONTROLLERS)}",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def clean_stale() -> None:
    """Stop whatever of a previous instance still runs, then remove its state."""
    if not STATE_DIR.exists():
        return
    say(f"cleaning a stale instance in {STATE_DIR.name}/")
    stop(read_pids())
    shutil.rmtree(STATE_DIR)


def up() -> None:
    binaries = build()
    if healthy():
        say(f"already up: {state().get('server')} (context {CONTEXT})")
        return
    clean_stale()
    started_at = time.monotonic()
    STATE_DIR.mkdir(mode=0o700, parents=True)
    logs = STATE_DIR / "logs"
    logs.mkdir()
    pki = STATE_DIR / "pki"
    generate_pki(pki)
    ports = Ports(*free_ports(4))
    server = f"https://127.0.0.1:{ports.apiserver}"
    (STATE_DIR / "state.json").write_text(
        json.dumps(
            {"server": server, "bin_dir": str(binaries), "layout": LAYOUT, **ports.__dict__},
            indent=2,
        )
        + "\n"
    )
    (STATE_DIR / "audit-policy.yaml").write_text(AUDIT_POLICY)
    write_private(
        STATE_DIR / "controller-manager.kubeconfig",
        kubeconfig(server, pki, "system:kube-controller-manager", "controller-manager"),
    )
    admin = tls_context(pki, "admin")
    etcd = tls_context(pki, "apiserver-etcd-client")
    etcd_health = f"https://127.0.0.1:{ports.etcd_client}/health"
    # Ready for the tests when the ServiceAccount controller has made `default/default`:
    # no pod is admitted into a namespace before its default ServiceAccount exists.
    default_sa = f"{server}/api/v1/namespaces/default/serviceaccounts/default"
    plan: list[tuple[str, list[str], Callable[[], bool]]] = [
        ("etcd", etcd_args(pki, ports), lambda: get(etcd_health, etcd)[0] == 200),
        (
            "kube-apiserver",
            apiserver_args(pki, ports),
            lambda: get(f"{server}/readyz", admin)[0] == 200,
        ),
        (
            "kube-controller-manager",
            controller_manager_args(ports),
            lambda: get(default_sa, admin)[0] == 200,
        ),
    ]
    pids: dict[str, int] = {}
    try:
        for name, args, ready in plan:
            log = logs / f"{name}.log"
            process = start(name, binaries / name, args, log)
            pids[name] = process.pid
            write_pids(pids)
            try:
                wait_for(name, ready, process)
            except ClusterError as error:
                error.log_tail = f"--- last lines of {log.name} ---\n{tail(log)}"
                raise
    except BaseException:
        stop(pids)  # nothing half-started is left running; the logs stay for a look
        raise
    write_private(STATE_DIR / "kubeconfig", kubeconfig(server, pki, "kgents-test-admin", "admin"))
    say(f"up in {time.monotonic() - started_at:.1f}s: {server}, kubeconfig {kubeconfig_path()}")


def kubeconfig_path() -> str:
    path = STATE_DIR / "kubeconfig"
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def down() -> None:
    if not STATE_DIR.exists():
        say("already down")
        return
    stop(read_pids())
    shutil.rmtree(STATE_DIR)
    say("down")


def status() -> int:
    pids, recorded = read_pids(), state()
    if not pids:
        say("down")
        return 1
    for name in COMPONENTS:
        pid = pids.get(name)
        if pid is None:
            say(f"{name}: not started")
        else:
            say(f"{name}: pid {pid} {'running' if is_ours(pid) else 'not running'}")
    ready = healthy()
    say(f"{recorded.get('server')}/readyz: {'ready' if ready else 'not ready'}")
    return 0 if ready else 1


def tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """One build/up/down at a time per checkout (the lock is this file: it is always there)."""
    with open(__file__, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("build", "up", "down", "status"))
    command = parser.parse_args(argv).command
    try:
        if command == "status":
            return status()
        with exclusive():
            if command == "build":
                print(build())
            elif command == "up":
                up()
            else:
                down()
    except ClusterError as error:
        if error.log_tail:
            print(error.log_tail, file=sys.stderr)
        print(f"kube: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kube: error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
