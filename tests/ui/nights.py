"""Nights of the pipeline as the Dagster UI sees them: a real DAGSTER_HOME, a real DuckDB
history of remote runs (synthetic k6 archives in k6's formats, tests/verdict/synth.py), and the
code location's own `launch_readiness_job` executed on that instance for the assets that read
the history (metrics_history ingests the night's archived run, then baseline, launch_readiness).
A remote target and live verification are what can make a night READY; the demo target never
can."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg

from tests.verdict.synth import history, signed_checklist, verification, write_run

READ_ASSETS = [dg.AssetKey(k) for k in ("metrics_history", "baseline", "launch_readiness")]


class Nights:
    """One history, one instance; each night archives a run and runs the job on it."""

    def __init__(self, root: Path, now: dt.datetime | None = None) -> None:
        self.root = root
        self.now = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.db = root / "metrics.duckdb"
        self.archive = root / "k6"
        self.reports = root / "reports"
        self.checklist = signed_checklist(root / "checklist.yaml")
        self.count = 0

    def env(self) -> dict[str, str]:
        """The variables the code location (here and in the webserver) reads."""
        return {
            "KGENTS_DB_PATH": str(self.db),
            "KGENTS_ARCHIVE_DIR": str(self.archive),
            "KGENTS_REPORTS_DIR": str(self.reports),
            "KGENTS_CHECKLIST": str(self.checklist),
        }

    def seed(self) -> None:
        """Four passing remote runs, 8 to 5 hours ago, and a live verification."""
        start = self.now - dt.timedelta(hours=8)
        history(self.db, self.archive, [{}] * 4, start=start)
        verification(self.db, self.now - dt.timedelta(minutes=30))

    def night(self, instance: dg.DagsterInstance, *, errors: int = 0, hours_ago: float = 1.0):
        """Archive one remote run (`errors` of its 2,000 requests failing) started `hours_ago`,
        record it as load_test_run did, and run launch_readiness_job over the reading assets."""
        self.count += 1
        run_id = f"night-{self.count:02d}"
        write_run(
            self.archive,
            run_id,
            self.now - dt.timedelta(hours=hours_ago),
            errors=errors,
            seed=100 + self.count,
        )
        instance.report_runless_asset_event(
            dg.AssetMaterialization("load_test_run", metadata={"run_id": run_id})
        )
        from kgents_pipeline.definitions import defs

        saved = {k: os.environ.get(k) for k in self.env()}
        os.environ.update(self.env())
        try:
            job = defs().resolve_job_def("launch_readiness_job")
            result = job.execute_in_process(
                instance=instance, asset_selection=READ_ASSETS, raise_on_error=False
            )
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        return result

    def passing_history(self, count: int, *, first_hours_ago: float) -> None:
        """`count` more passing runs straight into the history, one hour apart."""
        start = self.now - dt.timedelta(hours=first_hours_ago)
        specs = [{"run_id": f"extra-{self.count}-{i}"} for i in range(count)]
        self.count += 1
        history(self.db, self.archive, specs, start=start)
