"""The recovery drills at short durations (``mdgw drill`` runs them at full length), on the
servers of ``mdgw infra`` (MDGW_INFRA_HOME): each stops one of them. Exact counts at every hop.

- Cassandra down longer than a reconnection schedule shortened through the settings: the
  driver's default (64 attempts) would have given up, and the tick writer stayed paused for
  good (issue 15, item 9). It must resume alone and store every tick exactly once.
- Kafka down longer than a delivery timeout shortened through KAFKA_DELIVERY_TIMEOUT_MS: the
  ticks that waited longer are reported failed (counted), none vanishes unreported, the
  watchdog does not mistake the outage for a stalled producer, and Cassandra holds exactly
  what Kafka holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from marketinfra.settings import CassandraSettings, KafkaSettings
from mdgw.drills.report import DrillCounts, problems, render
from mdgw.drills.run import Drill, DrillPlan, default_schedule_gives_up_after_s
from mdgw.localinfra import LocalInfraSettings

pytestmark = pytest.mark.timeout(900)  # a drill's guards are its own; this bounds a hang


def _drill(plan: DrillPlan) -> DrillCounts:
    drill = Drill(plan, LocalInfraSettings(), KafkaSettings(), CassandraSettings(), say=print)
    counts = drill.run()
    print(render(counts))
    return counts


def test_cassandra_down_past_a_short_reconnect_schedule_every_tick_once(tmp_path: Path) -> None:
    plan = DrillPlan(
        "cassandra-outage",
        outage_s=20,
        rate_per_s=40,
        before_s=5,
        after_s=5,
        reconnect_base_delay_s=0.05,
        reconnect_max_delay_s=0.1,
        work_dir=tmp_path,
    )
    assert default_schedule_gives_up_after_s(0.05, 0.1) < plan.outage_s / 2
    counts = _drill(plan)

    assert problems(counts) == [], render(counts)
    assert counts.sent > 40 * (plan.before_s + plan.outage_s)
    assert counts.feed.ticks == counts.feed.accepted == counts.sent
    assert counts.kafka_records == counts.kafka_unique == counts.sent
    assert counts.cassandra_rows == counts.cassandra_unique == counts.sent
    assert counts.cassandra_matches_kafka
    assert counts.dead_letters == 0
    assert "cassandra: writes failing; retrying" in counts.reasons["tickwriter"]
    assert counts.backlog_written_s is not None


def test_kafka_down_past_a_short_delivery_timeout_loses_nothing_unreported(
    tmp_path: Path,
) -> None:
    plan = DrillPlan(
        "kafka-outage",
        outage_s=20,
        rate_per_s=40,
        before_s=5,
        after_s=5,
        delivery_timeout_ms=8_000,
        work_dir=tmp_path,
    )
    counts = _drill(plan)

    assert problems(counts) == [], render(counts)
    errors = sum(counts.feed.delivery_errors.values())
    assert counts.feed.ticks == counts.feed.accepted == counts.sent
    assert errors > 0, "the outage outlasted the delivery timeout: some ticks timed out"
    assert set(counts.feed.delivery_errors) == {"_MSG_TIMED_OUT"}
    # every accepted tick is on Kafka or was reported failed (some of those were written all
    # the same, item 11: counted, never silently)
    assert counts.feed.accepted == (
        counts.kafka_unique + errors - counts.reported_failed_but_on_kafka
    )
    assert counts.kafka_unique + errors >= counts.feed.accepted
    assert counts.cassandra_rows == counts.cassandra_unique == counts.kafka_unique
    assert counts.cassandra_matches_kafka
    assert counts.dead_letters == 0
    assert any(r.startswith("kafka: ") for r in counts.reasons["feedhandler"])
