"""Runs a drill: known ticks through the real services while a server is stopped and started.

The venue (``TickerVenue``, in this process) -> ``mdgw feed`` -> Kafka -> ``mdgw tickwriter``
-> Cassandra, and -> ``mdgw gateway``: the three services as subprocesses, exactly as they
run anywhere, on a topic pair and a keyspace of the drill's own (dropped afterwards unless
kept). A thread polls each service's health port (readiness and liveness) every half second.
After the outage and a spell of ticks after it, the venue stops, the feed handler is stopped
(SIGTERM: it flushes and logs its own figures), and everything is counted from the servers
themselves.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Literal

import grpc
from cassandra.policies import ExponentialReconnectionPolicy
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from grpc_health.v1 import health_pb2, health_pb2_grpc

from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketinfra.cassandra import connect
from marketinfra.kafka import make_admin, make_consumer
from marketinfra.schema import apply_schema
from marketinfra.settings import CassandraSettings, KafkaSettings
from mdgw.drills.report import (
    NO_ANSWER,
    SERVING,
    DrillCounts,
    FeedHandlerFigures,
    HealthChange,
)
from mdgw.drills.venue import TickerVenue
from mdgw.localinfra import LocalInfraSettings, down, status, up

DrillKind = Literal["cassandra-outage", "kafka-outage"]

_SERVER = {"cassandra-outage": "cassandra", "kafka-outage": "kafka"}
_PARTITIONS = 8
_HEALTH_POLL_S = 0.5
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class DrillRefused(Exception):
    """The servers are not the local ones of ``MDGW_INFRA_HOME``: nothing was stopped."""


class DrillFailed(Exception):
    """A service died or never got ready: the drill could not run to its end."""


@dataclass(frozen=True, slots=True)
class DrillPlan:
    kind: DrillKind
    outage_s: float
    rate_per_s: float = 50.0
    products: int = 4
    before_s: float = 10.0  # ticks flowing before the server is stopped
    after_s: float = 20.0  # and after it is back
    ready_timeout_s: float = 300.0  # guards (a busy machine is slow, never this slow)
    settle_timeout_s: float = 900.0
    # for the services; None: their own defaults
    delivery_timeout_ms: int | None = None
    reconnect_base_delay_s: float | None = None
    reconnect_max_delay_s: float | None = None
    keep: bool = False  # keep the drill's topics and keyspace for a look afterwards
    work_dir: Path = Path(".mdgw/drills")


@dataclass
class _Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    health_port: int

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()


def check_local_servers(
    infra: LocalInfraSettings, kafka: KafkaSettings, cassandra: CassandraSettings
) -> None:
    """Refuse unless the services' addresses are the servers ``mdgw infra`` runs from this
    home (loopback, its ports, running): the drill stops and starts those, and only those."""
    expected_kafka = f"127.0.0.1:{infra.kafka_port}"
    if kafka.bootstrap_servers.replace("localhost", "127.0.0.1") != expected_kafka:
        raise DrillRefused(
            f"KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}, but the Kafka of "
            f"MDGW_INFRA_HOME={infra.resolved_home()} listens on {expected_kafka}"
        )
    if set(cassandra.hosts()) - _LOOPBACK or cassandra.port != infra.cassandra_port:
        raise DrillRefused(
            f"Cassandra is {cassandra.contact_points}:{cassandra.port}, but the Cassandra of "
            f"MDGW_INFRA_HOME={infra.resolved_home()} listens on 127.0.0.1:{infra.cassandra_port}"
        )
    for server in status(infra):
        if server.state != "ready":
            raise DrillRefused(
                f"{server.name} of MDGW_INFRA_HOME={infra.resolved_home()} is {server.state}: "
                "run `mdgw infra up` first"
            )


def default_schedule_gives_up_after_s(base_s: float, max_s: float) -> float:
    """How long the driver's default ExponentialReconnectionPolicy (64 attempts) would retry
    at these delays before giving up for good: what a drill must outlast."""
    return float(sum(islice(ExponentialReconnectionPolicy(base_s, max_s).new_schedule(), 1000)))


class _HealthWatch:
    """Polls readiness and liveness of every service; records each change."""

    def __init__(self, ports: Mapping[str, int], started: float) -> None:
        self._ports = dict(ports)
        self._started = started
        self.changes: list[HealthChange] = []
        self._last: dict[tuple[str, str], str] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="drill-health", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def status(self, service: str, probe: str) -> str | None:
        with self._lock:
            return self._last.get((service, probe))

    def _run(self) -> None:
        channels = {
            name: grpc.insecure_channel(f"127.0.0.1:{port}") for name, port in self._ports.items()
        }
        try:
            while not self._stop.is_set():
                for name, channel in channels.items():
                    stub = health_pb2_grpc.HealthStub(channel)
                    for probe in ("readiness", "liveness"):
                        self._record(name, probe, _check(stub, probe))
                self._stop.wait(_HEALTH_POLL_S)
        finally:
            for channel in channels.values():
                channel.close()

    def _record(self, service: str, probe: str, now_status: str) -> None:
        with self._lock:
            if self._last.get((service, probe)) == now_status:
                return
            self._last[(service, probe)] = now_status
            at_s = time.monotonic() - self._started
            self.changes.append(HealthChange(round(at_s, 1), service, probe, now_status))


def _check(stub: health_pb2_grpc.HealthStub, service: str) -> str:
    try:
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    except grpc.RpcError:
        return NO_ANSWER
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Drill:
    plan: DrillPlan
    infra: LocalInfraSettings
    kafka: KafkaSettings
    cassandra: CassandraSettings
    say: Callable[[str], None] = print
    drill_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def topic(self) -> str:
        return f"drill.{self.drill_id}.ticks"

    @property
    def dlq(self) -> str:
        return f"drill.{self.drill_id}.dlq"

    @property
    def keyspace(self) -> str:
        return f"drill_{self.drill_id}"

    @property
    def group(self) -> str:
        return f"drill.{self.drill_id}.writer"

    def run(self) -> DrillCounts:
        check_local_servers(self.infra, self.kafka, self.cassandra)
        work = self.plan.work_dir / self.drill_id
        work.mkdir(parents=True, exist_ok=True)
        admin = make_admin(self.kafka)
        self._create_topics(admin)
        cassandra = self.cassandra.model_copy(update={"keyspace": self.keyspace})
        cluster, session = connect(cassandra, use_keyspace=False)
        apply_schema(session, cassandra)
        cluster.shutdown()
        try:
            return asyncio.run(self._run(work))
        finally:
            up(self.infra)  # whatever happened, the servers run again
            if not self.plan.keep:
                self._clean_up(admin)

    # -- the run -------------------------------------------------------------------------

    async def _run(self, work: Path) -> DrillCounts:
        plan = self.plan
        products = [f"DRILL{n}-USD" for n in range(plan.products)]
        venue = TickerVenue(products, plan.rate_per_s)
        await venue.start()
        services: dict[str, _Service] = {}
        started = time.monotonic()
        watch: _HealthWatch | None = None
        try:
            for name, args, env in self._service_specs(venue.url, products):
                services[name] = self._spawn(name, args, env, work)
            watch = _HealthWatch({n: s.health_port for n, s in services.items()}, started)
            watch.start()
            self.say(f"drill {self.drill_id}: services starting (logs in {work})")
            await self._until(
                "every service ready and the feed handler subscribed",
                lambda: (
                    venue.connected > 0
                    and all(watch.status(name, "readiness") == SERVING for name in services)
                ),
                services,
                plan.ready_timeout_s,
            )
            venue.start_sending()
            self.say(
                f"ticks flowing at {plan.rate_per_s:g}/s; the outage starts in {plan.before_s:g} s"
            )
            await asyncio.sleep(plan.before_s)
            server = _SERVER[plan.kind]
            outage_started = time.monotonic() - started
            self.say(f"stopping {server} for {plan.outage_s:g} s")
            await asyncio.to_thread(down, self.infra, None, [server])
            await self._sleep_watching(
                plan.outage_s - (time.monotonic() - started - outage_started), services
            )
            self.say(f"starting {server} again")
            await asyncio.to_thread(up, self.infra, only=[server])
            outage_ended = time.monotonic() - started
            backlog = asyncio.create_task(self._backlog_written(started, plan.settle_timeout_s))
            down_s = outage_ended - outage_started
            self.say(f"{server} is back after {down_s:.0f} s; ticks go on for {plan.after_s:g} s")
            await self._sleep_watching(plan.after_s, services)
            venue.stop_sending()
            await self._until(
                "every service ready again",
                lambda: all(watch.status(name, "readiness") == SERVING for name in services),
                services,
                plan.settle_timeout_s,
            )
            ready_again = time.monotonic() - started
            await asyncio.sleep(2 * _HEALTH_POLL_S)  # a change just after is seen too
            health = list(watch.changes)  # up to here: stopping the services changes them
            feed = await self._stop_feed_handler(services["feedhandler"], plan.settle_timeout_s)
            caught_up = await self._until_written(services, started, plan.settle_timeout_s)
            kafka_records, kafka_ticks = await asyncio.to_thread(self._read_topic)
            rows, row_ticks = await asyncio.to_thread(self._read_rows)
            dead_letters = await asyncio.to_thread(self._count_dead_letters)
            backlog_written = await backlog
            reasons = {name: _unready_reasons(service) for name, service in services.items()}
        finally:
            if watch is not None:
                watch.stop()
            for service in services.values():
                _terminate(service.process)
            await venue.stop()
        return DrillCounts(
            kind=plan.kind,
            outage_s=outage_ended - outage_started,
            sent=venue.sent,
            feed=feed,
            kafka_records=kafka_records,
            kafka_unique=len(kafka_ticks),
            cassandra_rows=rows,
            cassandra_unique=len(row_ticks),
            cassandra_matches_kafka=row_ticks == kafka_ticks,
            dead_letters=dead_letters,
            outage_started_s=outage_started,
            outage_ended_s=outage_ended,
            health=health,
            ready_again_s=ready_again,
            writer_caught_up_s=caught_up,
            backlog_written_s=backlog_written,
            reasons=reasons,
        )

    def _service_specs(
        self, venue_url: str, products: list[str]
    ) -> list[tuple[str, list[str], dict[str, str]]]:
        plan = self.plan
        common = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "CASSANDRA_CONTACT_POINTS": self.cassandra.contact_points,
            "CASSANDRA_PORT": str(self.cassandra.port),
            "CASSANDRA_KEYSPACE": self.keyspace,
            "LOG_FORMAT": "json",
            "METRICS_PORT": "0",
        }
        if plan.reconnect_base_delay_s is not None:
            common["CASSANDRA_RECONNECT_BASE_DELAY_S"] = str(plan.reconnect_base_delay_s)
        if plan.reconnect_max_delay_s is not None:
            common["CASSANDRA_RECONNECT_MAX_DELAY_S"] = str(plan.reconnect_max_delay_s)
        feed = {
            **common,
            "FEEDHANDLER_VENUE": "coinbase",
            "FEEDHANDLER_URL": venue_url,
            "FEEDHANDLER_SYMBOLS": ",".join(products),
            "FEEDHANDLER_CHANNELS": "ticker",
            "FEEDHANDLER_TICKS_TOPIC": self.topic,
            "FEEDHANDLER_FEED_HANDLER_ID": f"drill.{self.drill_id}",
            "FEEDHANDLER_STATS_INTERVAL_MS": "1000",
            # the venue is quiet while the drill settles: no reconnect for that
            "FEEDHANDLER_SILENCE_TIMEOUT_S": "3600",
            "FEEDHANDLER_STOP_TIMEOUT_S": str(max(60.0, plan.settle_timeout_s / 2)),
        }
        if plan.delivery_timeout_ms is not None:
            feed["KAFKA_DELIVERY_TIMEOUT_MS"] = str(plan.delivery_timeout_ms)
        writer = {
            **common,
            "TICKWRITER_CONSUME": "ticks",
            "TICKWRITER_TICKS_TOPIC": self.topic,
            "TICKWRITER_DLQ_TOPIC": self.dlq,
            "TICKWRITER_GROUP_ID": self.group,
            "TICKWRITER_GRPC_PORT": "0",
        }
        gateway = {
            **common,
            "GATEWAY_INSECURE": "true",
            "GATEWAY_PORT": str(_free_port()),
            "GATEWAY_TICKS_TOPIC": self.topic,
            "GATEWAY_TRADING": "off",
        }
        return [
            ("feedhandler", ["feed"], feed),
            ("tickwriter", ["tickwriter"], writer),
            ("gateway", ["gateway", "--workers", "1"], gateway),
        ]

    def _spawn(self, name: str, args: list[str], env: dict[str, str], work: Path) -> _Service:
        health_port = _free_port()
        log_path = work / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "mdgw", *args],
                env={**os.environ, **env, "HEALTH_PORT": str(health_port)},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        return _Service(name, process, log_path, health_port)

    async def _until(
        self,
        what: str,
        condition: Callable[[], bool],
        services: Mapping[str, _Service],
        timeout_s: float,
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            self._all_alive(services, what)
            if time.monotonic() > deadline:
                raise DrillFailed(f"gave up after {timeout_s:g} s waiting for {what}")
            await asyncio.sleep(0.2)

    async def _sleep_watching(self, seconds: float, services: Mapping[str, _Service]) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._all_alive(services, "the drill's end")
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    @staticmethod
    def _all_alive(services: Mapping[str, _Service], what: str) -> None:
        for service in services.values():
            if service.process.poll() is not None:
                tail = "\n".join(service.log_lines()[-20:])
                raise DrillFailed(
                    f"{service.name} exited ({service.process.returncode}) before {what}:\n{tail}"
                )

    async def _stop_feed_handler(self, service: _Service, timeout_s: float) -> FeedHandlerFigures:
        service.process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(service.process.wait, timeout_s)
        for line in reversed(service.log_lines()):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == "feedhandler_stopped":
                return FeedHandlerFigures(
                    ticks=int(entry["ticks"]),
                    accepted=int(entry["accepted"]),
                    delivery_errors={
                        k: int(v) for k, v in entry["delivery_errors_by_code"].items()
                    },
                    unacknowledged=int(entry["unacknowledged"]),
                    dropped={k: int(v) for k, v in entry["dropped"].items()},
                    exit_code=exit_code,
                )
        raise DrillFailed(f"the feed handler logged no feedhandler_stopped (exit {exit_code})")

    async def _until_written(
        self, services: Mapping[str, _Service], started: float, timeout_s: float
    ) -> float:
        """Until the writer has committed every record on the topic (it commits only what it
        wrote); returns when, in seconds of the run."""
        lookup = make_consumer(self.kafka, self.group)
        try:
            partitions = [TopicPartition(self.topic, p) for p in range(_PARTITIONS)]
            ends = {p.partition: lookup.get_watermark_offsets(p, timeout=30)[1] for p in partitions}

            def done() -> bool:
                positions = lookup.committed(partitions, timeout=30)
                return all(
                    ends[tp.partition] == 0 or tp.offset >= ends[tp.partition] for tp in positions
                )

            live = {k: v for k, v in services.items() if k != "feedhandler"}
            await self._until("the tick writer to write every record", done, live, timeout_s)
            return time.monotonic() - started
        finally:
            lookup.close()

    async def _backlog_written(self, started: float, timeout_s: float) -> float | None:
        """When the writer had committed everything on Kafka as the server came back."""
        lookup = make_consumer(self.kafka, self.group)
        try:
            partitions = [TopicPartition(self.topic, p) for p in range(_PARTITIONS)]
            ends = await asyncio.to_thread(
                lambda: {
                    p.partition: lookup.get_watermark_offsets(p, timeout=30)[1] for p in partitions
                }
            )
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                positions = await asyncio.to_thread(lookup.committed, partitions, timeout=30)
                if all(
                    ends[tp.partition] == 0 or tp.offset >= ends[tp.partition] for tp in positions
                ):
                    return time.monotonic() - started
                await asyncio.sleep(0.5)
            return None
        finally:
            lookup.close()

    # -- counting ------------------------------------------------------------------------

    def _read_topic(self) -> tuple[int, set[tuple[str, int]]]:
        consumer: Consumer = make_consumer(
            self.kafka, f"drill.{self.drill_id}.count", {"enable.partition.eof": True}
        )
        try:
            partitions = [TopicPartition(self.topic, p) for p in range(_PARTITIONS)]
            ends = {
                p.partition: consumer.get_watermark_offsets(p, timeout=30)[1] for p in partitions
            }
            consumer.assign(
                [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in ends if ends[p]]
            )
            waiting = {p for p, end in ends.items() if end}
            records = 0
            ticks: set[tuple[str, int]] = set()
            while waiting:
                for message in consumer.consume(num_messages=1000, timeout=1.0):
                    if message.error() is not None:
                        continue
                    records += 1
                    tick = PriceUpdate.FromString(message.value() or b"")
                    ticks.add((tick.symbol, tick.feed_sequence))
                    if (message.offset() or 0) + 1 >= ends[message.partition() or 0]:
                        waiting.discard(message.partition() or 0)
            return records, ticks
        finally:
            consumer.close()

    def _read_rows(self) -> tuple[int, set[tuple[str, int]]]:
        cassandra = self.cassandra.model_copy(update={"keyspace": self.keyspace})
        cluster, session = connect(cassandra)
        try:
            rows = 0
            ticks: set[tuple[str, int]] = set()
            for row in session.execute("SELECT payload FROM tick_data", timeout=120):
                rows += 1
                tick = PriceUpdate.FromString(row.payload)
                ticks.add((tick.symbol, tick.feed_sequence))
            return rows, ticks
        finally:
            cluster.shutdown()

    def _count_dead_letters(self) -> int:
        consumer = make_consumer(self.kafka, f"drill.{self.drill_id}.count")
        try:
            total = 0
            for partition in range(_PARTITIONS):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.dlq, partition), timeout=30
                )
                total += high - low
            return total
        finally:
            consumer.close()

    # -- set-up and clean-up ---------------------------------------------------------------

    def _create_topics(self, admin: AdminClient) -> None:
        futures = admin.create_topics(
            [
                NewTopic(name, num_partitions=_PARTITIONS, replication_factor=1)
                for name in (self.topic, self.dlq)
            ]
        )
        for future in futures.values():
            future.result(timeout=60)
        deadline = time.monotonic() + 60
        for name in (self.topic, self.dlq):
            while True:  # created is not yet usable: wait for every partition's leader
                topic = admin.list_topics(name, timeout=30).topics.get(name)
                if (
                    topic is not None
                    and topic.error is None
                    and len(topic.partitions) == _PARTITIONS
                    and all(p.leader >= 0 for p in topic.partitions.values())
                ):
                    break
                if time.monotonic() > deadline:
                    raise DrillFailed(f"topic {name} has no leaders after 60 s")
                time.sleep(0.2)

    def _clean_up(self, admin: AdminClient) -> None:
        for future in admin.delete_topics([self.topic, self.dlq]).values():
            try:
                future.result(timeout=60)
            except Exception as exc:  # noqa: BLE001 - clean-up: say so, go on
                self.say(f"could not delete a drill topic: {exc}")
        cassandra = self.cassandra.model_copy(update={"keyspace": self.keyspace})
        cluster, session = connect(cassandra, use_keyspace=False)
        try:
            session.execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}", timeout=120)
        finally:
            cluster.shutdown()


def _unready_reasons(service: _Service) -> list[str]:
    reasons: list[str] = []
    for line in service.log_lines():
        if '"readiness_changed"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        reason = f"{entry.get('condition')}: {entry.get('reason')}"
        if entry.get("met") is False and reason not in reasons:
            reasons.append(reason)
    return reasons


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
