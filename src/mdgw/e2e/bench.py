"""``mdgw bench e2e``: one tick's way through the whole pipeline, open loop, per hop.

A venue (``mdgw.e2e.venue``) sends ITCH trades on a fixed schedule, each stamped with its due
time; a real feed handler (``mdgw feed``, SoupBinTCP), Kafka, the tick writer into Cassandra
and one gateway process (``mdgw gateway``) carry them; N StreamPrices clients
(``mdgw.e2e.clients``) receive them. Every service is a subprocess of its own on ephemeral
ports, against the running Kafka and Cassandra, on a topic pair and a keyspace of this run
(deleted at the end). Latency is measured from the stamps each message carries, so a stall
anywhere counts from the tick's due time (no coordinated omission):

- venue event -> feed receipt, feed receipt -> Kafka record time (the topic stamps
  LogAppendTime: the broker's append, millisecond precision), from a side consumer;
- Kafka record time -> gateway send, gateway send -> client, feed receipt -> client, venue
  event -> client, from what the clients received;
- feed receipt -> Cassandra write (``writetime()`` of each row, microseconds).

Beside each case, the raw ceilings in the same run (``mdgw.e2e.ceilings``): a bare producer ->
consumer on the same broker with records of the same size at the same rate, and a bare
grpc.aio server streaming the same bytes at the same rate to the same number of clients.
Then a bisection for the highest rate whose feed receipt -> client p99 meets the target.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import grpc
import orjson
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hdrh.histogram import HdrHistogram

from feedhandlers.config import FeedHandlerSettings
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketinfra.cassandra import connect
from marketinfra.kafka import make_admin, make_consumer, take_waiting
from marketinfra.schema import apply_schema
from marketinfra.settings import CassandraSettings, KafkaSettings
from mdgw.e2e.ceilings import new_histogram
from mdgw.e2e.report import Goal, HopSummary, Search, goal_met, summarize, within
from mdgw.machine import describe_machine

SOURCE_ROOT = Path(__file__).resolve().parents[2]
EXCHANGE = "NASDAQ"  # the ITCH parser's exchange
_PARTITIONS = 16
_NEW_YORK = ZoneInfo("America/New_York")
PIPELINE_HOPS = (
    ("venue_receipt", "venue event -> feed receipt"),
    ("receipt_kafka", "feed receipt -> Kafka record"),
    ("kafka_send", "Kafka record -> gateway send"),
    ("send_client", "gateway send -> client"),
    ("receipt_client", "feed receipt -> client"),
    ("event_client", "venue event -> client"),
    ("receipt_cassandra", "feed receipt -> Cassandra"),
)
CEILING_HOPS = (
    ("bare_produce_consume", "bare produce -> consume"),
    ("bare_send_client", "bare server send -> client"),
    ("bare_event_client", "bare due time -> client"),
)
# pipeline hop -> its raw ceiling: the Kafka leg (produce, broker, fetch; the pipeline adds the
# feed handler before and the gateway's decode and fan-out after) and the gRPC leg
CEILING_OF = {"receipt_kafka_send": "bare_produce_consume", "send_client": "bare_send_client"}
GOALS = (
    Goal("feed -> client at 1000/s to 10", "receipt_client", 3.0, 10.0),
    Goal("feed -> client at 100/s to 100", "receipt_client", 3.0, 10.0),
    Goal("feed -> Cassandra", "receipt_cassandra", 12.0, 35.0),
)
GOAL_CASES = {GOALS[0].name: (1000.0, 10), GOALS[1].name: (100.0, 100)}


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "e2e", help="open-loop latency venue -> feed -> Kafka -> gateway/Cassandra, per hop"
    )
    parser.add_argument(
        "--cases",
        default="100:100,1000:10,10000:10",
        help="comma-separated RATE:SUBSCRIBERS (ticks/s : StreamPrices clients)",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per case")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time per case")
    parser.add_argument("--symbols", type=int, default=10, help="instruments, taking turns")
    parser.add_argument("--search", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--search-subscribers", type=int, default=10)
    parser.add_argument("--search-seconds", type=float, default=3.0)
    parser.add_argument("--search-max", type=float, default=20000.0, help="highest rate tried")
    parser.add_argument("--search-steps", type=int, default=5, help="most rates tried")
    parser.add_argument(
        "--search-resolution", type=float, default=100.0, help="ticks/s at which it stops"
    )
    parser.add_argument("--p99-target-ms", type=float, default=10.0)
    parser.add_argument(
        "--ceilings", action=argparse.BooleanOptionalAction, default=True, help="raw ceilings"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--gateway-source",
        type=Path,
        help="run the gateway from this source tree's src/ (compare two versions, same run)",
    )
    parser.set_defaults(handler=run)


# -- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path | None = None

    def fail(self, what: str) -> None:
        tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path else ""
        raise RuntimeError(f"{self.name} exited ({self.popen.returncode}) before {what}\n{tail}")

    def alive_or_fail(self, what: str) -> None:
        if self.popen.poll() is not None:
            self.fail(what)


def _env(source_root: Path, extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(source_root), "LOG_FORMAT": "json", **extra}


@contextmanager
def service(
    name: str, args: list[str], env: dict[str, str], logs: Path, source_root: Path = SOURCE_ROOT
) -> Iterator[Process]:
    """``python -m ARGS`` with its log in ``logs``; SIGTERM (then SIGKILL) at the end."""
    log_path = logs / f"{name}.log"
    with log_path.open("wb") as log_file:
        popen = subprocess.Popen(
            [sys.executable, "-m", *args],
            env=_env(source_root, env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Process(name, popen, log_path)
    finally:
        _stop(popen)


@contextmanager
def controlled(name: str, args: list[str], logs: Path) -> Iterator[Process]:
    """``python -m ARGS`` driven by lines on stdin, answering on stdout."""
    log_file = (logs / f"{name}.log").open("wb")
    popen = subprocess.Popen(
        [sys.executable, "-m", *args],
        env=_env(SOURCE_ROOT, {}),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log_file,
    )
    try:
        yield Process(name, popen, logs / f"{name}.log")
    finally:
        if popen.stdin is not None and popen.poll() is None:
            with contextlib.suppress(OSError):
                popen.stdin.close()  # end of input: it stops by itself
        _stop(popen)
        log_file.close()


def _stop(popen: subprocess.Popen[bytes]) -> None:
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=60)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


def say(process: Process, line: str) -> None:
    stdin: IO[bytes] | None = process.popen.stdin
    assert stdin is not None  # controlled() opens it
    stdin.write((line + "\n").encode())
    stdin.flush()


def hear(process: Process, what: str) -> str:
    stdout: IO[bytes] | None = process.popen.stdout
    assert stdout is not None
    line = stdout.readline().decode()
    if not line:
        process.popen.wait()
        process.fail(what)
    return line.strip()


def _health(port: int, name: str) -> int | None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=name), timeout=2
            )
        except grpc.RpcError:
            return None
    return int(reply.status)


def until_ready(process: Process, health_port: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while _health(health_port, "readiness") != health_pb2.HealthCheckResponse.SERVING:
        process.alive_or_fail("it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.name} not ready after {timeout_s:.0f} s")
        time.sleep(0.2)


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return ""


# each service's own per-hop histograms (its /metrics), whose counts the report shows
SERVICE_HISTOGRAMS = {
    "feed": (
        "feedhandler_event_receipt_latency_seconds",
        "feedhandler_receipt_ack_latency_seconds",
    ),
    "tickwriter": ("tickwriter_receipt_written_latency_seconds",),
    "gateway": ("gateway_record_send_latency_seconds", "gateway_receipt_send_latency_seconds"),
}


def service_histograms(ports: dict[str, int]) -> dict[str, dict[str, float]]:
    """Observation count and mean (ms) of each service's per-hop histograms, as scraped."""
    found: dict[str, dict[str, float]] = {}
    for service_name, names in SERVICE_HISTOGRAMS.items():
        text = scrape(ports[service_name])
        for name in names:
            total = _sample_sum(text, f"{name}_count")
            seconds = _sample_sum(text, f"{name}_sum")
            found[name] = {"count": total, "mean_ms": seconds / total * 1000 if total else 0.0}
    return found


