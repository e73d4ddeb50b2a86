"""`kgents-pipeline policy ...`: reachability questions and the launch intent check."""

from __future__ import annotations

import json
from typing import Any

import click

from kgents_pipeline import safe_yaml, settings
from kgents_pipeline.cli.options import format_option, from_setting, intent_option
from kgents_pipeline.errors import PolicyError

_FORMAT = format_option("json", "table")


@click.group()
def policy() -> None:
    """NetworkPolicy reachability and the launch intent."""


def _read_queries(path: str) -> list[dict[str, Any]]:
    try:
        data = safe_yaml.read_bytes(path, error=PolicyError)
    except PolicyError as exc:
        raise PolicyError(
            f"{path}: cannot read the queries: {str(exc).removeprefix(f'{path}: ')}"
        ) from None
    raw = safe_yaml.load_json(data, path, error=PolicyError)
    if not isinstance(raw, list):
        raise PolicyError(f"{path}: the queries must be a JSON array, got {type(raw).__name__}")
    queries = []
    for i, q in enumerate(raw):
        where = f"{path}: query {i}"
        if not isinstance(q, dict):
            raise PolicyError(f"{where}: must be an object with src, dst, port[, protocol]")
        missing = [k for k in ("src", "dst", "port") if k not in q]
        if missing:
            raise PolicyError(f"{where}: missing {', '.join(missing)}")
        unknown = set(q) - {"src", "dst", "port", "protocol"}
        if unknown:
            raise PolicyError(f"{where}: unknown field(s) {sorted(unknown)}")
        queries.append(
            {
                "src": q["src"],
                "dst": q["dst"],
                "port": q["port"],
                "protocol": q.get("protocol", "TCP"),
            }
        )
    return queries


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("SRC", "DST", "PORT", "ALLOWED")
    body = [
        (r["src"], r["dst"], f"{r['port']}/{r['protocol']}", "yes" if r["allowed"] else "NO")
        for r in rows
    ]
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + "  EXPLANATION"]
    for b, r in zip(body, rows, strict=True):
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) + "  " + r["explanation"]
        )
    return "\n".join(lines)


@policy.command("reach")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--queries", "queries_file", type=click.Path(), help="JSON array of {src, dst, port, protocol}."
)
@_FORMAT
def reach(paths: tuple[str, ...], queries_file: str | None, fmt: str) -> None:
    """Who can reach whom: answer QUERIES, or every ordered pair of distinct pods on every container
    port of the destination, from Namespaces, Pods and NetworkPolicies in PATHS."""
    from kgents_pipeline.netpol.loading import cluster_from_objects, load_objects

    notes: list[str] = []
    objects = load_objects(paths, notes)
    if not any(o.get("kind") == "Pod" for o in objects):
        raise PolicyError(
            f"{', '.join(paths)}: no Pods found: policy reach needs the Pods (with their labels "
            "and container ports) to answer who can reach whom"
        )
    cluster = cluster_from_objects(objects)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    rows: list[dict[str, Any]] = []
    if queries_file is not None:
        for i, q in enumerate(_read_queries(queries_file)):
            try:
                r = cluster.query(q["src"], q["dst"], q["port"], q["protocol"])
            except PolicyError as exc:
                raise PolicyError(f"{queries_file}: query {i}: {exc}") from exc
            rows.append({**q, "allowed": r.allowed, "explanation": r.explanation})
    else:
        from kgents_pipeline.netpol.engine import Endpoint

        matrix = cluster.matrix()
        cache: dict[tuple[Any, ...], str] = {}
        for src, dst, port, proto, allowed in matrix.pairs():
            key = (cluster.class_of[src.key].index, cluster.class_of[dst.key].index, port, proto)
            text = cache.get(key)
            if text is None:
                answer = cluster.explain(Endpoint(pod=src), Endpoint(pod=dst), port, proto)
                if answer.allowed != allowed:  # two independent evaluations must agree
                    raise RuntimeError(
                        f"engine disagreement on {src.key} -> {dst.key} {port}/{proto}"
                    )
                text = cache[key] = answer.explanation
            rows.append(
                {
                    "src": src.key,
                    "dst": dst.key,
                    "port": port,
                    "protocol": proto,
                    "allowed": allowed,
                    "explanation": text,
                }
            )
    click.echo(json.dumps(rows, indent=2) if fmt == "json" else _table(rows))


@policy.command("check")
@from_setting(
    settings.MANIFESTS_DIR,
    "--manifests",
    "manifests_dir",
    type=click.Path(),
    help="Kustomize tree holding Namespaces, NetworkPolicies and PDBs.",
)
@intent_option
@_FORMAT
def check(manifests_dir: str, intent: str, fmt: str) -> None:
    """Check the launch intent against the manifests (offline mode). Exit 0 when it holds,
    1 on violations or error-level lints, 2 on bad input."""
    from kgents_pipeline.kube.verify import check_manifests

    report = check_manifests(manifests_dir, intent)
    click.echo(json.dumps(report.to_dict(), indent=2) if fmt == "json" else report.to_table())
    if not report.holds:
        raise click.exceptions.Exit(1)
