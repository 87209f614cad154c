import uuid

from hypothesis import given
from hypothesis import strategies as st

from marketcore.tick_identity import tick_timeuuid, timeuuid_time_ns

_TIMES = st.integers(min_value=0, max_value=4_000_000_000 * 1_000_000_000)


@given(_TIMES, st.binary(max_size=64))
def test_same_tick_gives_same_timeuuid(event_time_ns: int, discriminator: bytes) -> None:
    first = tick_timeuuid(event_time_ns, discriminator)
    assert first == tick_timeuuid(event_time_ns, discriminator)
    assert first.version == 1
    assert first.variant == uuid.RFC_4122


@given(_TIMES, st.binary(max_size=64))
def test_timeuuid_carries_event_time_to_100ns(event_time_ns: int, discriminator: bytes) -> None:
    assert (
        timeuuid_time_ns(tick_timeuuid(event_time_ns, discriminator)) == event_time_ns // 100 * 100
    )


def test_different_discriminators_give_different_rows_at_the_same_time() -> None:
    ids = {tick_timeuuid(1_700_000_000_000_000_000, f"fh-1:{n}".encode()) for n in range(10_000)}
    assert len(ids) == 10_000