def _sample_sum(text: str, sample: str) -> float:
    """The sum over labels of one sample's values in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name.split("{", 1)[0] == sample:
            total += float(rest.split()[0])
    return total


def placement(processes: dict[str, int]) -> dict[str, str]:
    """pid and the CPUs each may run on (``os.sched_getaffinity``)."""
    placed = {}
    for name, pid in processes.items():
        try:
            cpus = sorted(os.sched_getaffinity(pid))
        except OSError:
            cpus = []
        placed[name] = f"pid {pid}, cpus {','.join(map(str, cpus)) or '?'}"
    return placed


# -- the side consumer: every tick's Kafka record time ------------------------------------------


class RecordTimes:
    """Reads the run's ticks topic from its end: per tick (symbol, feed_sequence) its record
    timestamp, its receipt and event time."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self._consumer = make_consumer(
            kafka, f"e2e-side-{uuid.uuid4().hex[:8]}", {"fetch.wait.max.ms": 10}
        )
        metadata = self._consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        assignment = []
        for partition in partitions:
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10
            )
            assignment.append(TopicPartition(topic, partition, high))
        self._consumer.assign(assignment)
        self.ticks: dict[tuple[str, int], tuple[int, int, int]] = {}  # -> record, receipt, event
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="e2e-side-consumer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in take_waiting(self._consumer, 1000, 0.1):
                value = message.value()
                if message.error() is not None or not value:
                    continue
                update = PriceUpdate.FromString(value)
                record_ns = message.timestamp()[1] * 1_000_000
                self.ticks[(update.symbol, update.feed_sequence)] = (
                    record_ns,
                    update.received_time_ns,
                    update.event_time_ns,
                )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()


