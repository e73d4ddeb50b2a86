"""kgents-pipeline: launch-readiness evidence for the kgents SaaS as a Dagster code location."""
