"""The launch intent: a workload model plus "destination + port is reachable ONLY from these
sources" expectations, checked both ways against the NetworkPolicy semantics, with lints for the
traps a reachability answer alone does not show, and the exposures a future namespace would get.

Lint severities (an `error` makes the check fail, a `warning` is shown only):
- pdb-selector-matches-nothing (error): a PDB that protects nothing lets quorum be evicted away.
- peer-own-namespace (error): a podSelector-only peer means the policy's own namespace; when its
  pods exist only in other namespaces the author meant a cross-namespace allow that never happens.
- named-port-unresolved (error): a rule that names a port no pod it applies to declares is dead.
- egress-not-closed (error): a namespace the intent needs egress-isolated is not (e.g. its
  default-deny is ingress-only).
- selector-matches-nothing (warning): a NetworkPolicy selecting no pod changes nothing today; the
  expectations already decide whether that matters.
- namespace-label-mismatch (error): a namespace lacks a label the intent's `namespace_labels`
  requires; expectations with namespace_labels sources cannot see that on their own.
- expectation-without-destination (error): the destination workload matches no pod, so the
  expectation proves nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kgents_pipeline.errors import PolicyError
from kgents_pipeline.netpol.engine import INGRESS, Cluster, Endpoint
from kgents_pipeline.netpol.model import (
    NAME_LABEL,
    IPAddress,
    Namespace,
    NetworkPolicy,
    Pod,
    PodDisruptionBudget,
    parse_namespace,
    parse_network_policy,
    parse_pdb,
    parse_pod,
)
from kgents_pipeline.netpol.ports import PROTOCOLS, ContainerPort

_SOURCE_KINDS = ("namespace_labels", "namespace", "workload")


# ------------------------------------------------------------------------------------ intent
@dataclass(frozen=True)
class Workload:
    name: str
    namespace: str
    labels: Mapping[str, str]
    replicas: int
    ports: tuple[ContainerPort, ...]

    def selects(self, pod: Pod) -> bool:
        return pod.namespace == self.namespace and all(
            pod.labels.get(k) == v for k, v in self.labels.items()
        )


@dataclass(frozen=True)
class Source:
    """One entry of `only_from`: `any`, {namespace_labels: {...}}, {namespace: N}, {workload: W}."""

    kind: str
    value: object = None

    def render(self) -> str:
        if self.kind == "any":
            return "any"
        if self.kind == "namespace_labels":
            labels = ",".join(f"{k}={v}" for k, v in sorted(self.value.items()))  # type: ignore[union-attr]
            return f"namespaces labelled {labels}"
        return f"{self.kind} {self.value}"


@dataclass(frozen=True)
class Expectation:
    name: str
    destination: str
    port: int
    protocol: str
    only_from: tuple[Source, ...]


@dataclass(frozen=True)
class Intent:
    path: str
    workloads: tuple[Workload, ...]
    expectations: tuple[Expectation, ...]
    external_probes: tuple[IPAddress, ...] = ()
    egress_isolated_namespaces: tuple[str, ...] = ()
    # labels each namespace must carry (checked, never applied: the manifests/cluster label them)
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def workload(self, name: str) -> Workload:
        for w in self.workloads:
            if w.name == name:
                return w
        raise KeyError(name)


def _str_map(raw: object, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise PolicyError(f"{where}: must map strings to strings")
    return dict(raw)


def _parse_intent(doc: object, path: str) -> Intent:
    def fail(msg: str) -> PolicyError:
        return PolicyError(f"{path}: {msg}")

    if not isinstance(doc, Mapping):
        raise fail("the intent must be a mapping")
    if doc.get("version", 1) != 1:
        raise fail(f"version {doc.get('version')!r} is not supported (expected 1)")
    unknown = set(doc) - {
        "version",
        "workloads",
        "expectations",
        "external_probes",
        "egress_isolated_namespaces",
        "namespace_labels",
    }
    if unknown:
        raise fail(f"unknown field(s) {sorted(unknown)}")
    try:
        workloads = []
        raw_workloads = doc.get("workloads") or []
        if not isinstance(raw_workloads, list):
            raise fail("workloads: must be a list")
        for i, w in enumerate(raw_workloads):
            where = f"workloads[{i}]"
            if not isinstance(w, Mapping) or not isinstance(w.get("name"), str):
                raise fail(f"{where}: needs a `name`")
            if not isinstance(w.get("namespace"), str):
                raise fail(f"{where} ({w['name']}): needs a `namespace`")
            labels = _str_map(w.get("labels"), f"{where}.labels")
            if not labels:
                raise fail(f"{where} ({w['name']}): needs `labels` (how its pods are selected)")
            replicas = w.get("replicas", 1)
            if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
                raise fail(f"{where}.replicas: must be a non-negative integer")
            pod = parse_pod(
                {
                    "metadata": {"name": "x", "namespace": w["namespace"]},
                    "spec": {"containers": [{"ports": w.get("ports") or []}]},
                }
            )
            workloads.append(Workload(w["name"], w["namespace"], labels, replicas, pod.ports))
        names = [w.name for w in workloads]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise fail(f"workloads: duplicate name(s) {dupes}")

        expectations = []
        raw_expectations = doc.get("expectations") or []
        if not isinstance(raw_expectations, list):
            raise fail("expectations: must be a list")
        for i, e in enumerate(raw_expectations):
            where = f"expectations[{i}]"
            if not isinstance(e, Mapping):
                raise fail(f"{where}: must be a mapping")
            dest = e.get("destination")
            if dest not in names:
                raise fail(f"{where}.destination: {dest!r} is not a workload ({', '.join(names)})")
            port = e.get("port")
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise fail(f"{where}.port: {port!r} is not a port number 1-65535")
            protocol = e.get("protocol", "TCP")
            if protocol not in PROTOCOLS:
                raise fail(f"{where}.protocol: {protocol!r} is not one of {', '.join(PROTOCOLS)}")
            raw_sources = e.get("only_from")
            if not isinstance(raw_sources, list):
                raise fail(f"{where}.only_from: must be a list (use [] for 'from nowhere')")
            sources = []
            for j, s in enumerate(raw_sources):
                sw = f"{where}.only_from[{j}]"
                if s == "any":
                    sources.append(Source("any"))
                    continue
                if not isinstance(s, Mapping) or len(s) != 1 or next(iter(s)) not in _SOURCE_KINDS:
                    raise fail(f"{sw}: expected `any` or one of {', '.join(_SOURCE_KINDS)}")
                kind, value = next(iter(s.items()))
                if kind == "namespace_labels":
                    value = _str_map(value, sw)
                    if not value:
                        raise fail(f"{sw}: namespace_labels needs at least one label")
                elif not isinstance(value, str):
                    raise fail(f"{sw}: {kind} must be a name")
                elif kind == "workload" and value not in names:
                    raise fail(f"{sw}: {value!r} is not a workload")
                sources.append(Source(kind, value))
            name = e.get("name") or f"{dest}:{port}/{protocol}"
            expectations.append(Expectation(str(name), dest, port, protocol, tuple(sources)))

        probes = []
        for i, p in enumerate(doc.get("external_probes") or []):
            try:
                probes.append(ipaddress.ip_address(str(p)))
            except ValueError as exc:
                raise fail(f"external_probes[{i}]: {p!r} is not an IP address") from exc
        egress = doc.get("egress_isolated_namespaces") or []
        if not isinstance(egress, list) or not all(isinstance(n, str) for n in egress):
            raise fail("egress_isolated_namespaces: must be a list of namespace names")
        raw_ns = doc.get("namespace_labels") or {}
        if not isinstance(raw_ns, Mapping):
            raise fail("namespace_labels: must map namespace names to labels")
        ns_labels = {str(k): _str_map(v, f"namespace_labels.{k}") for k, v in raw_ns.items()}
    except PolicyError as exc:
        msg = str(exc)
        raise (exc if msg.startswith(f"{path}:") else fail(msg)) from None
    return Intent(
        path, tuple(workloads), tuple(expectations), tuple(probes), tuple(egress), ns_labels
    )


def load_intent(path: str | Path) -> Intent:
    """Read and validate an intent file; PolicyError names the file and what is wrong."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{p}: cannot read the intent: {exc.strerror or exc}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise PolicyError(f"{p}: malformed YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    return _parse_intent(doc, str(p))