# -- one case ---------------------------------------------------------------------------------


@dataclass
class CaseResult:
    rate: float
    subscribers: int
    seconds: float
    ticks: int
    delivered_min: int = 0  # fewest window ticks one stream got (conflated or lost: fewer)
    written: int = 0
    hops: dict[str, HopSummary] = field(default_factory=dict)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    message_bytes: int = 0


@dataclass
class Pipeline:
    venue: Process
    target: str
    symbols: list[str]
    records: RecordTimes
    cassandra_session: Any
    logs: Path
    pids: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)


def _decode(encoded: object) -> HdrHistogram:
    return HdrHistogram.decode(str(encoded).encode())


def _clients(
    name: str, target: str, symbols: list[str], subscribers: int, logs: Path, stack: ExitStack
) -> list[tuple[Process, int]]:
    """Client processes of up to 50 streams each, so 100 clients are not one process's loop."""
    groups = [min(50, subscribers - n) for n in range(0, subscribers, 50)]
    started = []
    for index, count in enumerate(groups):
        args = ["mdgw.e2e.clients", "--target", target, "--symbols", ",".join(symbols)]
        args += ["--exchange", EXCHANGE, "--subscribers", str(count)]
        started.append((stack.enter_context(controlled(f"{name}-{index}", args, logs)), count))
    for process, _ in started:
        if hear(process, "its streams were open") != "subscribed":
            process.fail("its streams were open")
    return started


def _collect(
    clients: list[tuple[Process, int]], start_ns: int, end_ns: int
) -> list[dict[str, Any]]:
    for process, _ in clients:
        say(process, f"stop {start_ns} {end_ns}")
    return [orjson.loads(hear(process, "its figures")) for process, _ in clients]


def _merge(results: list[dict[str, Any]], key: str) -> HdrHistogram:
    merged = new_histogram()
    for result in results:
        merged.add(_decode(result[key]))
    return merged


def run_case(
    pipeline: Pipeline, rate: float, subscribers: int, seconds: float, warmup: float
) -> CaseResult:
    result = CaseResult(rate, subscribers, seconds, 0, load_before=os.getloadavg())
    with ExitStack() as stack:
        clients = _clients(
            "clients", pipeline.target, pipeline.symbols, subscribers, pipeline.logs, stack
        )
        say(pipeline.venue, f"run {rate} {warmup + seconds}")
        words = hear(pipeline.venue, "its run ended").split()
        total, venue_start_ns = int(words[1]), int(words[2])
        start_ns = venue_start_ns + int(warmup * 1e9)
        end_ns = venue_start_ns + int((warmup + seconds) * 1e9)
        result.ticks = total - round(warmup * rate)
        _drain(pipeline, start_ns, end_ns, result.ticks)
        outputs = _collect(clients, start_ns, end_ns)
    counts = [count for output in outputs for count in output["counts"]]
    result.delivered_min = min(counts, default=0)
    result.message_bytes = max(int(output["message_bytes"]) for output in outputs)
    for key in ("send_client", "receipt_client", "event_client"):
        result.hops[key] = summarize(_merge(outputs, key))
    venue_receipt, receipt_kafka, kafka_send, receipt_kafka_send = (
        new_histogram() for _ in range(4)
    )
    ticks = pipeline.records.ticks
    in_window = {k: v for k, v in list(ticks.items()) if start_ns <= v[2] < end_ns}
    for record_ns, received_ns, event_ns in in_window.values():
        venue_receipt.record_value(max(1, received_ns - event_ns))
        receipt_kafka.record_value(max(1, record_ns - received_ns))
    for symbol, sequence, send_ns in outputs[0]["first_stream"]:
        known = in_window.get((symbol, sequence))
        if known is not None:
            kafka_send.record_value(max(1, send_ns - known[0]))
            receipt_kafka_send.record_value(max(1, send_ns - known[1]))
    result.hops["venue_receipt"] = summarize(venue_receipt)
    result.hops["receipt_kafka"] = summarize(receipt_kafka)
    result.hops["kafka_send"] = summarize(kafka_send)
    result.hops["receipt_kafka_send"] = summarize(receipt_kafka_send)
    cassandra, result.written = _cassandra_hop(pipeline, start_ns, end_ns, result.ticks)
    result.hops["receipt_cassandra"] = summarize(cassandra)
    result.load_after = os.getloadavg()
    return result


