"""``mdgw``: one CLI, a subcommand per job. Each command module registers its own parser
and sets ``handler``: a function of the parsed arguments returning the exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from feedhandlers import cli as feedhandlers_cli
from gateway import cli as gateway_cli
from mdgw.commands import bench, drill, k8s_topics, migrate, schema, topics
from mdgw.localinfra import LocalInfraError, register_cli
from tickwriter import cli as tickwriter_cli

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdgw", description="Market-data and trading gateway: local servers, schema, services."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register_cli(subparsers)
    schema.register(subparsers)
    topics.register(subparsers)
    k8s_topics.register(subparsers)
    feedhandlers_cli.register(subparsers)
    tickwriter_cli.register(subparsers)
    gateway_cli.register(subparsers)
    bench.register(subparsers)
    migrate.register(subparsers)
    drill.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:  # a command group given without its subcommand
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 2
    try:
        return handler(args)
    except ValidationError as exc:
        print(f"mdgw: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except LocalInfraError as exc:
        print(f"mdgw: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