def workload_model(intent: Intent) -> tuple[list[dict], list[dict]]:
    """(namespaces, pods) for offline mode, as camelCase API dicts.

    The namespaces are those the workloads use, labelled only with kubernetes.io/metadata.name:
    pass them along with the manifests' (or the cluster's) Namespaces, which say how a namespace is
    labelled; `check_intent` unions the labels of duplicate namespaces.
    Pod IPs come from 10.244.0.0/16, one /24 per workload, so ipBlock rules see them.
    """
    namespaces: dict[str, dict] = {}
    pods: list[dict] = []
    for wi, w in enumerate(intent.workloads):
        if w.namespace not in namespaces:
            labels = {NAME_LABEL: w.namespace}
            namespaces[w.namespace] = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": w.namespace, "labels": labels},
            }
        ports = [
            {
                "containerPort": cp.port,
                "protocol": cp.protocol,
                **({"name": cp.name} if cp.name else {}),
            }
            for cp in w.ports
        ]
        for i in range(w.replicas):
            pods.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"{w.name}-{i}",
                        "namespace": w.namespace,
                        "labels": dict(w.labels),
                    },
                    "spec": {"containers": [{"name": w.name, "ports": ports}]},
                    "status": {"podIP": f"10.244.{wi % 256}.{10 + i % 240}"},
                }
            )
    return list(namespaces.values()), pods


