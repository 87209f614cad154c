"""What a drill counted, and what it must have seen to pass: pure (the drill's runner counts,
this decides and words it).

Each hop is counted on its own: the ticks the venue sent, the feed handler's own figures
(from its last log line), the records on the drill's Kafka topic read back from the start
(and how many of them repeat a tick already there: Kafka's duplicates), the rows in the drill's
Cassandra keyspace, the dead letters, and every health change each service showed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SERVING = "SERVING"
NOT_SERVING = "NOT_SERVING"
NO_ANSWER = "NO_ANSWER"  # the health port did not answer (not started, or gone)
SERVICES = ("feedhandler", "tickwriter", "gateway")


@dataclass(frozen=True, slots=True)
class HealthChange:
    at_s: float  # seconds since the drill started
    service: str  # feedhandler | tickwriter | gateway
    probe: str  # readiness | liveness
    status: str


@dataclass(frozen=True, slots=True)
class FeedHandlerFigures:
    ticks: int  # normalized ticks the handler made from the venue's frames
    accepted: int  # taken by the producer queue
    delivery_errors: Mapping[str, int]  # by librdkafka error code (timed out, ...)
    unacknowledged: int  # still waiting when it stopped
    dropped: Mapping[str, int]  # conflated / buffer_full
    exit_code: int


@dataclass(frozen=True, slots=True)
class DrillCounts:
    kind: str  # cassandra-outage | kafka-outage
    outage_s: float
    sent: int  # ticker messages the venue sent (one tick each)
    feed: FeedHandlerFigures
    kafka_records: int  # records on the drill topic, duplicates included
    kafka_unique: int  # distinct ticks among them (instrument, feed_sequence)
    cassandra_rows: int
    cassandra_unique: int  # distinct (instrument, feed_sequence) among the rows
    cassandra_matches_kafka: bool  # the same ticks, exactly, in both
    dead_letters: int
    outage_started_s: float
    outage_ended_s: float  # when the server answered again
    # health changes until the services were stopped; when all were ready again
    health: list[HealthChange] = field(default_factory=list)
    ready_again_s: float | None = None
    writer_caught_up_s: float | None = None  # the writer had committed every record
    # the writer had written everything on Kafka when the server came back (the backlog)
    backlog_written_s: float | None = None
    # why each service said it was not ready (its readiness_changed log lines)
    reasons: Mapping[str, list[str]] = field(default_factory=dict)

    @property
    def reported_failed_but_on_kafka(self) -> int:
        """Delivery errors for records Kafka had in fact written (a timeout after the write):
        accepted = on Kafka + reported failed - these."""
        errors = sum(self.feed.delivery_errors.values())
        return max(0, self.kafka_unique + errors - self.feed.accepted)

    @property
    def kafka_duplicates(self) -> int:
        return self.kafka_records - self.kafka_unique

    @property
    def lost_before_kafka(self) -> int:
        """Accepted by the handler, never on Kafka (reported as delivery errors, or not)."""
        return max(0, self.feed.accepted - self.kafka_unique)


def statuses_between(
    changes: Iterable[HealthChange], service: str, probe: str, start_s: float, end_s: float
) -> set[str]:
    """Every status ``service``'s ``probe`` showed during [start_s, end_s], including the one
    it already had at ``start_s``."""
    relevant = sorted(
        (c for c in changes if c.service == service and c.probe == probe), key=lambda c: c.at_s
    )
    seen: set[str] = set()
    current: str | None = None
    for change in relevant:
        if change.at_s <= start_s:
            current = change.status
        elif change.at_s <= end_s:
            seen.add(change.status)
    if current is not None:
        seen.add(current)
    return seen


def final_status(changes: Iterable[HealthChange], service: str, probe: str) -> str | None:
    last = None
    for change in sorted(changes, key=lambda c: c.at_s):
        if change.service == service and change.probe == probe:
            last = change.status
    return last


def recovered_at(
    changes: Iterable[HealthChange], service: str, probe: str, after_s: float
) -> float | None:
    """When ``probe`` of ``service`` last turned SERVING after ``after_s`` (None: it did not)."""
    turned = None
    for change in sorted(changes, key=lambda c: c.at_s):
        if change.service != service or change.probe != probe or change.at_s < after_s:
            continue
        turned = change.at_s if change.status == SERVING else None
    return turned


# which service cannot do its job while that server is down
_AFFECTED = {
    "cassandra-outage": ("tickwriter", "gateway"),
    "kafka-outage": ("feedhandler", "tickwriter", "gateway"),
}


def problems(counts: DrillCounts) -> list[str]:
    """What went wrong; empty: the drill passed."""
    return [*_count_problems(counts), *_health_problems(counts)]


def _count_problems(counts: DrillCounts) -> list[str]:
    found: list[str] = []
    feed = counts.feed
    if feed.ticks != counts.sent:
        found.append(f"the feed handler made {feed.ticks} ticks of {counts.sent} sent")
    dropped = sum(feed.dropped.values())
    if feed.accepted + dropped != feed.ticks:
        found.append(f"{feed.ticks} ticks, but {feed.accepted} accepted + {dropped} dropped")
    if counts.cassandra_rows != counts.cassandra_unique:
        found.append(f"{counts.cassandra_rows - counts.cassandra_unique} ticks stored twice")
    if not counts.cassandra_matches_kafka:
        found.append(
            f"Cassandra holds {counts.cassandra_unique} ticks, Kafka {counts.kafka_unique}: "
            "not the same ticks"
        )
    if counts.dead_letters:
        found.append(f"{counts.dead_letters} dead letters")
    if counts.writer_caught_up_s is None:
        found.append("the tick writer did not catch up with Kafka")
    return [*found, *_loss_problems(counts)]


def _loss_problems(counts: DrillCounts) -> list[str]:
    found: list[str] = []
    feed = counts.feed
    dropped = sum(feed.dropped.values())
    errors = sum(feed.delivery_errors.values())
    if counts.kind == "cassandra-outage":
        if dropped or errors or feed.unacknowledged:
            found.append("the feed handler lost ticks though Kafka stayed up")
        if counts.kafka_unique != feed.accepted:
            found.append(f"{feed.accepted} accepted, {counts.kafka_unique} on Kafka")
    elif counts.lost_before_kafka > errors + feed.unacknowledged:
        # every accepted tick reaches Kafka, or is reported failed: none vanishes silently
        found.append(
            f"{counts.lost_before_kafka} accepted ticks are not on Kafka, but only "
            f"{errors} delivery errors were reported"
        )
    return found


def _health_problems(counts: DrillCounts) -> list[str]:
    found: list[str] = []
    for service in _AFFECTED[counts.kind]:
        during = statuses_between(
            counts.health, service, "readiness", counts.outage_started_s, counts.outage_ended_s
        )
        if NOT_SERVING not in during:
            found.append(f"{service} readiness never said NOT_SERVING during the outage")
    for service in SERVICES:
        if final_status(counts.health, service, "readiness") != SERVING:
            found.append(f"{service} readiness is not SERVING after the outage")
        liveness = statuses_between(counts.health, service, "liveness", 0, float("inf"))
        if NOT_SERVING in liveness or final_status(counts.health, service, "liveness") != SERVING:
            found.append(f"{service} liveness failed (a restart would have been asked for)")
    return found


def render(counts: DrillCounts) -> str:
    """The report, one figure a line."""
    feed = counts.feed
    same = "the same" if counts.cassandra_matches_kafka else "NOT the same"
    lines = [
        f"drill {counts.kind}: server down {counts.outage_s:.0f} s "
        f"(from {counts.outage_started_s:.1f} s to {counts.outage_ended_s:.1f} s of the run)",
        f"  ticks sent by the venue:        {counts.sent}",
        f"  made by the feed handler:       {feed.ticks}",
        f"  accepted by its producer:       {feed.accepted}",
        f"  dropped (buffer policy):        {dict(feed.dropped) or 0}",
        f"  delivery errors reported:       {dict(feed.delivery_errors) or 0}",
        f"  unacknowledged at stop:         {feed.unacknowledged}",
        f"    of them on Kafka all the same: {counts.reported_failed_but_on_kafka}",
        f"  records on Kafka:               {counts.kafka_records}",
        f"    distinct ticks:               {counts.kafka_unique}",
        f"    duplicates:                   {counts.kafka_duplicates}",
        f"  rows in Cassandra:              {counts.cassandra_rows}"
        f" ({counts.cassandra_unique} distinct; {same} ticks as on Kafka)",
        f"  dead letters:                   {counts.dead_letters}",
    ]
    for service in SERVICES:
        during = statuses_between(
            counts.health, service, "readiness", counts.outage_started_s, counts.outage_ended_s
        )
        back = recovered_at(counts.health, service, "readiness", counts.outage_started_s)
        after = ""
        if back is not None and back > counts.outage_started_s and NOT_SERVING in during:
            after = (
                f"; SERVING again {back - counts.outage_ended_s:+.1f} s after the server was back"
            )
        lines.append(
            f"  {service:<12} readiness during the outage: {'/'.join(sorted(during)) or '-'}{after}"
        )
    if counts.backlog_written_s is not None:
        lines.append(
            "  the outage's backlog written:   "
            f"{counts.backlog_written_s - counts.outage_ended_s:.1f} s after the server was back"
        )
    for service, reasons in counts.reasons.items():
        lines += [f"  {service} not ready because: {reason}" for reason in reasons]
    lines.append("  health changes:")
    lines += [
        f"    {c.at_s:8.1f} s  {c.service:<12} {c.probe:<10} {c.status}" for c in counts.health
    ]
    found = problems(counts)
    lines.append("PASSED" if not found else "FAILED:\n" + "\n".join(f"  - {p}" for p in found))
    return "\n".join(lines)
