"""NetworkPolicy semantics engine: reachability, the launch intent check, explanations.

Pure Python over objects handed in (no Dagster, no other domain package: callers render the
manifests and read the cluster). Names are loaded lazily so importing the package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "load_intent": "intent",
    "workload_model": "intent",
    "Intent": "intent",
    "check_intent": "check",
    "check_manifest_objects": "check",
    "IntentReport": "report",
    "Violation": "report",
    "Lint": "report",
    "Exposure": "report",
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
    "cluster_from_objects",
    "load_intent",
    "load_objects",
    "workload_model",
]

if TYPE_CHECKING:
    from kgents_pipeline.netpol.check import check_intent, check_manifest_objects
    from kgents_pipeline.netpol.engine import Cluster, Reachability
    from kgents_pipeline.netpol.intent import Intent, load_intent, workload_model
    from kgents_pipeline.netpol.loading import cluster_from_objects, load_objects
    from kgents_pipeline.netpol.report import Exposure, IntentReport, Lint, Violation


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