# ------------------------------------------------------------------------------------ report
@dataclass(frozen=True)
class Violation:
    expectation: str
    kind: str  # missing-allow | unexpected-allow
    src: str
    dst: str
    port: int
    protocol: str
    explanation: str

    def to_dict(self) -> dict:
        return {
            "expectation": self.expectation,
            "kind": self.kind,
            "src": self.src,
            "dst": self.dst,
            "port": self.port,
            "protocol": self.protocol,
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class Lint:
    code: str
    severity: str  # error | warning
    object: str
    message: str

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity,
            "object": self.object,
            "message": self.message,
        }


@dataclass(frozen=True)
class Exposure:
    """A way in that does not depend on today's objects: what a new namespace (or address) would
    need to gain access."""

    policy: str
    rule: int
    peer: int | None
    via: str  # e.g. "namespaces labelled kgents.io/tier=gateway", "any namespace", "any source"
    namespace_labels: Mapping[str, str] | None
    target: str
    ports: str
    current_namespaces: tuple[str, ...]

    def to_dict(self) -> dict:
        return {
            "policy": self.policy,
            "rule": self.rule,
            "peer": self.peer,
            "via": self.via,
            "namespace_labels": dict(self.namespace_labels)
            if self.namespace_labels is not None
            else None,
            "target": self.target,
            "ports": self.ports,
            "current_namespaces": list(self.current_namespaces),
        }

    def render(self) -> str:
        where = f"{self.policy} ingress[{self.rule}]" + (
            "" if self.peer is None else f".from[{self.peer}]"
        )
        return f"{self.via} reach {self.target} on {self.ports} ({where})"


