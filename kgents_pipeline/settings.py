"""Every default and environment variable of the pipeline, in one place.

The command line's options and the Dagster resources are both built from these `Setting`s, so
the same variable means the same thing everywhere, and a default is written once. Paths are
relative to the working directory (the repository, for `make run` and `make dev`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kgents_pipeline.errors import ConfigError

LAUNCH_RATE_RPS = 100  # the seed's launch target: 100 req/s sustained
P95_LIMIT_MS = 500.0  # the seed's SLO: p95 of successful requests below 500 ms
# How long a load test waits for the history's lock to ingest the run it just archived (another
# writer's unit of work is short); past it the run stays archived and the command says how to
# ingest it.
INGEST_LOCK_WAIT_S = 30.0


@dataclass(frozen=True)
class Setting:
    """One configuration value: its environment variable, default and meaning."""

    env: str
    default: str
    help: str
    group: str = "pipeline"
    secret: bool = False

    def raw(self) -> str:
        """The variable's value, or the default when it is unset or empty."""
        return os.environ.get(self.env, "") or self.default

    def is_set(self) -> bool:
        return os.environ.get(self.env, "") != ""

    def integer(self) -> int:
        raw = self.raw()
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{self.env} must be an integer, got {self._shown(raw)}") from None

    def number(self) -> float:
        raw = self.raw()
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{self.env} must be a number, got {self._shown(raw)}") from None

    def _shown(self, raw: str) -> str:
        return "a value that is not shown (it is a secret)" if self.secret else repr(raw)

    def header(self) -> str:
        """The variable as an HTTP header value, validated here where it is read (a secret's
        value is never part of the error)."""
        return validate_header_value(self.raw(), self.env)

    def flag(self) -> bool:
        raw = self.raw().strip().lower()
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("", "0", "false", "no", "off"):
            return False
        raise ConfigError(f"{self.env} must be true or false, got {self._shown(raw)}")


def validate_header_value(value: str, what: str) -> str:
    """Refuse a header value an HTTP client would refuse, in one line that never shows it.

    A trailing newline (a token read with `$(cat file)`) or any control character would
    otherwise surface as the client's own error, which echoes the whole value."""
    for i, ch in enumerate(value):
        code = ord(ch)
        if ch in "\r\n" or (code < 0x20 and ch != "\t") or code == 0x7F:
            name = {"\n": "a newline", "\r": "a carriage return"}.get(
                ch, f"control character U+{code:04X}"
            )
            raise ConfigError(
                f"{what} is not a valid HTTP header value: {name} at position {i + 1} of "
                f"{len(value)} (the value is not shown)"
            )
        if code > 0xFF:
            raise ConfigError(
                f"{what} is not a valid HTTP header value: a non-Latin-1 character at position "
                f"{i + 1} of {len(value)} (the value is not shown)"
            )
    if value != value.strip(" \t"):
        raise ConfigError(
            f"{what} is not a valid HTTP header value: it starts or ends with whitespace "
            "(the value is not shown)"
        )
    return value


# History and archive
DB_PATH = Setting(
    "KGENTS_DB_PATH",
    "data/metrics.duckdb",
    "metrics history: a DuckDB file, or ducklake:postgres:<conninfo> (shared; no password in it)",
)
DUCKLAKE_DATA_PATH = Setting(
    "KGENTS_DUCKLAKE_DATA_PATH",
    "",
    "where a DuckLake history keeps its Parquet files (needed to create one; a shared path)",
)
ARCHIVE_DIR = Setting("KGENTS_ARCHIVE_DIR", "data/k6", "run archive")
CHECKLIST = Setting(
    "KGENTS_CHECKLIST", "manifests/launch/checklist.yaml", "launch checklist", group="verdict"
)
REPORTS_DIR = Setting(
    "KGENTS_REPORTS_DIR",
    "",
    "HTML reports written by launch_readiness (unset: reports/ beside the history file)",
    group="verdict",
)

# Notifications and links
NOTIFY_WEBHOOK_URL = Setting(
    "KGENTS_NOTIFY_WEBHOOK_URL",
    "",
    "webhook (Slack-compatible JSON) told when the verdict's state changes; unset: no post",
    group="notify",
    secret=True,  # a Slack webhook URL is its own credential
)
UI_URL = Setting(
    "KGENTS_UI_URL",
    "http://127.0.0.1:3000",
    "base URL of the Dagster UI, for the run links in notifications",
    group="notify",
)

