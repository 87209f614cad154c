"""Deterministic row identity for ticks, so a replayed tick overwrites its own row.

Cassandra's ``tick_data`` clusters on a timeuuid. ``now()`` would give every
replay a new row; instead the timeuuid is built from the tick itself: its time
field is the venue event time (100 ns resolution, as RFC 9562 version 1), and
its 14-bit clock sequence and 48-bit node come from a hash of a stable
discriminator (for example feed_handler_id and feed_sequence, or the tick's
bytes). Same tick in, same timeuuid out; ordering by event time is kept.
"""

from __future__ import annotations

import hashlib
import uuid

# 100 ns intervals between the Gregorian epoch (1582-10-15) and the Unix epoch
_GREGORIAN_OFFSET_100NS = 0x01B21DD213814000


def tick_timeuuid(event_time_ns: int, discriminator: bytes) -> uuid.UUID:
    """A version-1 UUID: timestamp ``event_time_ns``, low bits a hash of ``discriminator``."""
    if event_time_ns < 0:
        raise ValueError(f"event time before 1970: {event_time_ns}")
    timestamp = event_time_ns // 100 + _GREGORIAN_OFFSET_100NS
    digest = hashlib.blake2b(discriminator, digest_size=8).digest()
    low = int.from_bytes(digest, "big")
    clock_seq = (low >> 48) & 0x3FFF
    node = low & 0xFFFFFFFFFFFF
    return uuid.UUID(
        fields=(
            timestamp & 0xFFFFFFFF,
            (timestamp >> 32) & 0xFFFF,
            ((timestamp >> 48) & 0x0FFF) | 0x1000,  # version 1
            ((clock_seq >> 8) & 0x3F) | 0x80,  # RFC 4122 variant
            clock_seq & 0xFF,
            node,
        )
    )


def timeuuid_time_ns(value: uuid.UUID) -> int:
    """The Unix-nanosecond time carried by a version-1 UUID (100 ns resolution)."""
    return (value.time - _GREGORIAN_OFFSET_100NS) * 100
