"""Timestamps read back from the history, as aware UTC datetimes."""

from __future__ import annotations

import datetime as dt
from typing import Any, overload

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@overload
def utc(value: None) -> None: ...
@overload
def utc(value: dt.datetime | str) -> dt.datetime: ...
def utc(value: Any) -> dt.datetime | None:
    """A TIMESTAMPTZ (or an ISO-8601 string) as an aware UTC datetime; naive means UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, dt.datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def from_epoch_us(us: int | None) -> dt.datetime | None:
    """`epoch_us(ts)` back to a datetime: cheaper than DuckDB's own TIMESTAMPTZ conversion."""
    return None if us is None else _EPOCH + dt.timedelta(microseconds=us)
