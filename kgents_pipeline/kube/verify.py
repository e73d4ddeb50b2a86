"""Verification of the launch set: drift of the fields we set, namespace labels, selectors that
select no pod, the PDB against the NATS replicas (quorum), and the netpol engine's intent check.

Offline it runs on the rendered objects and the intent's workload model; live on what the API
server returns. Both produce the same `Verification`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgents_pipeline import settings
from kgents_pipeline.errors import ClusterError, KgentsError, ManifestError, PolicyError
from kgents_pipeline.kube.apply import with_managed_label
from kgents_pipeline.kube.client import KubeClient
from kgents_pipeline.kube.render import RenderedObject, RenderedSet, render

if TYPE_CHECKING:
    from kgents_pipeline.netpol import IntentReport

DEFAULT_INTENT = Path(settings.INTENT.default)


@dataclass(frozen=True)
class Drift:
    """A rendered object whose live fields differ from what we set (or that is missing)."""

    ref: str
    missing: bool
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class PdbCheck:
    """One PodDisruptionBudget against the replicas it protects."""

    ref: str
    min_available: int | str | None
    max_unavailable: int | str | None
    workload: str | None  # the StatefulSet (live) or workload (offline) the PDB selects
    replicas: int | None
    quorum: int | None
    effective_min_available: int | None
    expected_pods: int | None
    current_healthy: int | None
    desired_healthy: int | None
    disruptions_allowed: int | None
    ok: bool
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verification:
    """Everything a later verdict step needs to know about the policies and the PDB."""

    mode: str  # offline | live
    context: str | None
    rendered_sha256: str
    verified_at: str
    intent_holds: bool
    violations: tuple[dict[str, Any], ...]
    intent: dict[str, Any]
    drift: tuple[Drift, ...]
    labels_missing: tuple[str, ...]
    unmatched_selectors: tuple[str, ...]
    pdbs: tuple[PdbCheck, ...]

    @property
    def drift_count(self) -> int:
        return len(self.drift)

    @property
    def pdb_ok(self) -> bool:
        return bool(self.pdbs) and all(p.ok for p in self.pdbs)

    @property
    def passed(self) -> bool:
        return (
            self.intent_holds
            and not self.drift
            and self.pdb_ok
            and not self.labels_missing
            and not self.unmatched_selectors
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "context": self.context,
            "rendered_sha256": self.rendered_sha256,
            "verified_at": self.verified_at,
            "passed": self.passed,
            "intent_holds": self.intent_holds,
            "violations": list(self.violations),
            "drift_count": self.drift_count,
            "drift": [asdict(d) for d in self.drift],
            "labels_missing": list(self.labels_missing),
            "unmatched_selectors": list(self.unmatched_selectors),
            "pdb_ok": self.pdb_ok,
            "pdbs": [asdict(p) for p in self.pdbs],
            "intent": self.intent,
        }

    @property
    def lint_errors(self) -> list[dict[str, Any]]:
        """Error-level lints of the intent check: each fails `intent_holds` like a violation."""
        return [x for x in self.intent.get("lints") or () if x.get("severity") == "error"]

    def to_table(self) -> str:
        mark = {True: "ok", False: "FAIL"}
        errors = self.lint_errors
        lines = [
            f"verification ({self.mode}, context {self.context}): {'PASSED' if self.passed else 'FAILED'}",
            f"  intent holds        {mark[self.intent_holds]} ({len(self.violations)} violation(s)"
            + (f", {len(errors)} error lint(s))" if errors else ")"),
            f"  drift               {mark[not self.drift]} ({self.drift_count} object(s))",
            f"  namespace labels    {mark[not self.labels_missing]}",
            f"  selectors match     {mark[not self.unmatched_selectors]}",
            f"  PDB protects quorum {mark[self.pdb_ok]}",
        ]
        for v in self.violations:
            lines.append(f"    violation: {v.get('message') or v}")
        for x in errors:
            lines.append(f"    lint {x.get('code')}: {x.get('object')}: {x.get('message')}")
        for d in self.drift:
            lines.append(f"    drift: {d.ref}: {'missing' if d.missing else ', '.join(d.fields)}")
        lines += [f"    missing label: {m}" for m in self.labels_missing]
        lines += [f"    selects no pod: {u}" for u in self.unmatched_selectors]
        for p in self.pdbs:
            lines.append(
                f"    {p.ref}: replicas={p.replicas} quorum={p.quorum} minAvailable={p.min_available}"
                f" expectedPods={p.expected_pods} currentHealthy={p.current_healthy}"
                f" disruptionsAllowed={p.disruptions_allowed} {mark[p.ok]}"
            )
            lines += [f"      {problem}" for problem in p.problems]
        return "\n".join(lines)


# --- pure helpers ----------------------------------------------------------------------------


def field_drift(desired: Any, live: Any, path: str = "") -> list[str]:
    """Paths of the fields we set whose live value differs (server defaults are not drift)."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return [path or "."]
        out: list[str] = []
        for key, value in desired.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in live:
                out.append(sub)
            else:
                out += field_drift(value, live[key], sub)
        return out
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return [path]
        out = []
        for i, (d, v) in enumerate(zip(desired, live, strict=True)):
            out += field_drift(d, v, f"{path}[{i}]")
        return out
    return [] if desired == live else [path]


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Kubernetes LabelSelector semantics (the netpol engine's matcher); a null selector matches
    nothing, `{}` everything; an unknown operator is a PolicyError, never silently ignored."""
    from kgents_pipeline.netpol.selectors import parse_selector

    if selector is None:
        return False
    return parse_selector(selector, "selector").matches(labels or {})


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(((obj.get("metadata") or {}).get("labels")) or {})


def _ns(obj: Mapping[str, Any]) -> str | None:
    return (obj.get("metadata") or {}).get("namespace")


def unmatched_selectors(
    objects: Iterable[RenderedObject], pods: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Policies and PDBs whose selector matches no pod in their namespace."""
    out = []
    for obj in objects:
        spec = obj.body.get("spec") or {}
        if obj.kind == "NetworkPolicy":
            selector = spec.get("podSelector")
        elif obj.kind == "PodDisruptionBudget":
            selector = spec.get("selector")
        else:
            continue
        if not any(
            _ns(p) == obj.namespace and selector_matches(selector, _labels(p)) for p in pods
        ):
            out.append(obj.ref)
    return out


def missing_namespace_labels(
    objects: Iterable[RenderedObject], namespaces: Sequence[Mapping[str, Any]]
) -> list[str]:
    """`namespace: key=value` for every rendered namespace label absent from the live namespace."""
    live = {(n.get("metadata") or {}).get("name"): _labels(n) for n in namespaces}
    out = []
    for obj in objects:
        if obj.kind != "Namespace":
            continue
        have = live.get(obj.name)
        for key, value in (_labels(obj.body)).items():
            if have is None or have.get(key) != value:
                out.append(
                    f"{obj.name}: {key}={value}" + (" (namespace missing)" if have is None else "")
                )
    return out


def _scaled(value: int | str | None, replicas: int, *, round_up: bool) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.endswith("%"):
        frac = float(value[:-1]) / 100 * replicas
        return math.ceil(frac) if round_up else math.floor(frac)
    return int(value)


def check_pdb(
    pdb: Mapping[str, Any],
    *,
    workload: str | None,
    replicas: int | None,
    matched_pods: int,
    status: Mapping[str, Any] | None,
) -> PdbCheck:
    """Does the PDB keep a majority (quorum) of the replicas through voluntary disruptions?"""
    meta = pdb.get("metadata") or {}
    spec = pdb.get("spec") or {}
    ref = f"PodDisruptionBudget {meta.get('namespace')}/{meta.get('name')}"
    min_av, max_un = spec.get("minAvailable"), spec.get("maxUnavailable")
    problems: list[str] = []
    quorum = effective = None
    if not replicas:
        problems.append("no StatefulSet/workload with replicas matches the PDB selector")
    else:
        quorum = replicas // 2 + 1
        if min_av is not None:
            effective = _scaled(min_av, replicas, round_up=True)
        elif max_un is not None:
            effective = replicas - (_scaled(max_un, replicas, round_up=True) or 0)
        if effective is None:
            problems.append("neither minAvailable nor maxUnavailable is set")
        elif effective < quorum:
            problems.append(
                f"allows disruption below quorum: keeps {effective} of {replicas} replicas, quorum is {quorum}"
            )
        elif effective >= replicas:
            # Quorum with no member to spare: a node drain hangs on the PDB, and the ways out
            # (deleting the PDB, forcing the eviction) take the quorum protection with them.
            problems.append(
                f"minAvailable {effective} >= replicas {replicas}: every voluntary disruption "
                f"(node drain) is blocked, and quorum ({quorum}) has no replica to spare"
            )
        if matched_pods != replicas:
            problems.append(
                f"selector matches {matched_pods} pod(s), the workload has {replicas} replica(s)"
            )
    st = status or {}
    expected, healthy = st.get("expectedPods"), st.get("currentHealthy")
    desired, allowed = st.get("desiredHealthy"), st.get("disruptionsAllowed")
    observed, generation = st.get("observedGeneration"), meta.get("generation")
    if status is not None and (allowed is None or observed is None or observed != generation):
        # A real API server stores a new PDB with a zeroed status (no observedGeneration): only
        # observedGeneration == generation says the disruption controller computed it.
        problems.append(
            "the disruption controller has not computed the status of this spec"
            f" (status.observedGeneration {observed}, metadata.generation {generation})"
        )
    elif status is not None:
        if replicas and expected is not None and expected != replicas:
            problems.append(f"status.expectedPods {expected} != replicas {replicas}")
        if healthy is not None and desired is not None and healthy < desired:
            problems.append(
                f"currentHealthy {healthy} < desiredHealthy {desired}: quorum already at risk"
            )
    return PdbCheck(
        ref=ref,
        min_available=min_av,
        max_unavailable=max_un,
        workload=workload,
        replicas=replicas,
        quorum=quorum,
        effective_min_available=effective,
        expected_pods=expected,
        current_healthy=healthy,
        desired_healthy=desired,
        disruptions_allowed=allowed,
        ok=not problems,
        problems=tuple(problems),
    )


def run_intent_check(
    intent_path: str | Path,
    *,
    namespaces: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    policies: Sequence[Mapping[str, Any]],
    pdbs: Sequence[Mapping[str, Any]],
) -> tuple[bool, tuple[dict[str, Any], ...], dict[str, Any]]:
    """The netpol engine's `check_intent` on plain camelCase dicts: (holds, violations, report)."""
    from kgents_pipeline.netpol import check_intent, load_intent

    report = check_intent(
        load_intent(intent_path),
        namespaces=[dict(n) for n in namespaces],
        pods=[dict(p) for p in pods],
        policies=[dict(p) for p in policies],
        pdbs=[dict(p) for p in pdbs],
    )
    return bool(report.holds), tuple(_plain(v) for v in report.violations), report.to_dict()


def _plain(v: Any) -> dict[str, Any]:
    if isinstance(v, dict):
        return v
    if hasattr(v, "to_dict"):
        plain: dict[str, Any] = v.to_dict()
        return plain
    try:
        return asdict(v)
    except TypeError:
        return {"message": str(v)}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _of_kind(objects: Iterable[RenderedObject], kind: str) -> list[RenderedObject]:
    return [o for o in objects if o.kind == kind]


# --- the two modes ---------------------------------------------------------------------------

_KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def check_manifests(manifests_dir: str | Path, intent_path: str | Path) -> IntentReport:
    """`policy check`: the intent on a manifests directory, offline. A kustomize tree (a
    kustomization file in DIR) is rendered with the real kustomize, exactly as it would be
    applied (patches included); a plain folder is read file by file (recursively; other kinds
    and the launch/ folder skipped)."""
    from kgents_pipeline.netpol import check_manifest_objects, load_intent, load_objects

    intent = load_intent(intent_path)
    root = Path(manifests_dir)
    if not root.is_dir():
        raise PolicyError(f"{manifests_dir}: not a directory of manifests")
    if any((root / name).is_file() for name in _KUSTOMIZATIONS):
        objects = [o.body for o in render(root).objects]
    else:
        # launch/ holds pipeline data (intent, checklist), not Kubernetes objects: not read here.
        roots = [p for p in sorted(root.iterdir()) if p.name != "launch"]
        objects = load_objects(roots, kinds=("Namespace", "NetworkPolicy", "PodDisruptionBudget"))
    return check_manifest_objects(intent, objects)


def verify_offline(rendered: RenderedSet, intent_path: str | Path = DEFAULT_INTENT) -> Verification:
    """Check the rendered objects against the intent's workload model (nothing is contacted)."""
    from kgents_pipeline.netpol import check_manifest_objects, load_intent, workload_model

    path = Path(intent_path)
    if not path.is_file():
        raise ManifestError(f"intent file {path} does not exist")
    intent_model = load_intent(path)
    # The one offline intent check: `policy check --manifests DIR` runs the same function on the
    # same kustomize output, so the two commands cannot disagree.
    report = check_manifest_objects(intent_model, [o.body for o in rendered.objects])
    holds, violations, intent = (
        bool(report.holds),
        tuple(_plain(v) for v in report.violations),
        report.to_dict(),
    )
    model_namespaces, pods = workload_model(intent_model)
    namespaces = list(model_namespaces) + [o.body for o in _of_kind(rendered.objects, "Namespace")]
    pdb_objs = _of_kind(rendered.objects, "PodDisruptionBudget")
    pdbs = []
    for obj in pdb_objs:
        selector = (obj.body.get("spec") or {}).get("selector")
        matched = [
            p for p in pods if _ns(p) == obj.namespace and selector_matches(selector, _labels(p))
        ]
        pdbs.append(
            check_pdb(
                obj.body,
                workload="intent workload model",
                replicas=len(matched),
                matched_pods=len(matched),
                status=None,
            )
        )
    return Verification(
        mode="offline",
        context=None,
        rendered_sha256=rendered.sha256,
        verified_at=_now(),
        intent_holds=holds,
        violations=violations,
        intent=intent,
        drift=(),
        labels_missing=tuple(missing_namespace_labels(rendered.objects, namespaces)),
        unmatched_selectors=tuple(unmatched_selectors(rendered.objects, pods)),
        pdbs=tuple(pdbs),
    )


def pdb_observed(pdb: Mapping[str, Any]) -> bool:
    """True when the disruption controller has computed the PDB's status for its current spec."""
    observed = (pdb.get("status") or {}).get("observedGeneration")
    return observed is not None and observed == (pdb.get("metadata") or {}).get("generation")


def _await_pdb_status(
    client: KubeClient, obj: RenderedObject, live: dict[str, Any], wait_s: float
) -> dict[str, Any]:
    """The live PDB once its status is computed, or as it is after `wait_s`: right after an
    apply creates or changes it, the status is the API server's zeroed placeholder."""
    deadline = time.monotonic() + wait_s
    while not pdb_observed(live) and time.monotonic() < deadline:
        time.sleep(0.1)
        live = client.read(obj.kind, obj.namespace, obj.name) or live
    return live


def verify_live(
    client: KubeClient,
    rendered: RenderedSet,
    intent_path: str | Path = DEFAULT_INTENT,
    *,
    pdb_status_wait_s: float = 10.0,
) -> Verification:
    """Read back every rendered object and the workloads, then run every check on live state
    (waiting up to `pdb_status_wait_s` for the disruption controller to compute PDB status)."""
    path = Path(intent_path)
    if not path.is_file():
        raise ManifestError(f"intent file {path} does not exist")
    drift: list[Drift] = []
    live_objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
    for obj in rendered.objects:
        live = client.read(obj.kind, obj.namespace, obj.name)
        if live is None:
            drift.append(Drift(obj.ref, missing=True))
            continue
        live_objects[(obj.kind, obj.namespace, obj.name)] = live
        fields = field_drift(with_managed_label(obj.body), live)
        if fields:
            drift.append(Drift(obj.ref, missing=False, fields=tuple(fields)))
    namespaces = client.list_namespaces()
    pods = client.list_pods()
    policies = client.list_network_policies()
    pdb_objs = _of_kind(rendered.objects, "PodDisruptionBudget")
    live_pdbs = [
        live_objects[(o.kind, o.namespace, o.name)]
        for o in pdb_objs
        if (o.kind, o.namespace, o.name) in live_objects
    ]
    try:
        holds, violations, intent = run_intent_check(
            path, namespaces=namespaces, pods=pods, policies=policies, pdbs=live_pdbs
        )
    except ClusterError:
        raise
    except KgentsError as exc:
        raise ManifestError(f"intent check on live state failed: {exc}") from exc
    pdbs = []
    for obj in pdb_objs:
        live = live_objects.get((obj.kind, obj.namespace, obj.name))
        if live is not None:
            live = _await_pdb_status(client, obj, live, pdb_status_wait_s)
        selector = (obj.body.get("spec") or {}).get("selector")
        matched = [
            p for p in pods if _ns(p) == obj.namespace and selector_matches(selector, _labels(p))
        ]
        workload, replicas = None, None
        for sts in client.list_stateful_sets(obj.namespace or ""):
            template_labels = (
                ((sts.get("spec") or {}).get("template") or {}).get("metadata") or {}
            ).get("labels")
            if selector_matches(selector, template_labels):
                workload = f"StatefulSet {obj.namespace}/{sts['metadata']['name']}"
                replicas = (sts.get("spec") or {}).get("replicas", 1)
                break
        pdbs.append(
            check_pdb(
                live or obj.body,
                workload=workload,
                replicas=replicas,
                matched_pods=len(matched),
                status=(live or {}).get("status") if live else None,
            )
        )
    return Verification(
        mode="live",
        context=client.access.context_name,
        rendered_sha256=rendered.sha256,
        verified_at=_now(),
        intent_holds=holds,
        violations=violations,
        intent=intent,
        drift=tuple(drift),
        labels_missing=tuple(missing_namespace_labels(rendered.objects, namespaces)),
        unmatched_selectors=tuple(unmatched_selectors(rendered.objects, pods)),
        pdbs=tuple(pdbs),
    )
