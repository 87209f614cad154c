"""Reading the ``--from`` of ``mdgw replay``: an ISO-8601 time or a span back from now. Pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_SPAN = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_replay_time(text: str, now: datetime) -> datetime:
    """``2026-11-22T14:30:00Z``, ``2026-11-22 14:30`` (UTC without an offset), or a span
    back from ``now``: ``15m``, ``2h``, ``1d``."""
    text = text.strip()
    span = _SPAN.match(text)
    if span:
        return now - timedelta(**{_UNITS[span.group(2)]: int(span.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not a time or a span like 15m, 2h, 1d: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment > now:
        raise ValueError(f"{text!r} is in the future")
    return moment
