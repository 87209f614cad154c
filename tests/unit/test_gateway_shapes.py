"""Shared batches (``FanOut.share``/``deliver``): streams of one batched shape get one batch
built for all of them, and each still receives exactly what its own outbox would have sent."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.fanout import FanOut, ShapeGroup, Subscriber
from gateway.core.subscriptions import Subscription
from gateway.core.updates import FeedUpdate
from marketcore.instruments import InstrumentKey
from marketcore.ticks import Tick

MS = 1_000_000
KEYS = [InstrumentKey("NASDAQ", symbol) for symbol in ("AAPL", "MSFT", "TSLA")]
SHAPE = Subscription(frozenset(k.symbol for k in KEYS), None, 0, max_batch_size=3, max_delay_ns=MS)


def update(key: InstrumentKey, version: int) -> FeedUpdate:
    tick = Tick(exchange=key.exchange, symbol=key.symbol, last_nanos=version, feed_sequence=version)
    return FeedUpdate(key, tick, f"{key}:{version}".encode())


def fanout(depth: int = 8, max_lag_ns: int = 5_000 * MS) -> FanOut[FeedUpdate]:
    return FanOut(max_lag_ns=max_lag_ns, unthrottled_depth=depth, queue_max_age_ns=100 * MS)


def drive(fan: FanOut[FeedUpdate], group: ShapeGroup[FeedUpdate], now_ns: int) -> None:
    """What the service's driver does once it is woken: take a batch, hand it over."""
    fan.deliver(group, group.lead.outbox.take(now_ns, SHAPE.max_batch_size), now_ns)


def two_sharing(fan: FanOut[FeedUpdate]) -> tuple[Subscriber[FeedUpdate], ...]:
    first, second = fan.add(SHAPE, lambda: None), fan.add(SHAPE, lambda: None)
    assert fan.share(first) is None  # one stream alone builds its own batches
    group = fan.share(second)
    assert group is not None
    assert fan.groups == 1
    return first, second


def joined_pair(
    fan: FanOut[FeedUpdate],
) -> tuple[Subscriber[FeedUpdate], Subscriber[FeedUpdate], ShapeGroup[FeedUpdate]]:
    """Two streams of SHAPE that have joined their group (the lead was empty)."""
    first, second = two_sharing(fan)
    group = first.group
    assert group is not None
    drive(fan, group, 0)
    assert first.joined
    assert second.joined
    return first, second, group


def test_a_shape_shared_by_two_streams_builds_each_batch_once() -> None:
    fan = fanout()
    first, second = two_sharing(fan)
    group = first.group
    assert group is not None
    assert group is second.group
    drive(fan, group, 0)  # the lead is empty: both join
    assert first.joined
    assert second.joined
    assert fan.publish(KEYS[0], update(KEYS[0], 1), 1) == 1  # offered once, to the lead
    drive(fan, group, 2)
    assert first.inbox[0] is second.inbox[0]  # the same batch object for both
    assert [u.tick.last_nanos for u in first.inbox[0].updates] == [1]
    assert not first.outbox
    assert not second.outbox


def test_throttled_streams_never_share() -> None:
    fan = fanout()
    throttled = Subscription(SHAPE.symbols, None, 5 * MS, max_batch_size=3, max_delay_ns=5 * MS)
    streams = [fan.add(throttled, lambda: None) for _ in range(2)]
    assert [fan.share(s) for s in streams] == [None, None]
    assert fan.groups == 0


def test_a_waiting_stream_joins_only_when_the_lead_is_empty_and_keeps_its_own_pending() -> None:
    fan = fanout()
    first, second = two_sharing(fan)
    group = first.group
    assert group is not None
    for version in (1, 2, 3, 4):  # four updates: one batch of three leaves one in the lead
        fan.publish(KEYS[version % 3], update(KEYS[version % 3], version), version)
    drive(fan, group, 5)
    assert not first.joined, "the lead still holds an update the streams also hold"
    drive(fan, group, 6)
    assert first.joined
    assert second.joined
    # their own outboxes (all four updates, in the outbox's order) moved to their inboxes, in
    # batches of three
    assert [[u.tick.last_nanos for u in d.updates] for d in first.inbox] == [[1, 4, 2], [3]]
    assert not first.outbox
    fan.publish(KEYS[0], update(KEYS[0], 5), 7)
    assert not first.outbox, "a member is fed by its group only"
    drive(fan, group, 8)
    assert [u.tick.last_nanos for u in first.inbox[-1].updates] == [5]


