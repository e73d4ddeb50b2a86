"""One exception type per domain; each carries what a user needs to act on it.

The CLI turns any `KgentsError` into one line on stderr and exit 2; assets turn it into
`dg.Failure` with metadata.
"""


class KgentsError(Exception):
    """Base of every error a user can cause or fix (bad input, environment, faults)."""


class ConfigError(KgentsError):
    """An environment variable or setting holds a value the pipeline cannot use."""


class LoadTestError(KgentsError):
    """k6 could not run, or its run produced nothing usable."""


class HistoryError(KgentsError):
    """The DuckDB metrics history cannot be read or written, or a run directory is unusable."""


class PolicyError(KgentsError):
    """NetworkPolicy / intent input is malformed."""


class ManifestError(KgentsError):
    """Manifests fail to render, validate, or are refused by the kind allowlist."""


class ClusterError(KgentsError):
    """The Kubernetes API refused or failed a request."""


class VerdictError(KgentsError):
    """Verdict inputs or operator controls are invalid."""


class NotifyError(KgentsError):
    """A notification target is unusable (not an http(s) URL)."""