def _drain(
    pipeline: Pipeline, start_ns: int, end_ns: int, expected: int, idle_s: float = 5.0
) -> None:
    """Until the side consumer saw every window tick, or nothing new came for ``idle_s``; then
    a moment for the streams' last messages."""
    seen, last_change = -1, time.monotonic()
    while time.monotonic() - last_change < idle_s:
        now_seen = sum(
            1 for v in list(pipeline.records.ticks.values()) if start_ns <= v[2] < end_ns
        )
        if now_seen >= expected:
            break
        if now_seen != seen:
            seen, last_change = now_seen, time.monotonic()
        time.sleep(0.2)
    time.sleep(1.0)


def _trade_dates(start_ns: int) -> set[str]:
    moment = datetime.fromtimestamp(start_ns / 1e9, tz=UTC)
    return {moment.date().isoformat(), moment.astimezone(_NEW_YORK).date().isoformat()}


def _cassandra_hop(
    pipeline: Pipeline, start_ns: int, end_ns: int, expected: int
) -> tuple[HdrHistogram, int]:
    """writetime() of each row of the window against its receipt; waits (a while) for the
    tick writer to have written them all."""
    query = (
        "SELECT received_time_ns, event_time_ns, writetime(payload) FROM tick_data "
        "WHERE exchange = %s AND symbol = %s AND trade_date = %s"
    )
    deadline = time.monotonic() + 30
    while True:
        rows = []
        for symbol in pipeline.symbols:
            for trade_date in _trade_dates(start_ns):
                rows += [
                    row
                    for row in pipeline.cassandra_session.execute(
                        query, (EXCHANGE, symbol, trade_date)
                    )
                    if start_ns <= row[1] < end_ns
                ]
        if len(rows) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    histogram = new_histogram()
    for received_ns, _, written_us in rows:
        histogram.record_value(max(1, written_us * 1000 - received_ns))
    return histogram, len(rows)


# -- ceilings ---------------------------------------------------------------------------------


def run_ceilings(
    case: CaseResult, kafka_topic: str, symbols: list[str], logs: Path, linger_ms: float
) -> None:
    args = [sys.executable, "-m", "mdgw.e2e.ceilings", "kafka", "--rate", str(case.rate)]
    args += ["--seconds", str(case.seconds), "--topic", kafka_topic]
    args += ["--size", str(max(64, case.message_bytes - 20)), "--linger-ms", str(linger_ms)]
    done = subprocess.run(args, env=_env(SOURCE_ROOT, {}), capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"kafka ceiling failed:\n{done.stderr.decode()[-3000:]}")
    kafka = orjson.loads(done.stdout.decode().strip().splitlines()[-1])
    case.hops["bare_produce_consume"] = summarize(_decode(kafka["produce_consume"]))
    with ExitStack() as stack:
        server_args = ["mdgw.e2e.ceilings", "grpc", "--rate", str(case.rate)]
        server_args += ["--seconds", str(case.seconds), "--subscribers", str(case.subscribers)]
        server_args += ["--symbols", ",".join(symbols)]
        server = stack.enter_context(controlled("bare-grpc", server_args, logs))
        port = int(hear(server, "it listened").split()[1])
        clients = _clients(
            "bare-clients", f"127.0.0.1:{port}", symbols, case.subscribers, logs, stack
        )
        words = hear(server, "its run ended").split()
        start_ns = int(words[2])
        time.sleep(1.0)  # the streams' last messages
        outputs = _collect(clients, start_ns, start_ns + int(case.seconds * 1e9) + 1)
    case.hops["bare_send_client"] = summarize(_merge(outputs, "send_client"))
    case.hops["bare_event_client"] = summarize(_merge(outputs, "event_client"))


