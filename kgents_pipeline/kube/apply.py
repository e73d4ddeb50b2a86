"""Staged server-side apply: Namespaces first, then the rest; every object is dry-run, diffed
against live, and written only when missing or drifted. Nothing is ever deleted."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from kgents_pipeline.errors import ClusterError, ManifestError
from kgents_pipeline.kube.client import (
    FIELD_MANAGER,
    KINDS,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    ClusterUnavailable,
    Conflict,
    Forbidden,
    KubeClient,
    NotFound,
    Rejected,
    Unauthorized,
)
from kgents_pipeline.kube.render import RenderedObject, RenderedSet
from kgents_pipeline.kube.validate import DEFAULT_ALLOWED_KINDS, kind_issues

ACTIONS = ("created", "configured", "unchanged", "failed")
# Server-maintained metadata: never part of what we compare.
_SERVER_METADATA = (
    "managedFields",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "uid",
    "selfLink",
)


@dataclass(frozen=True)
class ObjectResult:
    """What happened to one rendered object."""

    kind: str
    namespace: str | None
    name: str
    action: str  # created | configured | unchanged | failed
    diff: str = ""
    error: str = ""
    resource_version: str = ""
    source: str = ""
    written: bool = False  # a real (non-dry-run) write was sent and accepted

    @property
    def ref(self) -> str:
        return (
            f"{self.kind} {self.namespace}/{self.name}"
            if self.namespace
            else f"{self.kind} {self.name}"
        )


@dataclass(frozen=True)
class ApplyReport:
    """The outcome of one apply (or `--dry-run`/diff) of a rendered set."""

    context: str | None
    dry_run: bool
    rendered_sha256: str
    results: tuple[ObjectResult, ...]
    orphans: tuple[str, ...] = ()
    orphan_error: str = ""
    field_manager: str = FIELD_MANAGER
    extra: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(ACTIONS, 0)
        for r in self.results:
            out[r.action] = out.get(r.action, 0) + 1
        return out

    @property
    def failed(self) -> list[ObjectResult]:
        return [r for r in self.results if r.action == "failed"]

    @property
    def drifted(self) -> list[ObjectResult]:
        """Objects that were (or, in a dry run, would be) created or configured."""
        return [r for r in self.results if r.action in ("created", "configured")]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "dry_run": self.dry_run,
            "field_manager": self.field_manager,
            "rendered_sha256": self.rendered_sha256,
            "counts": self.counts(),
            "results": [asdict(r) for r in self.results],
            "orphans": list(self.orphans),
            "orphan_error": self.orphan_error,
        }

    def to_table(self) -> str:
        rows = [("ACTION", "OBJECT", "DETAIL")]
        for r in self.results:
            detail = r.error or (f"{len(r.diff.splitlines())} diff lines" if r.diff else "")
            action = (
                f"{r.action} (dry run)" if self.dry_run and r.action != "unchanged" else r.action
            )
            rows.append((action, r.ref, detail))
        for o in self.orphans:
            rows.append(("orphan", o, "carries our label, no longer rendered (not deleted)"))
        width = [max(len(row[i]) for row in rows) for i in range(2)]
        lines = [f"{a:<{width[0]}}  {b:<{width[1]}}  {c}".rstrip() for a, b, c in rows]
        counts = ", ".join(f"{k} {v}" for k, v in self.counts().items())
        return "\n".join([*lines, f"-- {counts}; context {self.context}"])


class ApplyAborted(ClusterError):
    """An environment-level error (unreachable API server, 401, 403, TLS) stopped the apply.

    `report` is the partial record: every object handled before the abort with its outcome (and
    whether a write was sent), the object it stopped on as failed, and every object not
    attempted as failed with `not attempted`. Callers record it before reporting the error.
    """

    def __init__(self, cause: ClusterError, report: ApplyReport) -> None:
        written = sum(1 for r in report.results if r.written)
        super().__init__(f"{cause} (apply aborted; {written} object(s) written before it)")
        self.cause = cause
        self.report = report


class _ObjectAborted(Exception):
    """Carries the failed result of the object an environment-level error stopped on."""

    def __init__(self, cause: ClusterUnavailable, result: ObjectResult) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.result = result


def with_managed_label(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of `body` carrying `app.kubernetes.io/managed-by: kgents-pipeline`."""
    out = copy.deepcopy(body)
    meta = out.setdefault("metadata", {})
    labels = meta.get("labels") or {}
    labels[MANAGED_BY_LABEL] = MANAGED_BY_VALUE
    meta["labels"] = labels
    return out


