"""Resources shared by the load-test and history assets, configured from the environment.

| variable                | default               | meaning                                        |
| KGENTS_DB_PATH          | data/metrics.duckdb   | DuckDB history file                            |
| KGENTS_ARCHIVE_DIR      | data/k6               | archive of raw k6 runs                         |
| KGENTS_TARGET_URL       | (unset: demo target)  | base URL of the service under test             |
| KGENTS_AUTH_HEADER      | (unset)               | Authorization header value sent by k6          |
| KGENTS_RATE             | 100                   | requests per second                            |
| KGENTS_DURATION         | 30s                   | k6 duration                                    |
| KGENTS_K6_TIMEOUT_S     | 0 (= duration + 60 s) | stop k6 after this long                        |
| KGENTS_DEMO_LATENCY_MS  | 0                     | demo target: added latency                     |
| KGENTS_DEMO_ERROR_RATE  | 0                     | demo target: fraction of 503 answers           |
"""

from __future__ import annotations

import os

import dagster as dg

from kgents_pipeline.dagster_support import env_or
from kgents_pipeline.errors import ConfigError


class HistoryResource(dg.ConfigurableResource):
    """The DuckDB metrics history and the run archive it is built from."""

    db_path: str = "data/metrics.duckdb"
    archive_dir: str = "data/k6"


class LoadTestResource(dg.ConfigurableResource):
    """How the k6 load test runs. An empty `target_url` means the bundled demo target."""

    target_url: str = ""
    auth_header: str = ""
    rate: int = 100
    duration: str = "30s"
    timeout_s: float = 0.0
    demo_latency_ms: float = 0.0
    demo_error_rate: float = 0.0

    def plan(self, archive_dir: str):
        from kgents_pipeline.loadtest.session import LoadTestPlan

        return LoadTestPlan(
            target_url=self.target_url or None,
            rate=self.rate,
            duration=self.duration,
            auth_header=self.auth_header or None,
            timeout_s=self.timeout_s or None,
            demo_latency_ms=self.demo_latency_ms,
            demo_error_rate=self.demo_error_rate,
            archive_root=archive_dir,
        )


def _env_number(name: str, default: float, kind: type[int] | type[float]) -> int | float:
    """Numeric fields read their variable here (an EnvVar resolves to a string at launch)."""
    raw = os.environ.get(name, "")
    if raw == "":
        return kind(default)
    try:
        return kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "history": HistoryResource(
                db_path=env_or("KGENTS_DB_PATH", "data/metrics.duckdb"),
                archive_dir=env_or("KGENTS_ARCHIVE_DIR", "data/k6"),
            ),
            "loadtest": LoadTestResource(
                target_url=env_or("KGENTS_TARGET_URL", ""),
                auth_header=env_or("KGENTS_AUTH_HEADER", ""),
                rate=_env_number("KGENTS_RATE", 100, int),
                duration=env_or("KGENTS_DURATION", "30s"),
                timeout_s=_env_number("KGENTS_K6_TIMEOUT_S", 0, float),
                demo_latency_ms=_env_number("KGENTS_DEMO_LATENCY_MS", 0, float),
                demo_error_rate=_env_number("KGENTS_DEMO_ERROR_RATE", 0, float),
            ),
        }
    )
