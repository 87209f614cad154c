"""Where accepted orders execute: the ``Venue`` port and what a venue reports back. Pure.

The order manager keeps the orders' state; a venue only says what happened. The simulated
venue answers at once (its reports are the return values). A connection to a real venue (FIX
order entry, say) would return nothing from ``place``/``cancel`` and hand the reports to
``OrderManager.on_venue_reports`` when they arrive; the order manager handles both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from marketcore.instruments import InstrumentKey
from marketcore.trading.model import Order, OrderRef, OrderStatus, Touch

# Reports name the order by its ``OrderRef`` (account, order id): order ids are per account.


@dataclass(frozen=True, slots=True)
class Filled:
    ref: OrderRef
    price_nanos: int
    quantity_nanos: int


@dataclass(frozen=True, slots=True)
class StopTriggered:
    ref: OrderRef


@dataclass(frozen=True, slots=True)
class Ended:
    """The venue ended the order's remainder (IOC remainder, end of day)."""

    ref: OrderRef
    status: OrderStatus  # CANCELLED or EXPIRED
    text: str


@dataclass(frozen=True, slots=True)
class CancelRefused:
    ref: OrderRef
    text: str


VenueReport = Filled | StopTriggered | Ended | CancelRefused


class Venue(Protocol):
    name: str  # ExecutionReport.venue

    def place(self, order: Order, lot_nanos: int) -> list[VenueReport]:
        """Work a newly accepted order (its ``key`` is set)."""
        ...

    def cancel(self, ref: OrderRef) -> list[VenueReport]:
        """Cancel what remains: ``Ended(CANCELLED)``, or ``CancelRefused`` when it is too late."""
        ...

    def expire(self, ref: OrderRef, text: str) -> list[VenueReport]:
        """End a DAY order at the end of its trading day: ``Ended(EXPIRED)``."""
        ...

    def on_touch(self, key: InstrumentKey, touch: Touch) -> list[VenueReport]:
        """A new quote or trade for ``key``: whatever it makes execute or trigger."""
        ...

    def restore(self, order: Order, lot_nanos: int) -> None:
        """Take back a working order after a restart (no reports: nothing new happened)."""
        ...
