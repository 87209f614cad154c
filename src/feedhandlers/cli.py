"""``mdgw feed`` (a live venue or a replayed capture into ``ticks.raw``) and ``mdgw simulate``.

Flags override the FEEDHANDLER_* environment; everything else (Kafka, logging, metrics
port) comes from the environment as for every service.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any, get_args

from feedhandlers.config import FeedHandlerSettings, Venue

_FLAG_SETTINGS = {
    "venue": "venue",
    "symbols": "symbols",
    "channels": "channels",
    "url": "url",
    "topic": "ticks_topic",
    "feed_handler_id": "feed_handler_id",
}


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    feed = subparsers.add_parser(
        "feed",
        help="run a feed handler: a venue (or a recorded capture) normalized into ticks.raw",
        description="Connect to a venue and produce normalized PriceUpdates to Kafka, or "
        "replay a recorded WebSocket capture. Flags override FEEDHANDLER_* variables.",
    )
    feed.add_argument("--venue", choices=get_args(Venue), help="(FEEDHANDLER_VENUE)")
    feed.add_argument("--symbols", help="BASE-QUOTE,... (FEEDHANDLER_SYMBOLS)")
    feed.add_argument("--channels", help="venue channels,... (FEEDHANDLER_CHANNELS)")
    feed.add_argument("--url", help="WebSocket URL (FEEDHANDLER_URL; default: the venue's)")
    feed.add_argument("--topic", help="Kafka topic (FEEDHANDLER_TICKS_TOPIC; ticks.raw)")
    feed.add_argument("--feed-handler-id", help="(FEEDHANDLER_FEED_HANDLER_ID)")
    feed.add_argument("--replay", type=Path, metavar="FILE", help="replay this capture instead")
    feed.add_argument(
        "--speed",
        default="1",
        help="replay speed: 1 recorded, 10 ten times faster, max as fast as possible",
    )
    feed.set_defaults(handler=_run_feed)

    simulate = subparsers.add_parser(
        "simulate",
        help="serve a synthetic exchange feed on 127.0.0.1: Coinbase WebSocket or FIX 4.4",
    )
    simulate.add_argument("--venue", choices=["coinbase", "fix", "itch"], default="coinbase")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8765, help="0: any free port")
    simulate.add_argument(
        "--symbols",
        default="10",
        help="a count (SIM0-USD, SIM1-USD, ...) or a list BTC-USD,ETH-USD",
    )
    simulate.add_argument("--rate", type=float, default=100.0, help="market events per second")
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument(
        "--mold-to", metavar="HOST:PORT", help="itch: also send MoldUDP64 datagrams there"
    )
    simulate.set_defaults(handler=_run_simulate)


def _settings(args: argparse.Namespace, **extra: object) -> FeedHandlerSettings:
    overrides: dict[str, Any] = {
        setting: getattr(args, flag)
        for flag, setting in _FLAG_SETTINGS.items()
        if getattr(args, flag, None) is not None
    }
    overrides.update(extra)
    return FeedHandlerSettings(**overrides)


def parse_speed(text: str) -> float:
    if text.lower() in ("max", "0"):
        return 0.0
    speed = float(text)
    if speed <= 0:
        raise ValueError(f"speed must be positive or 'max': {text}")
    return speed


def _run_feed(args: argparse.Namespace) -> int:
    from feedhandlers import app  # imported here: `mdgw --help` needs no Kafka client

    if args.replay is None:
        return app.main(_settings(args))
    from feedhandlers.replay import ReplayPace, capture_venue

    path: Path = args.replay
    if not path.is_file():
        print(f"mdgw feed: no such capture: {path}", file=sys.stderr)
        return 2
    try:
        pace = ReplayPace(parse_speed(args.speed))
    except ValueError as exc:
        print(f"mdgw feed: {exc}", file=sys.stderr)
        return 2
    extra: dict[str, object] = {}
    venue = args.venue or capture_venue(path)
    if venue is None:
        print(f"mdgw feed: cannot tell the venue of {path}: give --venue", file=sys.stderr)
        return 2
    extra["venue"] = venue
    if venue == "itch" and args.symbols is None:
        extra["symbols"] = "*"  # a whole ITCH file: every stock in it
    return app.replay_main(_settings(args, **extra), path, pace)


def simulated_symbols(spec: str) -> list[str]:
    if spec.isdigit():
        return [f"SIM{n}-USD" for n in range(int(spec))]
    return [item.strip().upper() for item in spec.split(",") if item.strip()]


def _run_simulate(args: argparse.Namespace) -> int:
    from feedhandlers.simulator.coinbase_feed import CoinbaseFeed
    from feedhandlers.simulator.fix_acceptor import FixAcceptor
    from feedhandlers.simulator.itch_feed import ItchFeed, MoldUdp64Sender, SoupBinTcpServer
    from feedhandlers.simulator.ws_server import SimulatorServer
    from marketinfra.logging import configure_logging
    from marketinfra.settings import LogSettings

    configure_logging(LogSettings())
    symbols = simulated_symbols(args.symbols)
    if not symbols:
        print("mdgw simulate: no symbols", file=sys.stderr)
        return 2
    server: SimulatorServer | FixAcceptor | SoupBinTcpServer
    mold: MoldUdp64Sender | None = None
    scheme = "tcp"
    if args.venue == "fix":
        server = FixAcceptor(symbols, args.rate, seed=args.seed, host=args.host)
    elif args.venue == "itch":
        feed = ItchFeed(symbols, seed=args.seed)
        server = SoupBinTcpServer(feed, args.rate, args.host)
        if args.mold_to:
            host, _, port = args.mold_to.rpartition(":")
            mold = MoldUdp64Sender(feed, args.rate, (host, int(port)))
    else:
        server = SimulatorServer(CoinbaseFeed(symbols, seed=args.seed), args.rate, args.host)
        scheme = "ws"

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        port = await server.start(args.port)
        url = f"{scheme}://{args.host}:{port}"
        print(f"simulating {len(symbols)} symbols at {args.rate:g} events/s on {url}")
        if mold is not None:
            await mold.start()
            print(f"sending MoldUDP64 to udp://{args.mold_to}")
        print(f"  mdgw feed --venue {args.venue} --url {url} --symbols {','.join(symbols[:3])}")
        sys.stdout.flush()
        with contextlib.suppress(asyncio.CancelledError):
            await stop.wait()
        if mold is not None:
            await mold.stop()
        await server.stop()

    asyncio.run(run())
    return 0