# -- the run ------------------------------------------------------------------------------------


def _parse_cases(text: str) -> list[tuple[float, int]]:
    cases = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        rate, _, subscribers = item.partition(":")
        cases.append((float(rate), int(subscribers or "1")))
    return cases


def _create_topics(kafka: KafkaSettings, names: list[str]) -> None:
    admin = make_admin(kafka)
    config = {"message.timestamp.type": "LogAppendTime", "retention.ms": str(3_600_000)}
    futures = admin.create_topics(
        [
            NewTopic(name, num_partitions=_PARTITIONS, replication_factor=1, config=config)
            for name in names
        ]
    )
    for future in futures.values():
        future.result(30)
    deadline = time.monotonic() + 30
    while not set(names) <= set(admin.list_topics(timeout=10).topics):  # visible everywhere
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics {names} not visible after 30 s")
        time.sleep(0.2)


def _delete_topics(kafka: KafkaSettings, names: list[str]) -> None:
    admin = make_admin(kafka)  # held until the futures are done: its end cancels them
    for future in admin.delete_topics(names).values():
        try:
            future.result(30)
        except Exception as exc:  # noqa: BLE001  # cleanup: report, do not mask the result
            print(f"could not delete a topic: {exc}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    kafka, cassandra_base = KafkaSettings(), CassandraSettings()
    suffix = uuid.uuid4().hex[:8]
    ticks_topic, dlq_topic, ceiling_topic = (
        f"bench.e2e.{suffix}.{n}" for n in ("ticks", "dlq", "bare")
    )
    keyspace = f"bench_e2e_{suffix}"
    cassandra = cassandra_base.model_copy(update={"keyspace": keyspace})
    symbols = [f"Z{suffix[:4].upper()}{n:03d}" for n in range(args.symbols)]
    linger_ms = FeedHandlerSettings().linger_ms
    logs = Path(tempfile.mkdtemp(prefix="mdgw-bench-e2e-"))
    report: dict[str, Any] = {
        "machine": describe_machine(),
        "load_before": os.getloadavg(),
        "settings": {
            "symbols": args.symbols,
            "partitions": _PARTITIONS,
            "feed_linger_ms": linger_ms,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "gateway_source": str(args.gateway_source) if args.gateway_source else "this tree",
        },
    }
    print(f"machine: {report['machine']}; load average before {_load(report['load_before'])}")
    _create_topics(kafka, [ticks_topic, dlq_topic, ceiling_topic])
    cluster, session = connect(cassandra, use_keyspace=False)
    apply_schema(session, cassandra)
    session.set_keyspace(keyspace)
    cases: list[CaseResult] = []
    searched: list[CaseResult] = []
    try:
        with ExitStack() as stack:
            pipeline = _start(
                stack, args, kafka, cassandra, ticks_topic, dlq_topic, symbols, logs, session
            )
            report["placement"] = placement(pipeline.pids | {"bench": os.getpid()})
            for rate, subscribers in _parse_cases(args.cases):
                case = run_case(pipeline, rate, subscribers, args.seconds, args.warmup)
                if args.ceilings:
                    run_ceilings(case, ceiling_topic, symbols, logs, linger_ms)
                cases.append(case)
                _print_case(case, args.p99_target_ms)
            if args.search:
                searched = _search(pipeline, args, cases)
            report["service_histograms"] = service_histograms(pipeline.metrics_ports)
            pipeline.records.stop()
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
        cluster.shutdown()
        _delete_topics(kafka, [ticks_topic, dlq_topic, ceiling_topic])
    report["load_after"] = os.getloadavg()
    report["cases"] = [_case_json(case) for case in cases]
    report["search"] = [_case_json(case) for case in searched]
    report["goals"] = _goals(cases)
    report["highest_rate_p99_met"] = _highest(searched, cases, args)
    _print_summary(report, args)
    print(f"logs: {logs}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _start(
    stack: ExitStack,
    args: argparse.Namespace,
    kafka: KafkaSettings,
    cassandra: CassandraSettings,
    ticks_topic: str,
    dlq_topic: str,
    symbols: list[str],
    logs: Path,
    session: Any,
) -> Pipeline:
    common = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "CASSANDRA_CONTACT_POINTS": cassandra.contact_points,
        "CASSANDRA_PORT": str(cassandra.port),
        "CASSANDRA_KEYSPACE": cassandra.keyspace,
    }
    health = {name: free_port() for name in ("feed", "tickwriter", "gateway")}
    metrics = {name: free_port() for name in ("feed", "tickwriter", "gateway")}
    venue = stack.enter_context(
        controlled("venue", ["mdgw.e2e.venue", "--symbols", ",".join(symbols)], logs)
    )
    venue_port = int(hear(venue, "it listened").split()[1])
    feed_env = {
        **common,
        "FEEDHANDLER_VENUE": "itch",
        "FEEDHANDLER_URL": f"tcp://127.0.0.1:{venue_port}",
        "FEEDHANDLER_TICKS_TOPIC": ticks_topic,
        "FEEDHANDLER_SYMBOLS": ",".join(symbols),
        "HEALTH_PORT": str(health["feed"]),
        "METRICS_PORT": str(metrics["feed"]),
    }
    writer_env = {
        **common,
        "TICKWRITER_CONSUME": "ticks",
        "TICKWRITER_TICKS_TOPIC": ticks_topic,
        "TICKWRITER_DLQ_TOPIC": dlq_topic,
        "TICKWRITER_GROUP_ID": f"{ticks_topic}.writer",
        "TICKWRITER_GRPC_PORT": "0",
        "HEALTH_PORT": str(health["tickwriter"]),
        "METRICS_PORT": str(metrics["tickwriter"]),
    }
    gateway_port = free_port()
    gateway_env = {
        **common,
        "GATEWAY_INSECURE": "true",
        "GATEWAY_PORT": str(gateway_port),
        "GATEWAY_TICKS_TOPIC": ticks_topic,
        "GATEWAY_TRADING": "off",
        "HEALTH_PORT": str(health["gateway"]),
        "METRICS_PORT": str(metrics["gateway"]),
    }
    gateway_root = (args.gateway_source / "src") if args.gateway_source else SOURCE_ROOT
    started = {
        "feedhandler": (
            stack.enter_context(service("feedhandler", ["mdgw", "feed"], feed_env, logs)),
            health["feed"],
        ),
        "tickwriter": (
            stack.enter_context(service("tickwriter", ["mdgw", "tickwriter"], writer_env, logs)),
            health["tickwriter"],
        ),
        "gateway": (
            stack.enter_context(
                service(
                    "gateway",
                    ["mdgw", "gateway", "--insecure", "--workers", "1"],
                    gateway_env,
                    logs,
                    gateway_root,
                )
            ),
            health["gateway"],
        ),
    }
    for process, port in started.values():
        until_ready(process, port)
    records = RecordTimes(kafka, ticks_topic)
    stack.callback(records.stop)
    pipeline = Pipeline(venue, f"127.0.0.1:{gateway_port}", symbols, records, session, logs)
    pipeline.metrics_ports = metrics
    pipeline.pids = {"venue": venue.popen.pid} | {
        name: process.popen.pid for name, (process, _) in started.items()
    }
    # warm-up: every symbol has a value (a stream's snapshot), every service has seen traffic
    say(venue, f"run {max(20, len(symbols) * 4)} 1")
    hear(venue, "its warm-up run ended")
    _drain(pipeline, 0, 2**62, max(20, len(symbols) * 4), idle_s=10)
    return pipeline


