"""``mdgw tickwriter``, ``mdgw replay`` and ``mdgw dlq replay``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from marketinfra.kafka import make_admin, make_consumer, make_producer
from tickwriter.config import TickWriterSettings
from tickwriter.errors import TickWriterError
from tickwriter.replay_time import parse_replay_time


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    run = subparsers.add_parser(
        "tickwriter", help="run the tick writer (Kafka -> Cassandra, TickWriterService)"
    )
    run.add_argument(
        "--insecure",
        action="store_true",
        help="TickWriterService in plaintext on loopback (dev only); default: TLS and tokens",
    )
    run.set_defaults(handler=_run)

    replay = subparsers.add_parser(
        "replay", help="rewind a consumer group to a time so a window is written again"
    )
    replay.add_argument("--group", required=True, help="the consumer group (e.g. tickwriter)")
    replay.add_argument(
        "--from", dest="since", required=True, help="ISO time (UTC if no offset) or 15m, 2h, 1d"
    )
    replay.add_argument(
        "--topic", action="append", help="topic(s) to rewind (default: the tick writer's topics)"
    )
    replay.set_defaults(handler=_run_replay)

    dlq = subparsers.add_parser("dlq", help="the dead-letter topic")
    dlq_actions = dlq.add_subparsers(dest="action", metavar="ACTION", required=True)
    dlq_replay = dlq_actions.add_parser(
        "replay", help="send dead-lettered records back to their topic once fixed"
    )
    dlq_replay.add_argument("--limit", type=int, default=1_000_000)
    dlq_replay.add_argument("--group", default="tickwriter-dlq-replay")
    dlq_replay.set_defaults(handler=_run_dlq_replay)


def _run(args: argparse.Namespace) -> int:
    from tickwriter.app import main  # imported here: the other commands need no Cassandra

    return main({"grpc_insecure": True} if args.insecure else None)


def _run_replay(args: argparse.Namespace) -> int:
    settings = TickWriterSettings()
    try:
        when = parse_replay_time(args.since, datetime.now(tz=UTC))
    except ValueError as exc:
        print(f"mdgw replay: {exc}", file=sys.stderr)
        return 2
    topics = args.topic or list(settings.consumed_topics())
    from tickwriter.adapters.replay import reset_group_to_time

    lookup = make_consumer(settings.kafka, f"{args.group}.replay-lookup")
    try:
        resets = reset_group_to_time(make_admin(settings.kafka), lookup, args.group, topics, when)
    except TickWriterError as exc:
        print(f"mdgw replay: {exc}", file=sys.stderr)
        return 1
    finally:
        lookup.close()
    print(f"group {args.group} rewound to {when.isoformat()} on {len(resets)} partitions:")
    for reset in resets:
        print(f"  {reset.topic}[{reset.partition}] -> offset {reset.new_offset}")
    print("start the tick writer: the window is rewritten (rows are idempotent)")
    return 0


def _run_dlq_replay(args: argparse.Namespace) -> int:
    from tickwriter.adapters.replay import replay_dead_letters

    settings = TickWriterSettings()
    consumer = make_consumer(settings.kafka, args.group)
    producer = make_producer(settings.kafka)
    try:
        result = replay_dead_letters(consumer, producer, settings.dlq_topic, args.limit)
    except TickWriterError as exc:
        print(f"mdgw dlq replay: {exc}", file=sys.stderr)
        return 1
    print(f"replayed {result.replayed} dead letters: {result.by_topic}")
    return 0
