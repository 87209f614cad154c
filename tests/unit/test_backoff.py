import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketcore.backoff import BackoffPolicy, backoff_delay


def test_backoff_grows_then_caps() -> None:
    policy = BackoffPolicy(base_s=0.1, cap_s=1.0, jitter=0.0)
    delays = [backoff_delay(attempt, policy, 0.5) for attempt in range(1, 8)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


@given(st.integers(min_value=1, max_value=10_000), st.floats(min_value=0, max_value=0.999999))
def test_backoff_stays_within_jitter_band(attempt: int, random_unit: float) -> None:
    policy = BackoffPolicy(base_s=0.05, cap_s=5.0, jitter=0.5)
    delay = backoff_delay(attempt, policy, random_unit)
    ceiling = min(5.0, 0.05 * 2 ** min(attempt - 1, 64))
    assert ceiling * 0.5 <= delay <= ceiling


def test_backoff_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="1-based"):
        backoff_delay(0, BackoffPolicy(), 0.0)
    with pytest.raises(ValueError, match="invalid"):
        BackoffPolicy(base_s=2.0, cap_s=1.0)