@dataclass(frozen=True)
class IntentReport:
    """The answer of `policy check`: holds when no violation and no error-level lint."""

    holds: bool
    violations: tuple[Violation, ...]
    lints: tuple[Lint, ...]
    exposures: tuple[Exposure, ...]
    expectations_checked: int
    pairs_checked: int = 0

    def to_dict(self) -> dict:
        return {
            "holds": self.holds,
            "expectations_checked": self.expectations_checked,
            "pairs_checked": self.pairs_checked,
            "violations": [v.to_dict() for v in self.violations],
            "lints": [lint.to_dict() for lint in self.lints],
            "exposures": [e.to_dict() for e in self.exposures],
        }

    def to_table(self) -> str:
        lines = [
            f"intent {'HOLDS' if self.holds else 'DOES NOT HOLD'}: {self.expectations_checked} "
            f"expectations, {self.pairs_checked} (source, destination) pairs checked, "
            f"{len(self.violations)} violations, "
            f"{sum(1 for x in self.lints if x.severity == 'error')} error lints"
        ]
        if self.violations:
            lines += ["", "VIOLATIONS"]
            rows = [("EXPECTATION", "KIND", "SRC", "DST", "PORT", "EXPLANATION")]
            rows += [
                (v.expectation, v.kind, v.src, v.dst, f"{v.port}/{v.protocol}", v.explanation)
                for v in self.violations
            ]
            lines += _table(rows)
        if self.lints:
            lines += ["", "LINTS"]
            rows = [("SEVERITY", "CODE", "OBJECT", "MESSAGE")]
            rows += [(x.severity, x.code, x.object, x.message) for x in self.lints]
            lines += _table(rows)
        if self.exposures:
            lines += ["", "EXPOSURES (who would gain access just by existing with these labels)"]
            lines += [f"  {e.render()}" for e in self.exposures]
        return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  "
        + "  ".join(str(c).ljust(w) for c, w in zip(r[:-1], widths, strict=True))
        + "  "
        + str(r[-1])
        for r in rows
    ]


# ------------------------------------------------------------------------------------- check
def _merge_namespaces(raw: Iterable[Mapping]) -> list[Namespace]:
    merged: dict[str, dict[str, str]] = {}
    for obj in raw:
        ns = parse_namespace(obj)
        labels = merged.setdefault(ns.name, {})
        for k, v in ns.labels.items():
            if k in labels and labels[k] != v:
                raise PolicyError(f"Namespace {ns.name}: label {k} is both {labels[k]!r} and {v!r}")
            labels[k] = v
    return [Namespace(name, labels) for name, labels in merged.items()]


def _source_matches(source: Source, ep: Endpoint, cluster: Cluster, intent: Intent) -> bool:
    if source.kind == "any":
        return True
    pod = ep.pod
    if pod is None:
        return False
    if source.kind == "namespace":
        return pod.namespace == source.value
    if source.kind == "workload":
        return intent.workload(str(source.value)).selects(pod)
    ns_labels = cluster.namespaces[pod.namespace].labels
    return all(ns_labels.get(k) == v for k, v in source.value.items())  # type: ignore[union-attr]


def check_intent(
    intent: Intent,
    *,
    namespaces: list[dict],
    pods: list[dict],
    policies: list[dict],
    pdbs: Sequence[dict] = (),
) -> IntentReport:
    """Check every expectation both ways on these objects (camelCase API dicts, as YAML or
    `ApiClient().sanitize_for_serialization` give them), lint the traps, list the exposures.
    Terminated pods (status.phase Succeeded/Failed) are left out."""
    parsed_policies = [parse_network_policy(p) for p in policies]
    parsed_pdbs = [parse_pdb(p) for p in pdbs]
    # Pods that have terminated (phase Succeeded/Failed) hold no IP and take no traffic.
    live = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    cluster = Cluster(_merge_namespaces(namespaces), [parse_pod(p) for p in live], parsed_policies)
    lints: list[Lint] = []
    violations: list[Violation] = []
    pairs = 0
    all_pods = sorted(cluster.pods.values(), key=lambda p: p.key)
    sources = [Endpoint(pod=p) for p in all_pods] + [
        Endpoint(ip=ip) for ip in intent.external_probes
    ]
    cache: dict[tuple, tuple[bool, str]] = {}
    for exp in intent.expectations:
        workload = intent.workload(exp.destination)
        dsts = [p for p in all_pods if workload.selects(p)]
        if not dsts:
            lints.append(
                Lint(
                    "expectation-without-destination",
                    "error",
                    exp.name,
                    f"workload {workload.name} ({workload.namespace}, "
                    f"{_labels_text(workload.labels)}) matches no pod; the expectation proves nothing",
                )
            )
            continue
        for dst in dsts:
            dcls = cluster.class_of[dst.key].index
            for src in sources:
                if src.pod is dst:
                    continue  # a pod may always reach itself; nothing to check
                pairs += 1
                expected = any(_source_matches(s, src, cluster, intent) for s in exp.only_from)
                skey = cluster.class_of[src.pod.key].index if src.pod is not None else str(src.ip)
                key = (skey, dcls, exp.port, exp.protocol)
                answer = cache.get(key)
                if answer is None:
                    r = cluster.explain(src, Endpoint(pod=dst), exp.port, exp.protocol)
                    answer = cache[key] = (r.allowed, r.explanation)
                allowed, explanation = answer
                if allowed != expected:
                    violations.append(
                        Violation(
                            exp.name,
                            "missing-allow" if expected else "unexpected-allow",
                            src.name,
                            dst.key,
                            exp.port,
                            exp.protocol,
                            explanation,
                        )
                    )
    lints += _lints(intent, cluster, parsed_policies, parsed_pdbs)
    holds = not violations and not any(x.severity == "error" for x in lints)
    return IntentReport(
        holds,
        tuple(violations),
        tuple(lints),
        tuple(_exposures(cluster, parsed_policies)),
        len(intent.expectations),
        pairs,
    )


