"""Which write failures no retry fixes (the row goes to the DLQ) and which a retry may fix
(retried, never dead-lettered); the limits checked at decode. The same against the real
servers: tests/integration/test_tickwriter_poison.py."""

from __future__ import annotations

import struct

import pytest
from cassandra import InvalidRequest, OperationTimedOut, Unavailable, WriteTimeout
from cassandra.cluster import NoHostAvailable

from tests.support import price_update
from tickwriter.adapters.repository import refusal_kind
from tickwriter.decode import MAX_TICK_RECORD_BYTES, decode_tick
from tickwriter.errors import RecordRejected


def _struct_error() -> struct.error:
    try:
        struct.pack(">H", 70_000)
    except struct.error as exc:
        return exc
    raise AssertionError("struct.pack did not fail")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_struct_error(), "serialization"),  # the driver packing a 70,000-byte key part
        (OverflowError("int too large to convert"), "serialization"),
        (TypeError("Received an argument of invalid type"), "serialization"),
        (ValueError("bad value"), "serialization"),
        (InvalidRequest("Key length of 65546 is longer than maximum of 65535"), "invalid_request"),
        (InvalidRequest("Batch too large"), "invalid_request"),
        # the schema is an operator's problem, fixed by `mdgw schema apply`: retried
        (InvalidRequest("unconfigured table tick_data"), None),
        (InvalidRequest("Keyspace 'market' does not exist"), None),
        (OperationTimedOut("timed out"), None),
        (WriteTimeout("write timeout", write_type=0), None),
        (Unavailable("not enough replicas"), None),
        (NoHostAvailable("no host", {}), None),
    ],
)
def test_only_failures_of_the_rows_themselves_are_refusals(
    error: BaseException, kind: str | None
) -> None:
    assert refusal_kind(error) == kind


def test_the_record_limit_is_checked_before_the_tick_is_parsed() -> None:
    tick = price_update(exchange="NASDAQ", symbol="S" * 70_000, last_nanos=1, event_time_ns=1)
    payload = tick.SerializeToString()
    assert len(payload) > MAX_TICK_RECORD_BYTES
    with pytest.raises(RecordRejected) as caught:
        decode_tick(payload)
    assert caught.value.reason == "oversized_record"
    assert "S" * 100 not in str(caught.value)


@pytest.mark.parametrize(
    ("field", "length", "limit"),
    [
        ("symbol", 65, 64),
        ("exchange", 65, 64),
        ("venue_symbol", 65, 64),
        ("feed_handler_id", 257, 256),
    ],
)
def test_an_identifier_over_its_limit_is_invalid_tick_oversized_field(
    field: str, length: int, limit: int
) -> None:
    fields: dict[str, object] = {"exchange": "NASDAQ", "symbol": "AAPL", "last_nanos": 1}
    fields |= {"event_time_ns": 1, field: "x" * length}
    with pytest.raises(RecordRejected) as caught:
        decode_tick(price_update(**fields).SerializeToString())
    assert caught.value.reason == "invalid_tick:oversized_field"
    assert caught.value.detail == f"{field} is {length} characters; at most {limit}"
