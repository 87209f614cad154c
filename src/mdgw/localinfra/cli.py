"""``mdgw infra up | down | status | logs``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from mdgw.localinfra.launcher import ServerStatus, down, log_tail, status, up
from mdgw.localinfra.layout import SERVERS, server_paths
from mdgw.localinfra.settings import LocalInfraSettings


def register_cli(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "infra", help="local Kafka and Cassandra servers (jars from Maven Central, 127.0.0.1)"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = actions.add_parser("up", help="start both servers and wait until they answer")
    start.add_argument("--fresh", action="store_true", help="wipe their data first")
    start.add_argument("--only", choices=SERVERS, action="append", help="start just this one")
    start.set_defaults(handler=_run_up)
    actions.add_parser("down", help="stop both servers").set_defaults(handler=_run_down)
    actions.add_parser("status", help="state of each server").set_defaults(handler=_run_status)
    logs = actions.add_parser("logs", help="tail a server's log")
    logs.add_argument("server", choices=SERVERS)
    logs.add_argument("-n", "--lines", type=int, default=60)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.set_defaults(handler=_run_logs)


def _progress(message: str) -> None:
    print(f"infra: {message}", file=sys.stderr, flush=True)


def _print(statuses: list[ServerStatus]) -> None:
    for item in statuses:
        pid = f"pid {item.pid}" if item.pid else "-"
        detail = f"  ({item.detail})" if item.detail else ""
        print(f"{item.name:<10} {item.state:<9} {item.address:<16} {pid}{detail}")


def _run_up(args: argparse.Namespace) -> int:
    settings = LocalInfraSettings()
    _print(up(settings, fresh=args.fresh, only=args.only or SERVERS, on_progress=_progress))
    return 0


def _run_down(_args: argparse.Namespace) -> int:
    _print(down(LocalInfraSettings(), on_progress=_progress))
    return 0


def _run_status(_args: argparse.Namespace) -> int:
    statuses = status(LocalInfraSettings())
    _print(statuses)
    return 0 if all(item.state == "ready" for item in statuses) else 3


def _run_logs(args: argparse.Namespace) -> int:
    settings = LocalInfraSettings()
    print(log_tail(settings, args.server, args.lines))
    if not args.follow:
        return 0
    path = server_paths(settings, args.server).log
    with path.open("rb") as log:
        log.seek(0, 2)
        while True:
            chunk = log.read()
            if chunk:
                sys.stdout.write(chunk.decode("utf-8", "replace"))
                sys.stdout.flush()
            else:
                time.sleep(0.5)
