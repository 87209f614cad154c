"""Gateway errors.

GatewayError
 +-- ConfigError             settings that cannot work together (startup fails, one log line)
 +-- QuoteStoreError         (retriable) Cassandra did not answer a fallback read in time
 +-- FeedError               (retriable) the Kafka feed cannot be read (topic missing, broker down)
 +-- JournalError            the trading log cannot be written or read: trading stops until a
                             restart rebuilds the orders from the log

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