def test_a_member_that_falls_behind_goes_back_to_its_own_outbox_conflated() -> None:
    fan = fanout(depth=1)
    slow, fast, group = joined_pair(fan)
    for version in range(1, 7):
        fan.publish(KEYS[0], update(KEYS[0], version), version * MS)
        drive(fan, group, version * MS)
        fast.inbox.clear()  # the fast one keeps up
    assert len(slow.inbox) == 6
    assert slow.joined
    fan.publish(KEYS[1], update(KEYS[1], 7), 200 * MS)
    drive(fan, group, 200 * MS)  # the oldest queued batch is 199 ms old: past 100 ms
    assert not slow.joined
    assert slow.was_detached
    assert not slow.inbox
    # its six AAPL batches conflated to the latest; MSFT kept
    assert [u.tick.last_nanos for u in slow.outbox.pending()] == [6, 7]
    assert fast.joined
    assert [u.tick.last_nanos for u in fast.inbox[0].updates] == [7]
    fan.publish(KEYS[0], update(KEYS[0], 8), 201 * MS)
    assert [u.tick.last_nanos for u in slow.outbox.pending()] == [8, 7], "indexed again"
    drive(fan, group, 202 * MS)
    assert not slow.joined, "it rejoins only once it has caught up"
    slow.outbox.take(203 * MS, 10)
    drive(fan, group, 204 * MS)
    assert slow.joined


def test_a_member_whose_batches_wait_past_the_lag_limit_is_reported() -> None:
    fan = fanout(max_lag_ns=50 * MS)
    stalled, reading, group = joined_pair(fan)
    fan.publish(KEYS[0], update(KEYS[0], 1), 1)
    drive(fan, group, 1)
    reading.inbox.clear()
    assert fan.lagging(40 * MS) == []
    [(who, reason)] = fan.lagging(60 * MS)
    assert who is stalled
    assert reason.startswith("client too slow: a batch waited 59 ms")


def test_the_last_stream_of_a_shape_stops_the_group_and_gets_what_the_lead_held() -> None:
    fan = fanout()
    leaving, staying, group = joined_pair(fan)
    fan.publish(KEYS[0], update(KEYS[0], 1), 1)
    drive(fan, group, 2)
    fan.publish(KEYS[1], update(KEYS[1], 2), 3)  # still in the lead
    assert fan.remove(leaving, now_ns=4) is group
    assert fan.groups == 0
    assert not staying.joined
    assert not staying.inbox
    assert [u.tick.last_nanos for u in staying.outbox.pending()] == [1, 2]
    assert fan.publish(KEYS[0], update(KEYS[0], 3), 5) == 1  # to its own outbox again
    assert fan.remove(staying, now_ns=6) is None  # the group had stopped already


def test_close_all_hands_the_leads_updates_to_members_and_stops_feeding_the_group() -> None:
    fan = fanout()
    first, second, _ = joined_pair(fan)
    fan.publish(KEYS[0], update(KEYS[0], 1), 1)
    assert fan.close_all("bye", now_ns=2) == 2
    assert [u.tick.last_nanos for u in second.inbox[0].updates] == [1]
    assert fan.publish(KEYS[0], update(KEYS[0], 2), 3) == 0
    assert first.closing == "bye"


# -- the model: any interleaving gives every stream what its own outbox would ------------------


@dataclass
class Stream:
    subscriber: Subscriber[FeedUpdate]
    sent: list[FeedUpdate] = field(default_factory=list)
    expected: dict[InstrumentKey, list[int]] = field(default_factory=lambda: defaultdict(list))
    removed: bool = False


