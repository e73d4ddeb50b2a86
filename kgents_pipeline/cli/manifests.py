"""`kgents-pipeline manifests ...`: render, validate, diff, apply, verify (the CLI contract in README.md).

Exit codes: 0 success, 1 a negative answer (invalid manifests, drift, failed objects, failed
verification), 2 bad input or environment (one line, via the top-level group).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import yaml

from kgents_pipeline import settings
from kgents_pipeline.cli.options import (
    cluster_options,
    db_option,
    format_option,
    intent_option,
    manifests_argument,
    render_options,
)
from kgents_pipeline.errors import ClusterError, KgentsError, ManifestError
from kgents_pipeline.history.store import open_history
from kgents_pipeline.kube.access import ClusterAccess, parse_allowlist
from kgents_pipeline.kube.render import RenderedSet, render
from kgents_pipeline.kube.validate import require_valid, validate_objects


def _access(
    kubeconfig: str | None, context: str | None, in_cluster: bool, allowlist: str, timeout_s: float
) -> ClusterAccess:
    if in_cluster:
        mode = "in-cluster"
    elif kubeconfig or context:
        mode = "kubeconfig"
    else:
        raise ClusterError("needs --kubeconfig FILE --context NAME (or --in-cluster)")
    return ClusterAccess(
        mode=mode,
        kubeconfig=kubeconfig,
        context=context,
        context_allowlist=parse_allowlist(allowlist),
        request_timeout_s=timeout_s,
    ).checked()


def _rendered_valid(directory: str, kube_version: str, allowed_kinds: str) -> RenderedSet:
    rendered = render(directory)
    require_valid(
        rendered.objects,
        kube_version=kube_version,
        allowed_kinds=settings.split_list(allowed_kinds),
    )
    return rendered


@click.group()
def manifests() -> None:
    """Render, validate, diff, apply and verify the launch manifests."""


@manifests.command("render")
@manifests_argument
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["yaml", "json", "table"]),
    default="yaml",
    show_default=True,
)
def render_cmd(directory: str, fmt: str) -> None:
    """Render DIR with kustomize (`kubectl kustomize`); print the objects and the set's sha256."""
    rendered = render(directory)
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "directory": rendered.directory,
                    "sha256": rendered.sha256,
                    "objects": [{"source": o.source, **o.body} for o in rendered.objects],
                },
                indent=2,
            )
        )
    elif fmt == "table":
        for o in rendered.objects:
            click.echo(f"{o.ref:<55} {o.source}")
        click.echo(f"-- {len(rendered.objects)} objects, sha256 {rendered.sha256}")
    else:
        click.echo(f"# sha256: {rendered.sha256}")
        click.echo(
            yaml.safe_dump_all([o.body for o in rendered.objects], sort_keys=False), nl=False
        )


@manifests.command("validate")
@manifests_argument
@render_options
def validate_cmd(directory: str, kube_version: str, allowed_kinds: str) -> None:
    """Strict schema validation + the checks schemas miss + the kind allowlist (exit 1 if invalid)."""
    rendered = render(directory)
    issues = validate_objects(
        rendered.objects,
        kube_version=kube_version,
        allowed_kinds=settings.split_list(allowed_kinds),
    )
    for issue in issues:
        click.echo(str(issue))
    if issues:
        click.echo(f"{len(issues)} issue(s) in {len(rendered.objects)} objects", err=True)
        sys.exit(1)
    click.echo(
        f"{len(rendered.objects)} objects valid against Kubernetes {kube_version} (sha256 {rendered.sha256})"
    )


@manifests.command("diff")
@manifests_argument
@cluster_options
@render_options
@click.option("--force-conflicts", is_flag=True, help="Preview taking fields from other managers.")
def diff_cmd(
    directory: str,
    kubeconfig: str | None,
    context: str | None,
    in_cluster: bool,
    context_allowlist: str,
    timeout_s: float,
    kube_version: str,
    allowed_kinds: str,
    force_conflicts: bool,
) -> None:
    """Server-side dry-run of every object against live; exit 1 on drift (or failures)."""
    from kgents_pipeline.kube.apply import apply_set
    from kgents_pipeline.kube.client import KubeClient

    access = _access(kubeconfig, context, in_cluster, context_allowlist, timeout_s)
    rendered = _rendered_valid(directory, kube_version, allowed_kinds)
    with KubeClient(access) as client:
        report = apply_set(
            client,
            rendered,
            dry_run=True,
            force_conflicts=force_conflicts,
            allowed_kinds=settings.split_list(allowed_kinds),
        )
    for r in report.results:
        if r.diff:
            click.echo(r.diff, nl=False)
    click.echo(report.to_table(), err=True)
    if report.drifted or report.failed:
        sys.exit(1)


