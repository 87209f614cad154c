"""The tick writer's own checks: readiness wants a Cassandra node up; liveness (restart me)
fails only when unable to write past the limit or when the consume loop stops turning, never
for an outage it should ride out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from marketinfra.readiness import Readiness
from tickwriter.app import CASSANDRA_NODES, WRITER, TickWriter
from tickwriter.config import TickWriterSettings


@dataclass
class Host:
    is_up: bool


@dataclass
class Metadata:
    hosts: list[Host]

    def all_hosts(self) -> list[Host]:
        return self.hosts


@dataclass
class Cluster:
    metadata: Metadata = field(default_factory=lambda: Metadata([Host(is_up=True)]))


@dataclass
class Pipeline:
    unable_to_write_since: float | None = None
    last_turn_at: float = 0.0


def _writer(**settings: Any) -> tuple[TickWriter, Cluster, Pipeline]:
    cluster, pipeline = Cluster(), Pipeline()
    readiness, liveness = Readiness(), Readiness()
    readiness.add(CASSANDRA_NODES, "not checked yet")
    liveness.add(WRITER, "not checked yet")
    app = TickWriter(
        TickWriterSettings(**settings),
        cast("Any", cluster),
        cast("Any", None),
        cast("Any", pipeline),
        readiness,
        liveness,
    )
    return app, cluster, pipeline


def test_no_node_up_is_not_ready_but_alive() -> None:
    app, cluster, pipeline = _writer()
    app.check(now_s=1.0)
    assert app.readiness.ready
    assert app.liveness.ready
    cluster.metadata.hosts[0].is_up = False
    pipeline.unable_to_write_since = 1.0
    pipeline.last_turn_at = 599.5
    app.check(now_s=600.0)  # ten minutes of outage: not ready, and no reason to restart
    assert app.readiness.unmet() == {CASSANDRA_NODES: "no Cassandra node up"}
    assert app.liveness.ready


def test_unable_to_write_past_the_limit_fails_liveness_and_recovers() -> None:
    app, _, pipeline = _writer(restart_after_unable_s=900)
    pipeline.unable_to_write_since = 100.0
    pipeline.last_turn_at = 1_000.0
    app.check(now_s=1_000.0)
    assert app.liveness.unmet() == {WRITER: "unable to write for over 900 s"}
    pipeline.unable_to_write_since = None
    app.check(now_s=1_000.5)
    assert app.liveness.ready


def test_a_loop_that_stops_turning_fails_liveness() -> None:
    app, _, pipeline = _writer(loop_stuck_s=60)
    pipeline.last_turn_at = 10.0
    app.check(now_s=69.0)
    assert app.liveness.ready
    app.check(now_s=70.0)
    assert app.liveness.unmet() == {WRITER: "pipeline stuck for over 60 s"}


def test_a_restart_limit_of_zero_never_restarts() -> None:
    app, _, pipeline = _writer(restart_after_unable_s=0)
    pipeline.unable_to_write_since = 0.0
    pipeline.last_turn_at = 1e6
    app.check(now_s=1e6)
    assert app.liveness.ready