def check_manifest_objects(intent: Intent, objects: Iterable[Mapping]) -> IntentReport:
    """Offline mode on manifest objects (camelCase dicts): their Namespaces, NetworkPolicies and
    PDBs (other kinds ignored), pods from the intent's workload model. The one offline code path
    of both `policy check` and `manifests verify --offline`."""
    objs = list(objects)
    model_ns, model_pods = workload_model(intent)
    return check_intent(
        intent,
        namespaces=model_ns + [dict(o) for o in objs if o.get("kind") == "Namespace"],
        pods=model_pods,
        policies=[dict(o) for o in objs if o.get("kind") == "NetworkPolicy"],
        pdbs=[dict(o) for o in objs if o.get("kind") == "PodDisruptionBudget"],
    )


_KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def check_manifests(manifests_dir: str | Path, intent_path: str | Path) -> IntentReport:
    """Offline mode on a manifests directory. A kustomize tree (a kustomization file in DIR) is
    rendered with the real kustomize, exactly as it would be applied (patches included); a plain
    folder is read file by file (recursively; other kinds and the launch/ folder skipped)."""
    intent = load_intent(intent_path)
    root = Path(manifests_dir)
    if not root.is_dir():
        raise PolicyError(f"{manifests_dir}: not a directory of manifests")
    if any((root / name).is_file() for name in _KUSTOMIZATIONS):
        from kgents_pipeline.kube.render import render

        objects = [o.body for o in render(root).objects]
    else:
        from kgents_pipeline.netpol.loading import load_objects

        # launch/ holds pipeline data (intent, checklist), not Kubernetes objects: not read here.
        roots = [p for p in sorted(root.iterdir()) if p.name != "launch"]
        objects = load_objects(roots, kinds=("Namespace", "NetworkPolicy", "PodDisruptionBudget"))
    return check_manifest_objects(intent, objects)


# ------------------------------------------------------------------------------------- lints
def _labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "{}"


