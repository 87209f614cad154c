"""The delivery watchdog and ``overdue``, on an injected clock (seconds passed in).

librdkafka's promise: every produced record gets a delivery report (acknowledged, or an
error such as a timeout) within ``delivery.timeout.ms``. Only breaking that promise is a
stall; an outage (errors, or no acknowledgement yet) is "not delivering"."""

from __future__ import annotations

import pytest

from marketcore.watchdog import DeliveryWatchdog, overdue

SLOW_S = 10.0
STALL_S = 150.0  # delivery timeout 120 s + 30 s


def _watchdog() -> DeliveryWatchdog:
    return DeliveryWatchdog(slow_after_s=SLOW_S, stall_after_s=STALL_S)


def test_acknowledgements_flowing_is_delivering() -> None:
    watchdog = _watchdog()
    for second in range(0, 1000, 5):
        verdict = watchdog.observe(float(second), waiting=50, reports=second, acks=second)
        assert verdict.delivering
        assert not verdict.stalled
        assert verdict.reason == ""


def test_nothing_waiting_is_never_late_however_long_it_lasts() -> None:
    watchdog = _watchdog()
    watchdog.observe(0.0, waiting=0, reports=0, acks=0)
    verdict = watchdog.observe(10_000.0, waiting=0, reports=0, acks=0)
    assert verdict.delivering
    assert not verdict.stalled
    # records arrive after a long quiet spell: the clock starts now, not at the last report
    assert watchdog.observe(10_001.0, waiting=3, reports=0, acks=0).delivering


def test_no_acknowledgement_while_records_wait_is_not_delivering_then_recovers() -> None:
    watchdog = _watchdog()
    watchdog.observe(0.0, waiting=0, reports=0, acks=0)
    assert watchdog.observe(SLOW_S - 1, waiting=40, reports=0, acks=0).delivering
    verdict = watchdog.observe(SLOW_S, waiting=80, reports=0, acks=0)
    assert not verdict.delivering
    assert not verdict.stalled
    assert verdict.reason == f"records waiting, none acknowledged for over {SLOW_S:g} s"
    # the broker is back: acknowledgements again
    assert watchdog.observe(SLOW_S + 5, waiting=10, reports=70, acks=70).delivering


def test_an_outage_past_the_delivery_timeout_reports_errors_so_it_never_stalls() -> None:
    """Kafka down 150 s with a 120 s delivery timeout: from 120 s on, records time out (error
    reports) each second; no acknowledgement, but reports: not delivering, never stalled."""
    watchdog = _watchdog()
    watchdog.observe(0.0, waiting=0, reports=0, acks=0)
    verdicts = []
    for second in range(1, 400):
        timed_out = max(0, second - 120) * 100  # errors from 120 s on
        verdicts.append(watchdog.observe(float(second), waiting=5000, reports=timed_out, acks=0))
    assert not any(v.stalled for v in verdicts)
    assert not verdicts[-1].delivering


def test_no_report_at_all_past_the_stall_limit_is_a_stall_and_it_sticks() -> None:
    watchdog = _watchdog()
    # the clock starts at the last look that found nothing waiting (upkeep: every 0.1 s)
    watchdog.observe(1.0, waiting=0, reports=0, acks=0)
    watchdog.observe(1.1, waiting=1, reports=0, acks=0)
    assert not watchdog.observe(1.0 + STALL_S - 0.5, waiting=900, reports=0, acks=0).stalled
    verdict = watchdog.observe(1.0 + STALL_S + 0.5, waiting=900, reports=0, acks=0)
    assert verdict.stalled
    assert not verdict.delivering
    assert (
        verdict.reason == "producer stalled: no delivery report for 150 s with 900 records waiting"
    )
    # a stalled producer is not trusted again, even if reports trickle in or the queue empties
    later = watchdog.observe(STALL_S + 10, waiting=0, reports=5, acks=5)
    assert later.stalled
    assert later.reason == verdict.reason


def test_reports_reset_the_stall_clock_but_only_acknowledgements_the_slow_one() -> None:
    watchdog = _watchdog()
    watchdog.observe(0.0, waiting=10, reports=0, acks=0)
    for second in range(1, 300):
        verdict = watchdog.observe(float(second), waiting=10, reports=second, acks=0)
        assert not verdict.stalled
    assert not verdict.delivering


@pytest.mark.parametrize(("slow", "stall"), [(0.0, 10.0), (20.0, 10.0), (-1.0, 5.0)])
def test_limits_must_be_ordered_and_positive(slow: float, stall: float) -> None:
    with pytest.raises(ValueError, match="slow_after_s"):
        DeliveryWatchdog(slow_after_s=slow, stall_after_s=stall)


def test_overdue() -> None:
    assert not overdue(None, 1_000.0, 10.0)
    assert not overdue(100.0, 109.9, 10.0)
    assert overdue(100.0, 110.0, 10.0)
    assert not overdue(0.0, 1e9, 0.0)  # 0: never


def test_a_broker_refusing_every_record_at_once_is_not_delivering() -> None:
    """Errors come back at once (nothing stays waiting): still not delivering, until an
    acknowledgement; one failed record among acknowledged ones changes nothing."""
    watchdog = _watchdog()
    watchdog.observe(0.0, waiting=0, reports=0, acks=0)
    assert watchdog.observe(1.0, waiting=0, reports=10, acks=9).delivering
    assert watchdog.observe(2.0, waiting=0, reports=20, acks=19).delivering
    for second in range(3, 14):
        verdict = watchdog.observe(float(second), waiting=0, reports=20 + second, acks=19)
    assert not verdict.delivering
    assert not verdict.stalled
    assert verdict.reason == f"only delivery errors, no acknowledgement, for over {SLOW_S:g} s"
    assert watchdog.observe(14.0, waiting=0, reports=40, acks=20).delivering
