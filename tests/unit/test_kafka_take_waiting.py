"""``take_waiting``: a record goes on as soon as it is fetched; a batch is only what waits."""

from __future__ import annotations

from collections import deque

from marketinfra.kafka import take_waiting


class FakeConsumer:
    """Records already fetched (``waiting``); records that would arrive while a call waits
    (``arriving``), which only a call that waits (timeout > 0) for more than is there sees."""

    def __init__(self, waiting: list[str], arriving: list[str] | None = None) -> None:
        self.waiting = deque(waiting)
        self.arriving = deque(arriving or [])
        self.calls: list[tuple[str, int, float]] = []

    def _take(self, count: int, timeout: float) -> list[str]:
        if timeout > 0 and len(self.waiting) < count:  # a call that waits for more sees more
            self.waiting.extend(self.arriving)
            self.arriving.clear()
        taken = []
        while self.waiting and len(taken) < count:
            taken.append(self.waiting.popleft())
        return taken

    def poll(self, timeout: float) -> str | None:
        self.calls.append(("poll", 1, timeout))
        taken = self._take(1, timeout)
        return taken[0] if taken else None

    def consume(self, num_messages: int, timeout: float) -> list[str]:
        self.calls.append(("consume", num_messages, timeout))
        return self._take(num_messages, timeout)


def test_a_lone_record_is_returned_without_waiting_for_a_batch() -> None:
    consumer = FakeConsumer(["r1"], arriving=["r2"])
    assert take_waiting(consumer, 500, 0.1) == ["r1"]  # type: ignore[arg-type]  # the fake
    assert consumer.calls == [("poll", 1, 0.1), ("consume", 499, 0)]
    assert list(consumer.arriving) == ["r2"]  # nothing waited for it


def test_records_already_waiting_come_as_one_batch_up_to_the_maximum() -> None:
    consumer = FakeConsumer([f"r{n}" for n in range(7)])
    assert take_waiting(consumer, 5, 0.1) == ["r0", "r1", "r2", "r3", "r4"]  # type: ignore[arg-type]
    assert take_waiting(consumer, 5, 0.1) == ["r5", "r6"]  # type: ignore[arg-type]


def test_nothing_there_waits_only_for_the_first_record() -> None:
    consumer = FakeConsumer([])
    assert take_waiting(consumer, 500, 0.1) == []  # type: ignore[arg-type]
    assert consumer.calls == [("poll", 1, 0.1)]


def test_a_batch_of_one_never_calls_consume() -> None:
    consumer = FakeConsumer(["r1", "r2"])
    assert take_waiting(consumer, 1, 0.1) == ["r1"]  # type: ignore[arg-type]
    assert [call[0] for call in consumer.calls] == ["poll"]
