"""A drill's verdict from its counts (made-up figures, each checked against the rule it
breaks)."""

from __future__ import annotations

import dataclasses

from mdgw.drills.report import (
    NO_ANSWER,
    NOT_SERVING,
    SERVING,
    DrillCounts,
    FeedHandlerFigures,
    HealthChange,
    problems,
    render,
    statuses_between,
)

SERVICES = ("feedhandler", "tickwriter", "gateway")


def _health(outage: tuple[str, ...]) -> list[HealthChange]:
    changes = []
    for service in SERVICES:
        for probe in ("readiness", "liveness"):
            changes.append(HealthChange(0.0, service, probe, NO_ANSWER))
            changes.append(HealthChange(2.0, service, probe, SERVING))
    for service in outage:
        changes.append(HealthChange(12.0, service, "readiness", NOT_SERVING))
        changes.append(HealthChange(45.0, service, "readiness", SERVING))
    return changes


def _cassandra_drill() -> DrillCounts:
    return DrillCounts(
        kind="cassandra-outage",
        outage_s=30,
        sent=1000,
        feed=FeedHandlerFigures(1000, 1000, {}, 0, {}, 0),
        kafka_records=1000,
        kafka_unique=1000,
        cassandra_rows=1000,
        cassandra_unique=1000,
        cassandra_matches_kafka=True,
        dead_letters=0,
        outage_started_s=10,
        outage_ended_s=40,
        health=_health(("tickwriter", "gateway")),
        ready_again_s=46,
        writer_caught_up_s=60,
        backlog_written_s=50,
    )


def test_a_clean_cassandra_drill_passes() -> None:
    counts = _cassandra_drill()
    assert problems(counts) == []
    assert render(counts).endswith("PASSED")


def test_a_writer_that_never_said_not_serving_fails_the_drill() -> None:
    counts = dataclasses.replace(_cassandra_drill(), health=_health(("gateway",)))
    assert problems(counts) == ["tickwriter readiness never said NOT_SERVING during the outage"]


def test_a_failed_liveness_fails_the_drill() -> None:
    health = [
        *_health(("tickwriter", "gateway")),
        HealthChange(20, "tickwriter", "liveness", NOT_SERVING),
    ]
    counts = dataclasses.replace(_cassandra_drill(), health=health)
    assert problems(counts) == ["tickwriter liveness failed (a restart would have been asked for)"]


def test_kafka_drill_accepts_reported_losses_and_refuses_silent_ones() -> None:
    base = dataclasses.replace(
        _cassandra_drill(),
        kind="kafka-outage",
        health=_health(SERVICES),
        feed=FeedHandlerFigures(1000, 1000, {"_MSG_TIMED_OUT": 300}, 0, {}, 0),
        kafka_records=760,
        kafka_unique=750,  # 50 of the 300 timed out were written all the same
        cassandra_rows=750,
        cassandra_unique=750,
    )
    assert problems(base) == []
    assert base.kafka_duplicates == 10
    assert base.reported_failed_but_on_kafka == 50
    silent = dataclasses.replace(
        base, kafka_records=600, kafka_unique=600, cassandra_rows=600, cassandra_unique=600
    )
    assert problems(silent) == [
        "400 accepted ticks are not on Kafka, but only 300 delivery errors were reported"
    ]


def test_stored_twice_or_not_the_same_ticks_fail() -> None:
    counts = dataclasses.replace(
        _cassandra_drill(), cassandra_rows=1001, cassandra_matches_kafka=False
    )
    assert problems(counts) == [
        "1 ticks stored twice",
        "Cassandra holds 1000 ticks, Kafka 1000: not the same ticks",
    ]


def test_statuses_between_include_the_one_held_at_the_start() -> None:
    changes = _health(("tickwriter",))
    assert statuses_between(changes, "tickwriter", "readiness", 11, 40) == {SERVING, NOT_SERVING}
    assert statuses_between(changes, "tickwriter", "readiness", 13, 40) == {NOT_SERVING}
    assert statuses_between(changes, "gateway", "readiness", 13, 40) == {SERVING}
