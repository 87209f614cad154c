"""``mdgw gateway``, ``mdgw stream``, ``mdgw quote`` and ``mdgw certs``.

The client commands connect as ``GATEWAY_CLIENT_*`` says (target, token, TLS files); flags
override the target and TLS mode. ``mdgw stream`` redraws a table in a terminal and prints one
line per update when its output is piped.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.live import Live
from rich.table import Table

from financial.marketdata.v2.common_pb2 import Decimal
from financial.marketdata.v2.prices_pb2 import PriceUpdate, QuoteResponse, QuoteSource
from gateway import trading_cli
from gateway.client import GatewayClient, rpc_error_text
from gateway.config import ClientSettings
from gateway.errors import GatewayError
from marketcore.fixed_point import NANOS_PER_UNIT, format_nanos
from marketinfra.decimal_codec import decimal_nanos

DEFAULT_CERT_DIR = Path(".mdgw/certs")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    run = subparsers.add_parser("gateway", help="run the market-data gateway (gRPC)")
    run.add_argument("--insecure", action="store_true", help="plaintext on loopback (dev only)")
    run.add_argument("--port", type=int, help="listen port (default GATEWAY_PORT, 50051)")
    run.add_argument("--address", help="listen address (default GATEWAY_ADDRESS, 127.0.0.1)")
    run.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes sharing the port (SO_REUSEPORT), supervised; default: one per core",
    )
    run.set_defaults(handler=_run_gateway)

    stream = subparsers.add_parser("stream", help="live prices from the gateway")
    stream.add_argument("symbols", nargs="+", metavar="SYMBOL")
    stream.add_argument("--exchange", default="", help="one exchange (default: every exchange)")
    stream.add_argument("--throttle-ms", type=int, default=0, help="at most one update per window")
    stream.add_argument("--count", type=int, default=0, help="stop after this many updates")
    stream.add_argument(
        "--plain",
        action="store_true",
        help="one update per message (StreamPrices) instead of batches (StreamPriceBatches)",
    )
    _client_flags(stream)
    stream.set_defaults(handler=_run_stream)

    quote = subparsers.add_parser("quote", help="latest quote and the day's range")
    quote.add_argument("symbol", metavar="SYMBOL")
    quote.add_argument("--exchange", default="")
    _client_flags(quote)
    quote.set_defaults(handler=_run_quote)
    trading_cli.register(subparsers)  # mdgw order, mdgw trade

    certs = subparsers.add_parser("certs", help="make development TLS certificates")
    certs.add_argument("--dir", type=Path, default=DEFAULT_CERT_DIR, help="where to write them")
    certs.add_argument("--client-name", default="dev-client", help="client certificate name")
    certs.set_defaults(handler=_run_certs)


def _client_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", help="host:port (default GATEWAY_CLIENT_TARGET)")
    parser.add_argument(
        "--insecure", action="store_true", help="plaintext, to a gateway run with --insecure"
    )


def _client_settings(args: argparse.Namespace) -> ClientSettings:
    overrides: dict[str, Any] = {}
    if args.target:
        overrides["target"] = args.target
    if args.insecure:
        overrides["insecure"] = True
    return ClientSettings(**overrides)


def _client(args: argparse.Namespace) -> GatewayClient:
    return GatewayClient.from_settings(_client_settings(args))


def _given_client_flags(args: argparse.Namespace) -> list[str]:
    """The connection flags of this command line, to repeat in a command we suggest."""
    flags = ["--target", args.target] if args.target else []
    return [*flags, "--insecure"] if args.insecure else flags


def _run_gateway(args: argparse.Namespace) -> int:
    from gateway.app import main  # imported here: the client commands need no Kafka or Cassandra

    overrides: dict[str, Any] = {}
    if args.insecure:
        overrides["insecure"] = True
    if args.port is not None:
        overrides["port"] = args.port
    if args.address:
        overrides["address"] = args.address
    if args.workers < 1:
        print("mdgw gateway: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers == 1:
        return main(overrides)
    return _supervise(args.workers, overrides)


def _supervise(workers: int, overrides: dict[str, Any]) -> int:
    import uvloop
    from pydantic import ValidationError

    from gateway.config import GatewaySettings
    from gateway.metrics import SUPERVISOR_REGISTRY
    from gateway.workers import Supervisor
    from marketinfra.logging import configure_logging
    from marketinfra.metrics import start_metrics_endpoint

    try:  # refuse a bad configuration once, here, not in a restart loop of every worker
        settings = GatewaySettings(**overrides)
    except ValidationError as exc:
        print(f"mdgw gateway: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if settings.port == 0:
        print("mdgw gateway: --workers needs a fixed port (workers share it)", file=sys.stderr)
        return 2
    configure_logging(settings.log)
    start_metrics_endpoint(settings.metrics, SUPERVISOR_REGISTRY)
    environment = {f"GATEWAY_{name.upper()}": str(value) for name, value in overrides.items()}
    if settings.trading == "off":
        supervisor = Supervisor(workers, environment, settings.metrics.port)
        return uvloop.run(supervisor.run())
    # worker 0 owns trading; the others reach it here (a private directory: mode 0700)
    with tempfile.TemporaryDirectory(prefix="mdgw-trading-") as private:
        socket_path = Path(private) / "trading.sock"
        supervisor = Supervisor(
            workers, environment, settings.metrics.port, trading_socket=socket_path
        )
        return uvloop.run(supervisor.run())


def _failed(
    command: str, exc: grpc.aio.AioRpcError | GatewayError, args: argparse.Namespace | None = None
) -> int:
    print(f"mdgw {command}: {_error_text(exc, args)}", file=sys.stderr)
    return 1


def _error_text(exc: grpc.aio.AioRpcError | GatewayError, args: argparse.Namespace | None) -> str:
    """One line: the status and its details, or what to change when TLS did not match."""
    if not isinstance(exc, grpc.aio.AioRpcError):
        return str(exc)
    insecure = args is not None and _client_settings(args).insecure
    return rpc_error_text(exc, insecure=insecure)


# -- quote ------------------------------------------------------------------------------------


def _run_quote(args: argparse.Namespace) -> int:
    async def fetch() -> QuoteResponse:
        async with _client(args) as client:
            return await client.get_quote(args.symbol, args.exchange)

    try:
        quote = asyncio.run(fetch())
    except (grpc.aio.AioRpcError, GatewayError) as exc:
        return _failed("quote", exc, args)
    print(format_quote(quote))
    return 0


def _price(value: Decimal, min_decimals: int = 2) -> str:
    nanos = decimal_nanos(value)
    return format_nanos(nanos, min_decimals=min_decimals) if nanos else "-"


def _size(value: Decimal) -> str:
    nanos = decimal_nanos(value)
    return format_nanos(nanos, min_decimals=0) if nanos else "-"


class PriceDecimals:
    """The most decimals each instrument's prices have shown so far (at least 2): a stream
    prints every price of an instrument with as many, so its column does not change width
    when a price ends in zeros (0.00002288 then 0.00002290, not 0.0000229)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], int] = {}

    def observe(self, update: PriceUpdate) -> int:
        key = (update.symbol, update.exchange)
        decimals = self._seen.get(key, 2)
        for value in (update.bid, update.ask, update.last):
            decimals = max(decimals, significant_decimals(decimal_nanos(value)))
        self._seen[key] = decimals
        return decimals