def _search(
    pipeline: Pipeline, args: argparse.Namespace, cases: list[CaseResult]
) -> list[CaseResult]:
    target = args.p99_target_ms
    met = [
        c.rate for c in cases if c.subscribers == args.search_subscribers and _p99_met(c, target)
    ]
    missed = [
        c.rate
        for c in cases
        if c.subscribers == args.search_subscribers and not _p99_met(c, target)
    ]
    search = Search(max(met, default=0.0), min(missed, default=args.search_max))
    tried = []
    for _ in range(args.search_steps):
        if search.settled(args.search_resolution):
            break
        rate = search.next_rate()
        case = run_case(pipeline, rate, args.search_subscribers, args.search_seconds, args.warmup)
        tried.append(case)
        ok = _p99_met(case, target)
        p99_ms, verdict = case.hops["receipt_client"].p99_ms, "met" if ok else "missed"
        print(
            f"search: {rate:,.0f} ticks/s to {args.search_subscribers}: "
            f"feed -> client p99 {p99_ms:.2f} ms ({verdict})"
        )
        search = search.after(rate, ok)
    return tried


def _p99_met(case: CaseResult, target_ms: float) -> bool:
    hop = case.hops.get("receipt_client")
    return bool(hop and hop.count and hop.p99_ms <= target_ms and case.delivered_min >= case.ticks)


