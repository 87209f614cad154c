"""``mdgw drill cassandra-outage|kafka-outage``: stop a local server for a while under a
steady stream of known ticks, start it again, and count every hop (see ``mdgw.drills``).

It stops and starts the servers of ``MDGW_INFRA_HOME`` (``mdgw infra``), so it refuses
unless the services' addresses are those servers, and runs only with ``--yes``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from marketinfra.settings import CassandraSettings, KafkaSettings
from mdgw.drills.report import problems, render
from mdgw.drills.run import (
    Drill,
    DrillFailed,
    DrillKind,
    DrillPlan,
    DrillRefused,
    check_local_servers,
    default_schedule_gives_up_after_s,
)
from mdgw.localinfra import LocalInfraSettings


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "drill", help="recovery drills: stop a local server under load, count every tick"
    )
    kinds = parser.add_subparsers(dest="drill", metavar="DRILL", required=True)
    cassandra = kinds.add_parser(
        "cassandra-outage", help="Cassandra down for --minutes while ticks flow"
    )
    cassandra.add_argument("--minutes", type=float, default=10.0)
    cassandra.add_argument(
        "--reconnect-max-delay",
        type=float,
        metavar="S",
        help="the services' CASSANDRA_RECONNECT_MAX_DELAY_S (a short schedule: the driver's "
        "default 64 attempts would give up sooner)",
    )
    cassandra.set_defaults(handler=run_cassandra)
    kafka = kinds.add_parser("kafka-outage", help="Kafka down for --seconds while ticks flow")
    kafka.add_argument("--seconds", type=float, default=150.0)
    kafka.add_argument(
        "--delivery-timeout-ms",
        type=int,
        help="the feed handler's KAFKA_DELIVERY_TIMEOUT_MS (default: its own, 120000)",
    )
    kafka.set_defaults(handler=run_kafka)
    for drill in (cassandra, kafka):
        drill.add_argument("--rate", type=float, default=50.0, help="ticks per second")
        drill.add_argument("--after", type=float, default=20.0, help="seconds of ticks after")
        drill.add_argument("--keep", action="store_true", help="keep the drill's topics, keyspace")
        drill.add_argument("--work-dir", type=Path, default=Path(".mdgw/drills"))
        drill.add_argument(
            "--yes", action="store_true", help="yes, stop and start the local servers"
        )


def run_cassandra(args: argparse.Namespace) -> int:
    base = 0.5 if args.reconnect_max_delay is None else min(0.5, args.reconnect_max_delay)
    plan = _plan(
        args,
        "cassandra-outage",
        args.minutes * 60,
        reconnect_base_delay_s=None if args.reconnect_max_delay is None else base,
        reconnect_max_delay_s=args.reconnect_max_delay,
    )
    cassandra = CassandraSettings()
    gives_up = default_schedule_gives_up_after_s(
        plan.reconnect_base_delay_s or cassandra.reconnect_base_delay_s,
        plan.reconnect_max_delay_s or cassandra.reconnect_max_delay_s,
    )
    print(
        f"with these delays the driver's default schedule (64 attempts) would give up after "
        f"{gives_up:.0f} s; the outage lasts {plan.outage_s:.0f} s"
    )
    return _run(plan, cassandra, yes=args.yes)


def run_kafka(args: argparse.Namespace) -> int:
    plan = _plan(args, "kafka-outage", args.seconds, delivery_timeout_ms=args.delivery_timeout_ms)
    return _run(plan, CassandraSettings(), yes=args.yes)


def _plan(args: argparse.Namespace, kind: DrillKind, outage_s: float, **extra: Any) -> DrillPlan:
    return DrillPlan(
        kind=kind,
        outage_s=outage_s,
        rate_per_s=args.rate,
        after_s=args.after,
        keep=args.keep,
        work_dir=args.work_dir,
        **extra,
    )


def _run(plan: DrillPlan, cassandra: CassandraSettings, *, yes: bool) -> int:
    infra, kafka = LocalInfraSettings(), KafkaSettings()
    try:
        check_local_servers(infra, kafka, cassandra)
    except DrillRefused as exc:
        print(f"mdgw drill: refused: {exc}", file=sys.stderr)
        return 2
    if not plan_confirmed(plan, infra, yes=yes):
        return 2
    try:
        counts = Drill(plan, infra, kafka, cassandra).run()
    except (DrillFailed, DrillRefused) as exc:
        print(f"mdgw drill: {exc}", file=sys.stderr)
        return 1
    print(render(counts))
    return 1 if problems(counts) else 0


def plan_confirmed(plan: DrillPlan, infra: LocalInfraSettings, *, yes: bool) -> bool:
    server = "Cassandra" if plan.kind == "cassandra-outage" else "Kafka"
    port = infra.cassandra_port if plan.kind == "cassandra-outage" else infra.kafka_port
    print(
        f"WARNING: this drill stops {server} (127.0.0.1:{port}, MDGW_INFRA_HOME="
        f"{infra.resolved_home()}) for {plan.outage_s:.0f} s: everything else using it sees "
        "the outage too.",
        file=sys.stderr,
    )
    if not yes:
        print("run it again with --yes to go ahead", file=sys.stderr)
    return yes
