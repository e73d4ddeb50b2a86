"""POST a JSON message to a webhook: retried with backoff on what may pass (connection errors,
timeouts, 429, 5xx), never on what will not (other 4xx). Never raises for a failed delivery:
the caller records and logs what happened, and the verdict it reports on is untouched."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from kgents_pipeline.errors import NotifyError


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    status_code: int | None  # of the last answer; None when none came
    error: str | None  # why the last attempt failed; None when delivered
    target: str  # scheme://host[:port]: the rest of a webhook URL is a credential


def redacted(url: str) -> str:
    """The part of a webhook URL that may be logged and stored."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotifyError("the notification webhook must be an http(s) URL")
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def post_json(
    url: str,
    body: dict[str, Any],
    *,
    attempts: int = 3,
    timeout_s: float = 5.0,
    backoff_s: float = 1.0,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST `body` to `url`, up to `attempts` times, waiting `backoff_s`, 2x, 4x... between
    them. Each attempt is bounded by `timeout_s` (connect, write, read), so a receiver that
    hangs costs at most attempts x timeout_s plus the backoff."""
    target = redacted(url)
    status: int | None = None
    error: str | None = None
    with httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False) as client:
        for attempt in range(1, attempts + 1):
            try:
                response = client.post(url, json=body)
            except httpx.TimeoutException:
                status, error = None, f"no answer within {timeout_s:g} s"
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: {str(exc)[:200] or 'failed'}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return Delivery(True, attempt, status, None, target)
                error = f"HTTP {status}: {response.text[:200]}"
                if not _retryable(status):
                    log(f"notification to {target} refused ({error}): not retried")
                    return Delivery(False, attempt, status, error, target)
            if attempt < attempts:
                wait = backoff_s * 2 ** (attempt - 1)
                log(f"notification to {target}, attempt {attempt}: {error}; retrying in {wait:g} s")
                sleep(wait)
    log(f"notification to {target} failed after {attempts} attempt(s): {error}")
    return Delivery(False, attempts, status, error, target)