def _highest(
    searched: list[CaseResult], cases: list[CaseResult], args: argparse.Namespace
) -> float:
    return max(
        (
            c.rate
            for c in [*cases, *searched]
            if c.subscribers == args.search_subscribers and _p99_met(c, args.p99_target_ms)
        ),
        default=0.0,
    )


def _goals(cases: list[CaseResult]) -> list[dict[str, Any]]:
    results = []
    for goal in GOALS:
        wanted = GOAL_CASES.get(goal.name)
        for case in cases:
            if wanted is not None and (case.rate, case.subscribers) != wanted:
                continue
            summary = case.hops.get(goal.hop)
            met = goal_met(goal, summary) if summary is not None else None
            results.append(
                {"goal": goal.name, "case": f"{case.rate:g}/s x {case.subscribers}", "met": met}
            )
            if wanted is not None:
                break
    for case in cases:
        for hop, ceiling in CEILING_OF.items():
            figure, bare = case.hops.get(hop), case.hops.get(ceiling)
            if figure is not None and bare is not None:
                results.append(
                    {
                        "goal": f"{hop} within 2x of {ceiling}",
                        "case": f"{case.rate:g}/s x {case.subscribers}",
                        "met": within(2.0, figure, bare),
                    }
                )
    return results


def _case_json(case: CaseResult) -> dict[str, Any]:
    data = asdict(case)
    data["hops"] = {name: asdict(summary) for name, summary in case.hops.items()}
    return data


def _load(load: tuple[float, float, float] | list[float]) -> str:
    return " ".join(f"{value:.2f}" for value in load)


def _print_case(case: CaseResult, target_ms: float) -> None:
    print(
        f"\n{case.rate:,.0f} ticks/s to {case.subscribers} StreamPrices clients, "
        f"{case.seconds:g} s: "
        f"{case.ticks} ticks, fewest delivered to one stream {case.delivered_min}, "
        f"{case.written} rows written; load {_load(case.load_before)} -> {_load(case.load_after)}"
    )
    print(f"  {'hop':34} {'p50 ms':>8} {'p90':>8} {'p99':>8} {'p99.9':>8} {'max':>9} {'count':>8}")
    labels = (
        dict(PIPELINE_HOPS)
        | dict(CEILING_HOPS)
        | {"receipt_kafka_send": "feed receipt -> gateway send"}
    )
    order = (
        [k for k, _ in PIPELINE_HOPS[:3]]
        + ["receipt_kafka_send"]
        + [k for k, _ in PIPELINE_HOPS[3:]]
        + [k for k, _ in CEILING_HOPS]
    )
    for key in order:
        summary = case.hops.get(key)
        if summary is not None:
            print(f"  {labels[key]:34} {summary.row()}")


def _print_summary(report: dict[str, Any], args: argparse.Namespace) -> None:
    print("\ngoals:")
    for goal in report["goals"]:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[goal["met"]]
        print(f"  {goal['goal']:58} {goal['case']:16} {verdict}")
    if args.search:
        print(
            f"highest rate with feed -> client p99 <= {args.p99_target_ms:g} ms to "
            f"{args.search_subscribers} clients (every tick delivered): "
            f"{report['highest_rate_p99_met']:,.0f} ticks/s"
        )
    print("each service's own histograms (Prometheus, whole run):")
    for name, figures in report.get("service_histograms", {}).items():
        print(f"  {name:46} {figures['count']:>9,.0f} observed, mean {figures['mean_ms']:.2f} ms")
    for name, where in report.get("placement", {}).items():
        print(f"  {name:12} {where}")
    print(
        f"load average before {_load(report['load_before'])}, after {_load(report['load_after'])}"
    )