def comparable(obj: dict[str, Any] | None) -> dict[str, Any]:
    """The object without status and server-maintained metadata (what an apply can change)."""
    if not obj:
        return {}
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for key in _SERVER_METADATA:
        meta.pop(key, None)
    return out


def object_diff(live: dict[str, Any] | None, desired: dict[str, Any], ref: str) -> str:
    """Unified YAML diff live -> desired ('' when equal)."""
    a = yaml.safe_dump(comparable(live), sort_keys=True) if live else ""
    b = yaml.safe_dump(comparable(desired), sort_keys=True)
    if a == b:
        return ""
    return "".join(
        difflib.unified_diff(
            a.splitlines(keepends=True),
            b.splitlines(keepends=True),
            f"live/{ref}",
            f"applied/{ref}",
        )
    )


def _result(obj: RenderedObject, action: str, **kw: Any) -> ObjectResult:
    return ObjectResult(obj.kind, obj.namespace, obj.name, action, source=obj.source, **kw)


def _conflict_hint(exc: ClusterError) -> str:
    return f"{exc} (another field manager owns these fields; not forced: set force_conflicts to take them)"


def apply_object(
    client: KubeClient, obj: RenderedObject, *, dry_run: bool, force: bool
) -> ObjectResult:
    """Dry-run, diff against live, and (unless `dry_run`) apply only if missing or drifted.

    Object-level refusals (409, 422, ...) are a failed result; an environment-level error
    (`ClusterUnavailable`) raises `_ObjectAborted` carrying this object's failed result.
    """
    try:
        return _apply_object(client, obj, dry_run=dry_run, force=force)
    except ClusterUnavailable as exc:
        raise _ObjectAborted(exc, _result(obj, "failed", error=str(exc))) from None


def _apply_object(
    client: KubeClient, obj: RenderedObject, *, dry_run: bool, force: bool
) -> ObjectResult:
    body = with_managed_label(obj.body)
    live = None
    try:
        live = client.read(obj.kind, obj.namespace, obj.name)
        preview = client.apply(body, dry_run=True, force=force)
    except ClusterUnavailable:
        raise
    except Conflict as exc:
        # Still show the drift: a forced dry-run persists nothing and takes nothing.
        try:
            forced = client.apply(body, dry_run=True, force=True)
            diff = object_diff(live, forced, obj.ref)
        except ClusterUnavailable:
            raise
        except ClusterError:
            diff = ""
        return _result(obj, "failed", diff=diff, error=_conflict_hint(exc))
    except NotFound as exc:
        return _result(obj, "failed", error=f"namespace {obj.namespace} does not exist ({exc})")
    except ClusterError as exc:
        return _result(obj, "failed", error=str(exc))
    diff = object_diff(live, preview, obj.ref)
    if live is not None and not diff:
        return _result(
            obj, "unchanged", resource_version=live["metadata"].get("resourceVersion", "")
        )
    action = "created" if live is None else "configured"
    if dry_run:
        return _result(obj, action, diff=diff)
    try:
        applied = client.apply(body, dry_run=False, force=force)
    except Conflict as exc:
        return _result(obj, "failed", diff=diff, error=_conflict_hint(exc))
    except (Forbidden, Unauthorized) as exc:
        raise _ObjectAborted(exc, _result(obj, "failed", diff=diff, error=str(exc))) from None
    except Rejected as exc:  # refused outright: nothing was written, nothing to read back
        return _result(obj, "failed", diff=diff, error=str(exc))
    except ClusterError as exc:
        # The write was not retried (not a dry-run); read back once to record what is live.
        try:
            after = client.read(obj.kind, obj.namespace, obj.name)
        except ClusterUnavailable as lost:
            unconfirmed = _result(
                obj,
                "failed",
                diff=diff,
                error=f"write not confirmed: {exc}; read back failed too: the server may still "
                "complete it: re-run apply or verify",
            )
            raise _ObjectAborted(lost, unconfirmed) from None
        except ClusterError:
            after = None
        if after is not None and not object_diff(after, preview, obj.ref):
            return _result(
                obj,
                action,
                diff=diff,
                written=True,
                error=f"response lost ({exc}); read back shows the object applied",
                resource_version=(after.get("metadata") or {}).get("resourceVersion", ""),
            )
        return _result(
            obj,
            "failed",
            diff=diff,
            error=f"write not confirmed: {exc}; the server may still complete it: re-run apply or verify",
        )
    return _result(
        obj,
        action,
        diff=diff,
        written=True,
        resource_version=(applied.get("metadata") or {}).get("resourceVersion", ""),
    )


