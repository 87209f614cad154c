"""``mdgw bench <part>``: each benchmark prints its figure beside a raw-library ceiling
measured in the same run, and the machine it ran on; ``mdgw bench fuzz`` runs the fuzz suite
long and prints what it tried and found."""

from __future__ import annotations

import argparse
from typing import Any

from feedhandlers import bench as feedhandlers_bench
from gateway import bench as gateway_bench
from gateway import trading_bench
from mdgw.commands import fuzz
from mdgw.e2e import bench as e2e_bench
from tickwriter import bench as tickwriter_bench


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks against the real servers")
    parts = parser.add_subparsers(dest="part", metavar="PART", required=True)
    feedhandlers_bench.register(parts)
    tickwriter_bench.register(parts)
    gateway_bench.register(parts)
    trading_bench.register(parts)
    fuzz.register(parts)
    e2e_bench.register(parts)
