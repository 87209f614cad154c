"""Event-loop lag: how late a timer fires on a service's asyncio loop. A loop blocked by CPU
work or a blocking call delays every stream, RPC and health answer of that process; this is
the number that shows it (each service's ``<service>_event_loop_lag_seconds``)."""

from __future__ import annotations

import asyncio
from typing import Protocol

LAG_INTERVAL_S = 0.25


class Observer(Protocol):
    def observe(self, amount: float) -> None: ...


async def watch_loop_lag(histogram: Observer, interval_s: float = LAG_INTERVAL_S) -> None:
    """Forever: sleep ``interval_s`` and observe how much later than asked the loop woke."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        histogram.observe(max(0.0, loop.time() - asked))
