"""The whole definition set, snapshotted: an asset, check, job, schedule or sensor that silently
disappears, moves group, loses a dependency or a pool fails here.

After an intended change: `KGENTS_UPDATE_SNAPSHOT=1 .venv/bin/pytest tests/dagster/test_definitions_snapshot.py`
rewrites the snapshot; review its diff like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

SNAPSHOT = Path(__file__).with_name("definitions.snapshot.json")
REPO = Path(__file__).resolve().parents[2]


def _code_references(spec: dg.AssetSpec) -> list[str]:
    """Each asset's code links, as repository-relative `file:line` (never a machine's path)."""
    refs = spec.metadata.get("dagster/code_references")
    out = []
    for ref in getattr(refs, "code_references", ()):
        path = getattr(ref, "file_path", None) or getattr(ref, "url", "")
        path = str(Path(path).resolve().relative_to(REPO)) if path.startswith("/") else path
        out.append(f"{path}:{getattr(ref, 'line_number', '')}".rstrip(":"))
    return out


def _freshness(policy: Any) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {
        "fail_window_h": policy.fail_window.to_timedelta().total_seconds() / 3600,
        "warn_window_h": policy.warn_window.to_timedelta().total_seconds() / 3600
        if policy.warn_window
        else None,
    }


def describe(definitions: dg.Definitions) -> dict[str, Any]:
    graph = definitions.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        spec = node.to_asset_spec()
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "pools": sorted(node.pools or ()),
            "owners": sorted(spec.owners),
            "has_description": bool(spec.description),
            "freshness": _freshness(node.freshness_policy),
            "code_references": [r.split(":")[0] for r in _code_references(spec)],
            "checks": {
                spec.name: {
                    "blocking": spec.blocking,
                    "has_description": bool(spec.description),
                }
                for spec in (
                    graph.get_check_spec(ck) for ck in graph.get_check_keys_for_assets({key})
                )
            },
        }
    jobs = {}
    for job in definitions.resolve_all_job_defs():
        if job.name == "__ASSET_JOB":
            continue
        selected = job.asset_layer.asset_graph.get_all_asset_keys()
        jobs[job.name] = {
            "assets": sorted(k.to_user_string() for k in selected),
            "executor": job.executor_def.name,
            "has_description": bool(job.description),
        }
    schedules = {
        s.name: {
            "job": s.job_name,
            "cron": s.cron_schedule,
            "timezone": s.execution_timezone,
            "default_status": s.default_status.value,
            "has_description": bool(s.description),
        }
        for s in definitions.schedules or ()
    }
    sensors = {
        s.name: {
            "targets": sorted(k.to_user_string() for k in s.asset_selection.resolve(graph))
            if s.asset_selection is not None
            else [t.job_name for t in s.targets],
            "default_status": s.default_status.value,
            "minimum_interval_seconds": s.minimum_interval_seconds,
            "has_description": bool(s.description),
        }
        for s in definitions.sensors or ()
    }
    return {
        "assets": assets,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
        "resources": sorted(definitions.resources or {}),
    }


def test_the_definition_set_matches_its_snapshot():
    from kgents_pipeline.definitions import defs

    current = json.loads(json.dumps(describe(defs()), sort_keys=True))
    if os.environ.get("KGENTS_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    assert current == expected, (
        "the code location changed: if intended, rerun with KGENTS_UPDATE_SNAPSHOT=1 and review "
        "the diff of " + SNAPSHOT.name
    )
