"""``mdgw topics apply | list``: the Kafka topics declared in marketinfra.topics."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from marketinfra.errors import InfraError
from marketinfra.kafka import cluster_metadata, make_admin
from marketinfra.settings import KafkaSettings
from marketinfra.topics import ALL_TOPICS, apply_topics


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("topics", help="Kafka topics")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    apply = actions.add_parser("apply", help="create or align the declared topics (idempotent)")
    apply.set_defaults(handler=run_apply)
    listing = actions.add_parser("list", help="show the declared topics and what they carry")
    listing.set_defaults(handler=run_list)


def run_apply(_args: argparse.Namespace) -> int:
    settings = KafkaSettings()
    admin = make_admin(settings)
    try:
        cluster_metadata(admin, settings)
        changes = apply_topics(admin, ALL_TOPICS, settings.replication_factor)
    except InfraError as exc:
        print(f"mdgw topics: {exc}", file=sys.stderr)
        return 1
    for change in changes:
        suffix = f" ({change.detail})" if change.detail else ""
        print(f"{change.topic}: {change.kind}{suffix}")
    return 0


def run_list(_args: argparse.Namespace) -> int:
    for spec in ALL_TOPICS:
        days = spec.retention_ms // 86_400_000
        print(
            f"{spec.name:<20} {spec.partitions:>3} partitions  {days:>3} days  "
            f"key={spec.key}  value={spec.value}"
        )
    return 0
