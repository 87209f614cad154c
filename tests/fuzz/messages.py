"""Hypothesis strategies for protobuf messages with adversarial values, built from each
message's descriptor: every field of every type may be set, to the values that break code
(empty and huge strings, identifiers with the key separator, int64's ends, nanos out of range,
negative sizes, zero and negative times, enum numbers no version defines). Records are also
cut short and corrupted, as a broken producer or disk would leave them."""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

MessageT = TypeVar("MessageT", bound=Message)
INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)
NOW_NS = 1_763_800_000_000_000_000  # 2025-11-22: a plausible time, for fields to vary around

_strings = st.one_of(
    st.sampled_from(
        ["", "AAPL", "NASDAQ", "KRAKEN", "BTC-USD", "XBT/USD", "a|b", "|", "acct/1", "o-1",
         "S" * 65, "S" * 70_000, "\u00e9" * 40_000, "\x00", " AAPL ", "aapl", "2025-11-22"]
    ),
    st.text(max_size=16),
)  # fmt: skip
_int64 = st.one_of(
    st.sampled_from([0, 1, -1, *INT64, NOW_NS, -NOW_NS, NOW_NS + 10**15, 999_999_999]),
    st.integers(*INT64),
)
_int32 = st.one_of(
    st.sampled_from([0, 1, -1, *INT32, 999_999_999, 1_000_000_000, -999_999_999, -1_000_000_000]),
    st.integers(*INT32),
)
_uint64 = st.one_of(st.sampled_from([0, 1, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1))
_uint32 = st.one_of(st.sampled_from([0, 1, 2**32 - 1]), st.integers(0, 2**32 - 1))

_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: _strings,
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=64),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_INT64: _int64,
    FieldDescriptor.TYPE_SINT64: _int64,
    FieldDescriptor.TYPE_SFIXED64: _int64,
    FieldDescriptor.TYPE_INT32: _int32,
    FieldDescriptor.TYPE_SINT32: _int32,
    FieldDescriptor.TYPE_SFIXED32: _int32,
    FieldDescriptor.TYPE_UINT64: _uint64,
    FieldDescriptor.TYPE_FIXED64: _uint64,
    FieldDescriptor.TYPE_UINT32: _uint32,
    FieldDescriptor.TYPE_FIXED32: _uint32,
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32, allow_nan=True),
    # open enums: any int32, including numbers no version of the schema defines
    FieldDescriptor.TYPE_ENUM: st.one_of(st.integers(-3, 20), st.sampled_from(INT32)),
}


def _decimal() -> st.SearchStrategy[dict[str, int]]:
    """A Decimal's (units, nanos): mostly canonical, often not (nanos out of range or of the
    other sign, units at int64's ends)."""
    canonical = st.builds(
        lambda units, nanos: {"units": units, "nanos": nanos if units >= 0 else -nanos},
        st.integers(0, 10**12),
        st.integers(0, 999_999_999),
    )
    return st.one_of(canonical, st.fixed_dictionaries({"units": _int64, "nanos": _int32}))


@st.composite
def _message(draw: st.DrawFn, descriptor: Descriptor, depth: int) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth > 2:
                continue
            inner = field.message_type
            element: st.SearchStrategy[Any] = (
                _decimal() if inner.name == "Decimal" else _message(inner, depth + 1)
            )
        else:
            element = _SCALARS[field.type]
        if field.is_repeated:
            values[field.name] = draw(st.lists(element, max_size=3))
        else:
            values[field.name] = draw(element)
    return values


def adversarial(message_type: type[MessageT]) -> st.SearchStrategy[MessageT]:
    """Messages of ``message_type`` with any subset of fields set to adversarial values."""
    return _message(message_type.DESCRIPTOR, 0).map(lambda fields: message_type(**fields))


def record_bytes(message_type: type[Message]) -> st.SearchStrategy[bytes]:
    """What a Kafka record of ``message_type`` may hold: adversarial messages, the same cut
    short or with bytes changed, and random bytes."""
    serialized = adversarial(message_type).map(lambda message: message.SerializeToString())

    @st.composite
    def damaged(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(serialized))
        if data and draw(st.booleans()):
            del data[draw(st.integers(0, len(data) - 1)) :]  # truncated
        for _ in range(draw(st.integers(0, 3))):
            if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)

    return st.one_of(serialized, damaged(), st.binary(max_size=200))