@manifests.command("apply")
@manifests_argument
@cluster_options
@render_options
@click.option("--dry-run", is_flag=True, help="Server-side dry-run only; nothing is written.")
@click.option("--force-conflicts", is_flag=True, help="Take fields owned by other field managers.")
@db_option
@format_option("json", "table")
def apply_cmd(
    directory: str,
    kubeconfig: str | None,
    context: str | None,
    in_cluster: bool,
    context_allowlist: str,
    timeout_s: float,
    kube_version: str,
    allowed_kinds: str,
    dry_run: bool,
    force_conflicts: bool,
    db: str,
    fmt: str,
) -> None:
    """Staged server-side apply (Namespaces first); writes only what drifted; exit 1 on failures."""
    from kgents_pipeline.history.cluster import new_run_id, record_apply
    from kgents_pipeline.kube.apply import ApplyAborted, apply_set
    from kgents_pipeline.kube.client import KubeClient

    access = _access(kubeconfig, context, in_cluster, context_allowlist, timeout_s)
    rendered = _rendered_valid(directory, kube_version, allowed_kinds)
    run_id = new_run_id()
    try:
        with KubeClient(access) as client:
            report = apply_set(
                client,
                rendered,
                dry_run=dry_run,
                force_conflicts=force_conflicts,
                allowed_kinds=settings.split_list(allowed_kinds),
            )
    except ApplyAborted as exc:
        # Environment-level error (unreachable, 401, 403, TLS): exit 2, after recording exactly
        # what was applied before it (one apply_events row per object, not-attempted included).
        if dry_run:
            raise
        try:
            open_history(db).write(record_apply, run_id, exc.report)
        except KgentsError as rec:
            raise ClusterError(
                f"{exc}; recording the partial apply in {db} failed: {rec}"
            ) from None
        raise ClusterError(
            f"{exc}; every object's outcome recorded as run {run_id} in {db}"
        ) from None
    # The report is printed before it is recorded: a history failure never hides what was applied.
    click.echo(
        json.dumps({"run_id": run_id, **report.to_dict()}, indent=2)
        if fmt == "json"
        else report.to_table()
    )
    if not dry_run:
        open_history(db).write(record_apply, run_id, report)
    if report.failed:
        sys.exit(1)


@manifests.command("verify")
@manifests_argument
@cluster_options
@render_options
@click.option(
    "--offline",
    is_flag=True,
    help="Check the rendered objects against the intent's workload model.",
)
@intent_option
@db_option
@format_option("json", "table")
def verify_cmd(
    directory: str,
    kubeconfig: str | None,
    context: str | None,
    in_cluster: bool,
    context_allowlist: str,
    timeout_s: float,
    kube_version: str,
    allowed_kinds: str,
    offline: bool,
    intent: str,
    db: str,
    fmt: str,
) -> None:
    """Read back live state: drift, labels, selectors, PDB quorum, intent; exit 1 unless it passes."""
    from kgents_pipeline.history.cluster import new_run_id, record_verification
    from kgents_pipeline.kube.client import KubeClient
    from kgents_pipeline.kube.verify import verify_live, verify_offline

    if not Path(intent).is_file():
        raise ManifestError(f"intent file {intent} does not exist")
    if offline:
        rendered = _rendered_valid(directory, kube_version, allowed_kinds)
        result = verify_offline(rendered, intent)
    else:
        access = _access(kubeconfig, context, in_cluster, context_allowlist, timeout_s)
        rendered = _rendered_valid(directory, kube_version, allowed_kinds)
        with KubeClient(access) as client:
            result = verify_live(client, rendered, intent)
    # Printed before it is recorded: a history failure never hides the verification.
    click.echo(
        json.dumps(result.to_dict(), indent=2, default=str) if fmt == "json" else result.to_table()
    )
    open_history(db).write(record_verification, new_run_id(), result)
    if not result.passed:
        sys.exit(1)
