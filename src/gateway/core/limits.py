"""Every size limit of a gateway request, in one place. Pure.

Each RPC's strings and repeated fields are checked against these before anything else looks
at the request: before it is logged, decided, recorded on Kafka or stored. A request past a
limit is malformed (INVALID_ARGUMENT), and the answer names the field and the limit and shows
at most a short prefix of the value, never the value itself (a 600 KB symbol once came back
to its sender, and went to the trading log, several times over).

Why these numbers: identifiers (symbols, exchange codes, order and account ids) are at most
64 characters everywhere in the system, so 64 is the one bound for all of them; with every
string of an order bounded, no order event can come near Kafka's record size limit (1 MB), so
refusing a request never needs a record the log would refuse.

- ``PriceSubscription.symbols``: 1 to ``GATEWAY_MAX_SYMBOLS_PER_STREAM`` (1,000) symbols
- symbol and exchange (subscriptions, quotes, orders): ``MAX_IDENTIFIER_LENGTH`` (64)
- ``order_id`` (orders, cancels): ``MAX_ORDER_ID_LENGTH`` (64)
- ``account_id`` (orders, cancels): ``MAX_ACCOUNT_ID_LENGTH`` (64)
- ``OrderCancelRequest.reason``: ``MAX_CANCEL_REASON_LENGTH`` (256)
- orders in one SubmitOrders call: ``GATEWAY_MAX_BATCH_ORDERS`` (10,000)
- a request message: ``GATEWAY_MAX_RECEIVE_MESSAGE_BYTES`` (1 MiB, gRPC's own check)
- ``x-request-id`` metadata: logged cut to ``MAX_REQUEST_ID_LENGTH`` (128), never refused

Strings must also be printable (no control characters: they end up in logs and terminals).
"""

from __future__ import annotations

MAX_IDENTIFIER_LENGTH = 64
MAX_ORDER_ID_LENGTH = 64
MAX_ACCOUNT_ID_LENGTH = 64
MAX_CANCEL_REASON_LENGTH = 256
MAX_REQUEST_ID_LENGTH = 128  # x-request-id metadata: logged cut to this, never refused
DEFAULT_MAX_SYMBOLS_PER_STREAM = 1_000
DEFAULT_MAX_BATCH_ORDERS = 10_000
# How much of a refused value an answer shows: enough to recognise it, never all of it.
PREVIEW_LENGTH = 24


def preview(value: str, length: int = PREVIEW_LENGTH) -> str:
    """``value`` quoted, cut to ``length`` characters (``'AAAA...'`` with the total length when
    cut): what an error message may show of a value it refuses."""
    if len(value) <= length:
        return repr(value)
    return f"{value[:length]!r}... ({len(value)} characters)"


def text_problem(
    field: str, value: str, max_length: int, *, required: bool = False, printable: bool = True
) -> str | None:
    """Why ``value`` cannot be ``field`` (too long, empty when required, control characters),
    without echoing more than a preview of it; None when it is fine. The length is checked
    first, so nothing else ever scans an oversized value."""
    if len(value) > max_length:
        return f"{field} is {len(value)} characters; at most {max_length}"
    if required and not value:
        return f"{field} is empty"
    if printable and not value.isprintable():
        return f"{field} {preview(value)} has control characters"
    return None
