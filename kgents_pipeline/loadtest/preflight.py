"""Health preflight: one GET of `/health/saas` before any load is sent."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from kgents_pipeline import settings
from kgents_pipeline.errors import LoadTestError

HEALTHY = ("healthy", "ok")


@dataclass(frozen=True)
class HealthReport:
    url: str
    status_code: int
    latency_ms: float
    status: str
    components: dict[str, Any] = field(default_factory=dict)
    demo: bool = False  # the answer says it comes from the bundled demo target


def check_health(
    base_url: str, *, auth_header: str | None = None, timeout_s: float = 5.0
) -> HealthReport:
    """GET `<base_url>/health/saas`; raise `LoadTestError` unless it answers 200 and healthy."""
    url = base_url.rstrip("/") + "/health/saas"
    if auth_header:
        settings.validate_header_value(auth_header, settings.AUTH_HEADER.env)
    headers = {"Authorization": auth_header} if auth_header else {}
    started = time.perf_counter()
    try:
        # trust_env=False: a proxy variable must not reroute a loopback health check.
        with httpx.Client(timeout=timeout_s, trust_env=False) as client:
            response = client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise LoadTestError(f"health preflight: {url} unreachable: {exc}") from exc
    except (ValueError, TypeError):  # a header httpx refuses: its message would quote it
        raise LoadTestError(f"health preflight: {url}: the request could not be built") from None
    latency_ms = (time.perf_counter() - started) * 1000.0
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise LoadTestError(
            f"health preflight: {url} answered {response.status_code} without a JSON object"
        )
    status = str(body.get("status", ""))
    raw = body.get("components")
    components: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if response.status_code != 200 or status not in HEALTHY:
        down = sorted(k for k, v in components.items() if v not in ("up", *HEALTHY))
        detail = f"; components down: {', '.join(down)}" if down else ""
        raise LoadTestError(
            f"health preflight: {url} answered {response.status_code} status={status!r}{detail}"
        )
    return HealthReport(
        url, response.status_code, latency_ms, status, components, demo=body.get("demo") is True
    )
