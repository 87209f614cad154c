"""Watchdogs: is a service still making progress? Decided from counts and times passed in.

``DeliveryWatchdog`` watches a Kafka producer from the outside. librdkafka promises a delivery
report (an acknowledgement or an error) for every record within ``delivery.timeout.ms`` of
producing it; so while records wait:

- no acknowledgement for ``slow_after_s`` while records wait, or only errors reported (no
  acknowledgement) for that long: *not delivering* (Kafka down, or refusing every record):
  the service is not ready, and recovers by itself at the next acknowledgement;
- no report at all, not even an error, for ``stall_after_s`` (the delivery timeout plus a
  margin): the producer broke its promise and is *stalled*. That is sticky: only a new
  producer (a restart) is trusted again.

``overdue`` is the tick writer's: unable to write for longer than any outage it should ride
out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeliveryVerdict:
    delivering: bool
    stalled: bool
    reason: str  # why not delivering, or why stalled; empty when delivering


_DELIVERING = DeliveryVerdict(delivering=True, stalled=False, reason="")


class DeliveryWatchdog:
    def __init__(self, slow_after_s: float, stall_after_s: float) -> None:
        if not 0 < slow_after_s <= stall_after_s:
            raise ValueError(
                f"need 0 < slow_after_s <= stall_after_s: {slow_after_s}, {stall_after_s}"
            )
        self.slow_after_s = slow_after_s
        self.stall_after_s = stall_after_s
        self._reports = 0
        self._acks = 0
        self._report_at: float | None = None  # last report, or since when something waits
        self._ack_at: float | None = None
        self._failing_since: float | None = None  # errors reported, no acknowledgement since
        self._stalled_reason = ""

    def observe(self, now_s: float, waiting: int, reports: int, acks: int) -> DeliveryVerdict:
        """``waiting``: records produced, not yet reported; ``reports`` and ``acks``: delivery
        reports and acknowledgements so far (counters that only grow)."""
        if self._report_at is None or self._ack_at is None or not waiting:
            # nothing owed (or first look): nothing is late yet
            self._report_at = self._ack_at = now_s
        else:
            if reports != self._reports:
                self._report_at = now_s
            if acks != self._acks:
                self._ack_at = now_s
        if acks != self._acks:
            self._failing_since = None
        elif reports != self._reports and self._failing_since is None:
            self._failing_since = now_s
        self._reports, self._acks = reports, acks
        if self._stalled_reason:
            return DeliveryVerdict(delivering=False, stalled=True, reason=self._stalled_reason)
        silent_s = now_s - self._report_at
        if waiting and silent_s >= self.stall_after_s:
            self._stalled_reason = (
                f"producer stalled: no delivery report for {silent_s:.0f} s "
                f"with {waiting} records waiting"
            )
            return DeliveryVerdict(delivering=False, stalled=True, reason=self._stalled_reason)
        unacked_s = now_s - self._ack_at
        if waiting and unacked_s >= self.slow_after_s:
            return DeliveryVerdict(
                delivering=False,
                stalled=False,
                # stable while it lasts (readiness logs each change of reason)
                reason=f"records waiting, none acknowledged for over {self.slow_after_s:g} s",
            )
        if self._failing_since is not None and now_s - self._failing_since >= self.slow_after_s:
            reason = f"only delivery errors, no acknowledgement, for over {self.slow_after_s:g} s"
            return DeliveryVerdict(delivering=False, stalled=False, reason=reason)
        return _DELIVERING


def overdue(since_s: float | None, now_s: float, limit_s: float) -> bool:
    """True once a condition that began at ``since_s`` (None: not happening) has lasted
    ``limit_s`` (0: never overdue)."""
    return since_s is not None and limit_s > 0 and now_s - since_s >= limit_s
