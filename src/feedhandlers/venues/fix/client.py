"""FIX connection details: where to connect, the session identities, what to subscribe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from feedhandlers.venues.fix import schema
from feedhandlers.venues.fix.session import FixSession, SessionConfig


@dataclass(frozen=True, slots=True)
class FixClient:
    host: str
    port: int
    symbols: Sequence[str]
    session: SessionConfig = field(default_factory=SessionConfig)
    venue: str = "fix"

    def endpoint(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def subscribe(self, session: FixSession, now_ns: int, request_id: str = "md-1") -> bytes:
        body = schema.market_data_request(request_id, list(self.symbols))
        return session.message(schema.MARKET_DATA_REQUEST, body, now_ns)

    def resubscribe(
        self, session: FixSession, symbols: Sequence[str], now_ns: int, request_id: str
    ) -> list[bytes]:
        """Unsubscribe and subscribe again: the venue answers with fresh snapshots (W)."""
        return [
            session.message(
                schema.MARKET_DATA_REQUEST,
                schema.market_data_request(request_id, list(symbols), subscribe=False),
                now_ns,
            ),
            session.message(
                schema.MARKET_DATA_REQUEST,
                schema.market_data_request(f"{request_id}.again", list(symbols)),
                now_ns,
            ),
        ]
