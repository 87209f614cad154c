"""``mdgw schema apply``: the keyspace and tables of cql/, idempotently."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from marketinfra.cassandra import connect
from marketinfra.errors import InfraError
from marketinfra.schema import apply_schema
from marketinfra.settings import CassandraSettings


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("schema", help="Cassandra keyspace and tables")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    apply = actions.add_parser("apply", help="create the keyspace and tables of cql/ (idempotent)")
    apply.add_argument("--keyspace", help="override CASSANDRA_KEYSPACE")
    apply.set_defaults(handler=run_apply)


def run_apply(args: argparse.Namespace) -> int:
    overrides = {"keyspace": args.keyspace} if args.keyspace else {}
    settings = CassandraSettings(**overrides)
    try:
        cluster, session = connect(settings, use_keyspace=False)
    except InfraError as exc:
        print(f"mdgw schema: {exc}", file=sys.stderr)
        return 1
    try:
        applied = apply_schema(session, settings)
    except InfraError as exc:
        print(f"mdgw schema: {exc}", file=sys.stderr)
        return 1
    finally:
        cluster.shutdown()
    sources = sorted({item.source for item in applied})
    print(
        f"schema applied to keyspace {settings.keyspace}: "
        f"{len(applied)} statements from {', '.join(sources)}"
    )
    return 0