def program(seed: int, length: int = 400) -> list[tuple[str, int]]:
    """A random interleaving: mostly publishing, streams of very different speeds (so slow ones
    fall behind their group and leave it), long pauses, streams opening and closing."""
    rng = random.Random(seed)
    speeds = [rng.choice((0.02, 0.2, 1.0)) for _ in range(6)]
    actions = ["publish", "drive", "send", "open", "close", "wait"]
    weights = [45, 15, 25, 5, 3, 7]
    steps = []
    for action in rng.choices(actions, weights, k=length):
        if action == "send":
            steps.append((action, rng.choices(range(6), speeds)[0]))
        elif action == "wait":
            steps.append((action, rng.randint(1, 150)))
        else:
            steps.append((action, rng.randrange(6)))
    return steps


class Model:
    """The fan-out and the service's driver and pumps, stepped by hand."""

    def __init__(self, depth: int) -> None:
        self.fan = fanout(depth=depth)
        self.groups: set[ShapeGroup[FeedUpdate]] = set()
        self.ever_started: list[ShapeGroup[FeedUpdate]] = []
        self.latest: dict[InstrumentKey, FeedUpdate] = {}
        self.streams: list[Stream] = []
        self.now_ns = self.version = 0

    def step(self, action: str, argument: int) -> None:
        self.now_ns += MS
        streams = self.streams
        if action == "publish":
            self.publish(KEYS[argument % len(KEYS)])
        elif action == "drive":
            self.drive_all()
        elif action == "send" and argument < len(streams):
            self.send(streams[argument])
        elif action == "open" and len(streams) < 6:
            self.open_stream()
        elif action == "close" and argument < len(streams) and not streams[argument].removed:
            streams[argument].removed = True
            self.groups.discard(self.fan.remove(streams[argument].subscriber, self.now_ns))
        elif action == "wait":
            self.now_ns += argument * MS

    def publish(self, key: InstrumentKey) -> None:
        self.version += 1
        self.latest[key] = update(key, self.version)
        for stream in self.streams:
            if not stream.removed:
                stream.expected[key].append(self.version)
        self.fan.publish(key, self.latest[key], self.now_ns)

    def open_stream(self) -> None:
        subscriber = self.fan.add(SHAPE, lambda: None)
        stream = Stream(subscriber)
        for key, value in self.latest.items():  # the snapshot, as MarketData.subscribe queues
            subscriber.outbox.offer(key, value, self.now_ns)
            stream.expected[key].append(value.tick.last_nanos)
        started = self.fan.share(subscriber)
        if started is not None:
            self.groups.add(started)
            self.ever_started.append(started)
        self.streams.append(stream)

    def send(self, stream: Stream) -> bool:
        subscriber = stream.subscriber
        if subscriber.inbox:
            stream.sent += subscriber.inbox.popleft().updates
        elif subscriber.outbox:
            stream.sent += subscriber.outbox.take(self.now_ns, SHAPE.max_batch_size)
        else:
            return False
        return True

    def drive_all(self) -> bool:
        busy = False
        for group in list(self.groups):
            busy |= bool(group.lead.outbox)
            drive(self.fan, group, self.now_ns)
        return busy

    def quiesce(self) -> None:
        """Everything pending reaches the streams still open."""
        busy = True
        while busy:
            self.now_ns += MS
            busy = self.drive_all()
            for stream in self.streams:
                while not stream.removed and self.send(stream):
                    busy = True

    @property
    def lead_conflated(self) -> int:
        return sum(group.lead.outbox.conflated for group in self.ever_started)


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32), depth=st.sampled_from([1, 2, 64]))
def test_every_stream_gets_its_updates_in_order_once_and_ends_on_the_latest(
    seed: int, depth: int
) -> None:
    model = Model(depth)
    for action, argument in program(seed):
        model.step(action, argument)
    model.quiesce()

    for stream in model.streams:
        received: dict[InstrumentKey, list[int]] = defaultdict(list)
        for sent in stream.sent:
            received[sent.key].append(sent.tick.last_nanos)
        for key, values in received.items():
            assert values == sorted(set(values)), "a value repeated or out of order"
            assert set(values) <= set(stream.expected[key]), "a value from before the stream"
        if stream.removed:
            continue
        exact = not model.lead_conflated and not stream.subscriber.outbox.conflated
        for key, values in stream.expected.items():
            assert received[key][-1] == values[-1], "the latest value must arrive"
            if exact:
                assert received[key] == values, "nothing conflated: every value arrives"