def significant_decimals(nanos: int) -> int:
    """How many decimals ``nanos`` needs to be written exactly (0 to 9)."""
    fraction = abs(nanos) % NANOS_PER_UNIT
    if not fraction:
        return 0
    return 9 - (len(str(fraction)) - len(str(fraction).rstrip("0")))


def _time(time_ns: int) -> str:
    if not time_ns:
        return "-"
    moment = dt.datetime.fromtimestamp(time_ns // 1_000_000_000, tz=dt.UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{time_ns % 1_000_000_000 // 1000:06d}Z"


def format_quote(quote: QuoteResponse) -> str:
    latest = quote.latest
    source = {QuoteSource.QUOTE_SOURCE_MEMORY: "live", QuoteSource.QUOTE_SOURCE_STORE: "stored"}
    lines = [
        f"{latest.symbol} on {latest.exchange}  ({source.get(quote.source, '?')}, "
        f"trade date {quote.trade_date or '-'})",
        f"  bid {_price(latest.bid)} x {_size(latest.bid_size)}   "
        f"ask {_price(latest.ask)} x {_size(latest.ask_size)}   "
        f"last {_price(latest.last)} x {_size(latest.last_size)}",
        f"  open {_price(quote.open)}  high {_price(quote.day_high)}  "
        f"low {_price(quote.day_low)}  prev close {_price(quote.prev_close)}",
    ]
    bid, ask, last = (decimal_nanos(v) for v in (latest.bid, latest.ask, latest.last))
    reference = last or ((bid + ask) // 2 if bid and ask else 0)
    prev_close = decimal_nanos(quote.prev_close)
    if prev_close and reference:
        change = reference - prev_close
        basis_points = change * 10_000 // prev_close
        sign = "+" if change >= 0 else "-"
        lines[-1] += (
            f"  change {sign}{format_nanos(abs(change))} "
            f"({sign}{abs(basis_points) // 100}.{abs(basis_points) % 100:02d}%)"
        )
    lines.append(f"  event time {_time(latest.event_time_ns)}")
    return "\n".join(lines)


# -- stream -----------------------------------------------------------------------------------


def _run_stream(args: argparse.Namespace) -> int:
    console = Console()
    try:
        asyncio.run(_stream(args, console))
    except (grpc.aio.AioRpcError, GatewayError) as exc:
        return _failed("stream", exc, args)
    return 0


async def _stream(args: argparse.Namespace, console: Console) -> None:
    latest: dict[tuple[str, str], PriceUpdate] = {}
    decimals = PriceDecimals()
    received = 0
    async with _client(args) as client:
        updates = client.stream_prices(
            args.symbols, args.exchange, args.throttle_ms, batched=not args.plain
        )
        if not console.is_terminal:
            async for update in updates:
                print(format_update_line(update, decimals.observe(update)), flush=True)
                received += 1
                if args.count and received >= args.count:
                    return
            return
        with Live(
            price_table(args.symbols, latest, decimals), console=console, refresh_per_second=8
        ) as live:
            async for update in updates:
                latest[(update.symbol, update.exchange)] = update
                live.update(price_table(args.symbols, latest, decimals))
                received += 1
                if args.count and received >= args.count:
                    return


def format_update_line(update: PriceUpdate, decimals: int = 2) -> str:
    return (
        f"{update.stream_sequence:>8} {update.symbol:<10} {update.exchange:<10} "
        f"bid {_price(update.bid, decimals):>12} ask {_price(update.ask, decimals):>12} "
        f"last {_price(update.last, decimals):>12}  {_time(update.event_time_ns)}"
    )


def price_table(
    symbols: Sequence[str],
    latest: dict[tuple[str, str], PriceUpdate],
    decimals: PriceDecimals | None = None,
) -> Table:
    table = Table(title="mdgw stream (Ctrl-C to stop)", title_justify="left")
    for name in ("symbol", "exchange", "bid", "bid size", "ask", "ask size", "last", "event time"):
        table.add_column(name, justify="left" if name in ("symbol", "exchange") else "right")
    table.add_column("seq", justify="right")
    order = {symbol: index for index, symbol in enumerate(symbols)}
    decimals = decimals or PriceDecimals()
    for (symbol, exchange), update in sorted(
        latest.items(), key=lambda item: (order.get(item[0][0], 0), item[0][1])
    ):
        places = decimals.observe(update)
        table.add_row(
            symbol,
            exchange,
            _price(update.bid, places),
            _size(update.bid_size),
            _price(update.ask, places),
            _size(update.ask_size),
            _price(update.last, places),
            _time(update.event_time_ns),
            str(update.stream_sequence),
        )
    waiting = [symbol for symbol in symbols if not any(key[0] == symbol for key in latest)]
    for symbol in waiting:
        table.add_row(symbol, "-", "-", "-", "-", "-", "-", "waiting for a tick", "")
    return table


# -- certs ------------------------------------------------------------------------------------


def _run_certs(args: argparse.Namespace) -> int:
    from gateway.devcerts import make_dev_certificates

    paths = make_dev_certificates(
        args.dir, client_name=args.client_name, now=dt.datetime.now(tz=dt.UTC)
    )
    print(f"development certificates in {paths.directory} (valid for localhost and 127.0.0.1)")
    print("gateway (TLS; add the last line for mutual TLS):")
    print(f"  GATEWAY_TLS_CERT_FILE={paths.server_cert}")
    print(f"  GATEWAY_TLS_KEY_FILE={paths.server_key}")
    print(f"  GATEWAY_TLS_CLIENT_CA_FILE={paths.ca_cert}")
    print("client (mdgw stream / mdgw quote):")
    print(f"  GATEWAY_CLIENT_CA_FILE={paths.ca_cert}")
    print(f"  GATEWAY_CLIENT_CERT_FILE={paths.client_cert}")
    print(f"  GATEWAY_CLIENT_KEY_FILE={paths.client_key}")
    return 0