def apply_set(
    client: KubeClient,
    rendered: RenderedSet,
    *,
    dry_run: bool = False,
    force_conflicts: bool = False,
    allowed_kinds: Sequence[str] = DEFAULT_ALLOWED_KINDS,
) -> ApplyReport:
    """Apply the rendered set in stages (Namespaces, then the rest); report every object.

    A Namespace that fails makes every object in it fail (skipped, with the reason); in a dry run
    objects whose Namespace would be created are reported as created without a server dry-run
    (the API server 404s a dry-run into a namespace that does not exist yet).
    """
    refused = kind_issues(rendered.objects, allowed_kinds)
    if refused:
        raise ManifestError(f"refused before any request: {'; '.join(map(str, refused))}")
    for obj in rendered.objects:
        if obj.kind not in KINDS:
            raise ManifestError(
                f"{obj.source}: {obj.ref}: no typed client mapping for kind {obj.kind}"
            )
    namespaces = [o for o in rendered.objects if o.kind == "Namespace"]
    others = [o for o in rendered.objects if o.kind != "Namespace"]
    results: list[ObjectResult] = []
    failed_ns: dict[str, str] = {}
    pending_ns: set[str] = set()

    def report(orphans: Sequence[str] = (), orphan_error: str = "") -> ApplyReport:
        return ApplyReport(
            context=client.access.context_name,
            dry_run=dry_run,
            rendered_sha256=rendered.sha256,
            results=tuple(results),
            orphans=tuple(orphans),
            orphan_error=orphan_error,
        )

    def aborted(cause: ClusterError) -> ApplyAborted:
        done = {(r.kind, r.namespace, r.name) for r in results}
        for obj in [*namespaces, *others]:
            if (obj.kind, obj.namespace, obj.name) not in done:
                results.append(
                    _result(obj, "failed", error=f"not attempted: apply aborted ({cause})")
                )
        return ApplyAborted(cause, report())

    try:
        for obj in namespaces:
            res = apply_object(client, obj, dry_run=dry_run, force=force_conflicts)
            results.append(res)
            if res.action == "failed":
                failed_ns[obj.name] = res.error
            elif dry_run and res.action == "created":
                pending_ns.add(obj.name)
        for obj in others:
            if obj.namespace in failed_ns:
                results.append(
                    _result(
                        obj, "failed", error=f"skipped: namespace {obj.namespace} failed to apply"
                    )
                )
            elif obj.namespace in pending_ns:
                body = with_managed_label(obj.body)
                results.append(_result(obj, "created", diff=object_diff(None, body, obj.ref)))
            else:
                results.append(apply_object(client, obj, dry_run=dry_run, force=force_conflicts))
        orphans, orphan_error = find_orphans(client, rendered.objects, allowed_kinds)
    except _ObjectAborted as exc:
        results.append(exc.result)
        raise aborted(exc.cause) from None
    except ClusterUnavailable as exc:
        raise aborted(exc) from None
    return report(orphans, orphan_error)


def find_orphans(
    client: KubeClient, objects: Sequence[RenderedObject], allowed_kinds: Sequence[str]
) -> tuple[list[str], str]:
    """Live objects carrying our label that the rendered set no longer has (never deleted)."""
    wanted = {(o.kind, o.namespace, o.name) for o in objects}
    orphans: list[str] = []
    try:
        for kind in allowed_kinds:
            if kind not in KINDS:
                continue
            for live in client.list_managed(kind):
                meta = live.get("metadata") or {}
                key = (kind, meta.get("namespace"), meta.get("name"))
                if key not in wanted:
                    where = f"{key[1]}/{key[2]}" if key[1] else key[2]
                    orphans.append(f"{kind} {where}")
    except ClusterUnavailable:
        raise
    except ClusterError as exc:
        return orphans, f"orphan listing incomplete: {exc}"
    return sorted(orphans), ""