# Load test
TARGET_URL = Setting(
    "KGENTS_TARGET_URL", "", "base URL of the service under test (unset: the demo target)", "load"
)
AUTH_HEADER = Setting(
    "KGENTS_AUTH_HEADER",
    "",
    "Authorization header value for the target; reaches k6 by environment only, never logged",
    "load",
    secret=True,
)
RATE = Setting("KGENTS_RATE", str(LAUNCH_RATE_RPS), "requests per second", "load")
DURATION = Setting("KGENTS_DURATION", "30s", "k6 duration", "load")
K6_TIMEOUT_S = Setting(
    "KGENTS_K6_TIMEOUT_S", "0", "stop k6 after this long (0: duration + 60 s)", "load"
)
RUNNERS = Setting(
    "KGENTS_RUNNERS",
    "1",
    "k6 runners the load is spread over (execution segments; merged from the union of points)",
    "load",
)
K6_BIN = Setting("KGENTS_K6_BIN", "", "k6 binary (unset: the one the k6 package ships)", "load")
DEMO_LATENCY_MS = Setting(
    "KGENTS_DEMO_LATENCY_MS", "0", "demo target: latency added to every answer", "load"
)
DEMO_ERROR_RATE = Setting(
    "KGENTS_DEMO_ERROR_RATE", "0", "demo target: fraction of 503 answers", "load"
)
DEMO_WORKERS = Setting(
    "KGENTS_DEMO_WORKERS",
    "0",
    "demo target: requests served at once (0: no capacity limit); with KGENTS_DEMO_SERVICE_MS "
    "it sustains workers * 1000 / service_ms req/s",
    "load",
)
DEMO_SERVICE_MS = Setting(
    "KGENTS_DEMO_SERVICE_MS", "0", "demo target: time each worker takes per request", "load"
)

# Capacity search: the arrival rate stepped up until a step fails (sized for a 2-core machine:
# k6 and the demo target together saturate it somewhere between 800 and 1,100 req/s).
CAPACITY_START = Setting("KGENTS_CAPACITY_START", "50", "capacity search: first rate", "capacity")
CAPACITY_FACTOR = Setting(
    "KGENTS_CAPACITY_FACTOR", "1.5", "capacity search: each step's rate over the last", "capacity"
)
CAPACITY_MAX = Setting(
    "KGENTS_CAPACITY_MAX", "1000", "capacity search: highest rate tried", "capacity"
)
CAPACITY_STEP = Setting(
    "KGENTS_CAPACITY_STEP", "10s", "capacity search: duration of each step", "capacity"
)
HEADROOM_FACTOR = Setting(
    "KGENTS_HEADROOM_FACTOR",
    "2",
    "capacity.headroom: the knee must be at least this many times the launch rate",
    "verdict",
)

# Cluster
CLUSTER_MODE = Setting(
    "KGENTS_CLUSTER_MODE", "offline", "offline, kubeconfig or in-cluster", "cluster"
)
KUBECONFIG = Setting("KGENTS_KUBECONFIG", "", "kubeconfig file (kubeconfig mode)", "cluster")
KUBE_CONTEXT = Setting(
    "KGENTS_KUBE_CONTEXT", "", "context name; the current context is never used", "cluster"
)
CONTEXT_ALLOWLIST = Setting(
    "KGENTS_CONTEXT_ALLOWLIST", "", "comma-separated contexts the pipeline may touch", "cluster"
)
MANIFESTS_DIR = Setting("KGENTS_MANIFESTS_DIR", "manifests", "kustomize tree", "cluster")
INTENT = Setting(
    "KGENTS_INTENT", "manifests/launch/intent.yaml", "launch intent for the policy check", "cluster"
)
KUBE_VERSION = Setting("KGENTS_KUBE_VERSION", "1.37", "schema version for validation", "cluster")
ALLOWED_KINDS = Setting(
    "KGENTS_ALLOWED_KINDS",
    "Namespace,NetworkPolicy,PodDisruptionBudget",
    "kind allowlist",
    "cluster",
)
FORCE_CONFLICTS = Setting(
    "KGENTS_FORCE_CONFLICTS", "false", "take fields owned by other field managers", "cluster"
)
KUBE_TIMEOUT_S = Setting("KGENTS_KUBE_TIMEOUT_S", "10", "seconds per API request", "cluster")
SERVICE_ACCOUNT_DIR = Setting(
    "KGENTS_SERVICE_ACCOUNT_DIR",
    "/var/run/secrets/kubernetes.io/serviceaccount",
    "in-cluster mode: the directory holding the ServiceAccount's token and ca.crt",
    "cluster",
)

# Code references: each asset in the UI links to the function that computes it.
GIT_URL = Setting(
    "KGENTS_GIT_URL",
    "",
    "repository web URL for the assets' code links (unset: links to the local files)",
    "ui",
)
GIT_BRANCH = Setting("KGENTS_GIT_BRANCH", "main", "branch the code links point at", "ui")

DEBUG = Setting("KGENTS_DEBUG", "", "show the traceback of an internal error", "cli")

SETTINGS: tuple[Setting, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Setting))


def split_list(value: str) -> tuple[str, ...]:
    """A comma-separated setting as its items (blanks dropped)."""
    return tuple(item.strip() for item in value.split(",") if item.strip())
