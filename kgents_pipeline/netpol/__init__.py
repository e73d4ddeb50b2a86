"""NetworkPolicy semantics engine: reachability, the launch intent check, explanations.

Pure Python (no Dagster). Names are loaded lazily so importing the package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "load_intent": "intent",
    "workload_model": "intent",
    "check_intent": "intent",
    "check_manifests": "intent",
    "check_manifest_objects": "intent",
    "Intent": "intent",
    "IntentReport": "intent",
    "Violation": "intent",
    "Lint": "intent",
    "Exposure": "intent",
    "load_objects": "loading",
    "cluster_from_objects": "loading",
    "Cluster": "engine",
    "Reachability": "engine",
}
__all__ = [
    "Cluster",
    "Exposure",
    "Intent",
    "IntentReport",
    "Lint",
    "Reachability",
    "Violation",
    "check_intent",
    "check_manifest_objects",
    "check_manifests",
    "cluster_from_objects",
    "load_intent",
    "load_objects",
    "workload_model",
]

if TYPE_CHECKING:
    from kgents_pipeline.netpol.engine import Cluster, Reachability
    from kgents_pipeline.netpol.intent import (
        Exposure,
        Intent,
        IntentReport,
        Lint,
        Violation,
        check_intent,
        check_manifest_objects,
        check_manifests,
        load_intent,
        workload_model,
    )
    from kgents_pipeline.netpol.loading import cluster_from_objects, load_objects


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