def _lints(
    intent: Intent,
    cluster: Cluster,
    policies: list[NetworkPolicy],
    pdbs: list[PodDisruptionBudget],
) -> list[Lint]:
    out: list[Lint] = []
    pods = list(cluster.pods.values())
    for pdb in pdbs:
        matched = pdb.selector is not None and any(
            p.namespace == pdb.namespace and pdb.selector.matches(p.labels) for p in pods
        )
        if not matched:
            what = (
                "has no selector" if pdb.selector is None else f"selector [{pdb.selector.render()}]"
            )
            out.append(
                Lint(
                    "pdb-selector-matches-nothing",
                    "error",
                    f"PodDisruptionBudget {pdb.key}",
                    f"{what} matches no pod in {pdb.namespace}: it protects nothing",
                )
            )
    for policy in policies:
        selected = cluster.selected_pods(policy)
        obj = f"NetworkPolicy {policy.key}"
        if not selected:
            out.append(
                Lint(
                    "selector-matches-nothing",
                    "warning",
                    obj,
                    f"spec.podSelector [{policy.pod_selector.render()}] matches no pod in "
                    f"{policy.namespace}: the policy changes nothing today",
                )
            )
        for direction in ("Ingress", "Egress"):
            field_name = "ingress" if direction == INGRESS else "egress"
            peer_field = "from" if direction == INGRESS else "to"
            for ri, rule in enumerate(policy.rules(direction)):
                for pi, peer in enumerate(rule.peers or ()):
                    if peer.ip_block is not None or peer.namespace_selector is not None:
                        continue
                    if peer.pod_selector is None:
                        continue
                    here = [
                        p
                        for p in pods
                        if p.namespace == policy.namespace and peer.pod_selector.matches(p.labels)
                    ]
                    elsewhere = sorted(
                        {
                            p.namespace
                            for p in pods
                            if p.namespace != policy.namespace
                            and peer.pod_selector.matches(p.labels)
                        }
                    )
                    if not here and elsewhere:
                        out.append(
                            Lint(
                                "peer-own-namespace",
                                "error",
                                obj,
                                f"{field_name}[{ri}].{peer_field}[{pi}] has only a podSelector "
                                f"[{peer.pod_selector.render()}], which means namespace "
                                f"{policy.namespace}; the pods it matches are in "
                                f"{', '.join(elsewhere)} (add a namespaceSelector)",
                            )
                        )
                if rule.ports.everything or not rule.ports.named:
                    continue
                if direction == INGRESS:
                    candidates = selected
                elif rule.peers is None:
                    candidates = pods
                else:
                    candidates = [
                        p
                        for p in pods
                        if any(
                            cluster.peer_matches_pod(peer, policy.namespace, p)
                            for peer in rule.peers
                        )
                    ]
                if direction == INGRESS and not selected:
                    continue  # already reported: the policy selects nothing
                for name, proto in sorted(rule.ports.named):
                    if not any(
                        cp.name == name and cp.protocol == proto
                        for p in candidates
                        for cp in p.ports
                    ):
                        whose = "selected pod" if direction == INGRESS else "destination pod"
                        out.append(
                            Lint(
                                "named-port-unresolved",
                                "error",
                                obj,
                                f"{field_name}[{ri}] names port {name!r}/{proto}, which no "
                                f"{whose} declares: the rule allows nothing through it",
                            )
                        )
    for name, required in sorted(intent.namespace_labels.items()):
        ns = cluster.namespaces.get(name)
        have = ns.labels if ns is not None else {}
        wrong = {k: v for k, v in required.items() if have.get(k) != v}
        if wrong:
            found = "does not exist" if ns is None else f"has {_labels_text(have)}"
            out.append(
                Lint(
                    "namespace-label-mismatch",
                    "error",
                    f"Namespace {name}",
                    f"the intent needs {_labels_text(wrong)} on it, but it {found}; the "
                    "NetworkPolicy peers that select on these labels do not see it",
                )
            )
    for ns in intent.egress_isolated_namespaces:
        closers = [
            p
            for p in policies
            if p.namespace == ns and "Egress" in p.policy_types and p.pod_selector.selects_all
        ]
        if closers:
            continue
        ingress_only = [
            p.key
            for p in policies
            if p.namespace == ns
            and p.pod_selector.selects_all
            and not p.ingress
            and "Egress" not in p.policy_types
        ]
        open_pods = [
            p.key for p in pods if p.namespace == ns and not cluster.isolating_policies(p, "Egress")
        ]
        if ingress_only:
            msg = (
                f"the intent needs egress closed in {ns}, but its default-deny "
                f"{', '.join(ingress_only)} is ingress-only (policyTypes lacks Egress)"
            )
        else:
            msg = f"the intent needs egress closed in {ns}, but no policy isolates all its pods for egress"
        if open_pods:
            msg += f"; not isolated for egress: {', '.join(sorted(open_pods))}"
        out.append(Lint("egress-not-closed", "error", f"Namespace {ns}", msg))
    return out


def _exposures(cluster: Cluster, policies: list[NetworkPolicy]) -> list[Exposure]:
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
                    via, labels = f"namespaces labelled {_labels_text(eq)}", eq
                else:
                    via, labels = f"namespaces matching [{peer.namespace_selector.render()}]", None
                out.append(Exposure(policy.key, ri, pi, via + pods, labels, target, ports, current))
    return out
