"""Gateway errors.

GatewayError
 +-- ConfigError             settings that cannot work together (startup fails, one log line)
 +-- QuoteStoreError         (retriable) Cassandra did not answer a fallback read in time
 +-- FeedError               (retriable) the Kafka feed cannot be read (topic missing, broker down)
 +-- JournalError            the trading log cannot be written or read: trading stops until a
 |                           restart rebuilds the orders from the log
 +-- RecordRefusedError      Kafka refused one append's record for good (too large for the
 |                           topic, invalid): that submission is refused, the log carries on
 +-- OrderOutcomeUnknown     (retriable) a client's SubmitOrders got no answer after every
                             attempt: the orders may or may not be placed; sending them again
                             with the same order ids is safe (and says which)

Expected outcomes of requests are not errors: a malformed request is ``core.subscriptions.
Invalid``, an unknown symbol is ``None`` from a lookup; the service maps them to status codes.
"""

from __future__ import annotations

from typing import ClassVar


class GatewayError(Exception):
    retriable: ClassVar[bool] = False


class ConfigError(GatewayError):
    pass


class QuoteStoreError(GatewayError):
    retriable: ClassVar[bool] = True

    def __init__(self, operation: str, detail: str) -> None:
        super().__init__(f"quote store {operation} failed: {detail}")
        self.operation = operation


class FeedError(GatewayError):
    retriable: ClassVar[bool] = True

    def __init__(self, topic: str, detail: str) -> None:
        super().__init__(f"feed {topic}: {detail}")
        self.topic = topic


class JournalError(GatewayError):
    pass


class RecordRefusedError(GatewayError):
    """One append of the trading log was refused by Kafka for a reason no retry fixes (its
    record is larger than the topic takes, or invalid); nothing of it was written, and every
    other append is written as usual."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"the trading log refused the record: {detail}")
        self.detail = detail


class OrderOutcomeUnknown(GatewayError):
    retriable: ClassVar[bool] = True

    def __init__(self, order_ids: list[str], code: str, detail: str, attempts: int) -> None:
        shown = ", ".join(order_ids[:5]) + (
            f" and {len(order_ids) - 5} more" if len(order_ids) > 5 else ""
        )
        super().__init__(
            f"no answer about order(s) {shown} after {attempts} attempt(s) ({code}: {detail}); "
            "they may have been placed: send them again with the same order ids to learn their "
            "state (the gateway places an order id once)"
        )
        self.order_ids = order_ids
        self.code = code
        self.detail = detail
        self.attempts = attempts
