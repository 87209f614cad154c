"""Capped exponential backoff with jitter, as pure math: the caller supplies randomness."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    base_s: float = 0.1
    cap_s: float = 10.0
    multiplier: float = 2.0
    # fraction of the delay that is randomized ("equal jitter" at 0.5)
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s < self.base_s or self.multiplier < 1:
            raise ValueError(f"invalid backoff policy: {self}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1]: {self.jitter}")


def backoff_delay(attempt: int, policy: BackoffPolicy, random_unit: float) -> float:
    """Seconds to wait before retry ``attempt`` (1-based); ``random_unit`` is uniform in [0, 1).

    The delay grows ``base * multiplier**(attempt-1)`` up to ``cap``; a ``jitter``
    share of it is randomized so that many clients do not retry in lockstep.
    """
    if attempt < 1:
        raise ValueError(f"attempt is 1-based: {attempt}")
    exponent = min(attempt - 1, 64)  # beyond this the cap has long been reached
    ceiling = min(policy.cap_s, policy.base_s * policy.multiplier**exponent)
    fixed = ceiling * (1 - policy.jitter)
    return fixed + ceiling * policy.jitter * random_unit
