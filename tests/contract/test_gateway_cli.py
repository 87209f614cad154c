"""``mdgw quote``, ``mdgw stream`` and ``mdgw certs`` against a real server (fake feed)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from financial.marketdata.v2.prices_pb2 import PriceUpdate, QuoteResponse
from gateway import app, cli
from gateway.client import rpc_error_text
from gateway.config import GatewaySettings
from gateway.fakes import ManualFeed, MemoryQuoteStore, decoded
from gateway.market import MarketData
from tests.support import price_update, proto

SOURCE_ROOT = str(Path(__file__).resolve().parents[2] / "src")
NOW_NS = 1_763_650_800_000_000_000  # 2025-11-20 15:00 UTC


def _tick(symbol: str, n: int) -> PriceUpdate:
    # bid 152.370000001 for n = 1: finer than a micro, printed exactly
    return price_update(
        exchange="NASDAQ", symbol=symbol, bid_nanos=152_370_000_000 + n, ask="152.40",
        last="152.38", bid_size="100", event_time_ns=NOW_NS + n, feed_handler_id="cli",
        feed_sequence=n,
    )  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mdgw")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.fixture
async def port(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    feeds: list[ManualFeed] = []

    def feed_factory(market: MarketData, loop: asyncio.AbstractEventLoop) -> ManualFeed:
        feeds.append(ManualFeed(market, loop))
        market.apply(decoded([_tick("AAPL", 1), _tick("MSFT", 2)]))
        return feeds[0]

    gateway = await app.start(
        GatewaySettings(insecure=True, port=0, trading="off"),
        store=MemoryQuoteStore(),
        feed_factory=feed_factory,
    )
    monkeypatch.setenv("GATEWAY_CLIENT_TARGET", f"127.0.0.1:{gateway.port}")
    monkeypatch.setenv("GATEWAY_CLIENT_INSECURE", "true")
    yield gateway.port
    await app.stop(gateway)


async def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    code: int = await asyncio.to_thread(args.handler, args)
    return code


async def test_quote_prints_a_readable_quote(port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert await _run(["quote", "AAPL"]) == 0
    out = capsys.readouterr().out
    assert "AAPL on NASDAQ  (live, trade date 2025-11-20)" in out
    assert "bid 152.370000001 x 100" in out
    assert "last 152.38" in out


async def test_quote_of_an_unknown_symbol_says_not_found(
    port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _run(["quote", "NOPE"]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err


async def test_stream_prints_one_line_per_update_when_piped(
    port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _run(["stream", "AAPL", "MSFT", "--count", "2"]) == 0
    # (structlog is not configured in tests, so the server's log lines share stdout)
    lines = [line for line in capsys.readouterr().out.splitlines() if "] stream_" not in line]
    assert len(lines) == 2
    assert lines[0].split()[:3] == ["1", "AAPL", "NASDAQ"]
    assert lines[1].split()[:2] == ["2", "MSFT"]


def test_price_table_shows_symbols_still_waiting() -> None:
    table = cli.price_table(["AAPL", "TSLA"], {("AAPL", "NASDAQ"): _tick("AAPL", 3)})
    assert table.row_count == 2


def test_quote_format_shows_the_change_from_the_previous_close() -> None:
    text = cli.format_quote(
        proto(QuoteResponse, latest=_tick("AAPL", 1), prev_close="150", open="0.000000001")
    )
    assert "change +2.38 (+1.58%)" in text
    assert "open 0.000000001" in text


def test_prices_print_at_the_venues_precision_never_through_float() -> None:
    # the example of a price finer than a micro: "0.000022880" prints 0.00002288
    update = price_update(
        exchange="KRAKEN", symbol="ADA-BTC", bid="0.000022880", ask="0.000022900",
        last="0.000022890", event_time_ns=NOW_NS, stream_sequence=1,
    )  # fmt: skip
    assert "bid   0.00002288 ask   0.00002290 last   0.00002289" in cli.format_update_line(
        update, cli.PriceDecimals().observe(update)
    )
    text = cli.format_quote(QuoteResponse(latest=update))
    assert "bid 0.00002288" in text
    assert "ask 0.0000229 " in text  # a one-off answer: exactly the digits, trailing zeros dropped


def test_a_stream_keeps_each_instruments_decimals() -> None:
    decimals = cli.PriceDecimals()
    first = price_update(exchange="K", symbol="A-B", bid="0.00002288", ask="0.00002290")
    later = price_update(exchange="K", symbol="A-B", bid="0.00002200", ask="0.00002300")
    other = price_update(exchange="N", symbol="AAPL", bid="189.5", ask="189.51")
    assert decimals.observe(first) == 8
    assert decimals.observe(later) == 8  # 0.00002200, not 0.000022
    assert decimals.observe(other) == 2  # per instrument
    assert (cli.significant_decimals(1), cli.significant_decimals(10**9)) == (9, 0)


def test_certs_writes_a_ca_server_and_client_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parser().parse_args(["certs", "--dir", str(tmp_path / "certs")])
    assert args.handler(args) == 0
    names = sorted(p.name for p in (tmp_path / "certs").iterdir())
    assert names == ["ca.pem", "client-key.pem", "client.pem", "server-key.pem", "server.pem"]
    assert (tmp_path / "certs" / "server-key.pem").stat().st_mode & 0o777 == 0o600
    assert "GATEWAY_TLS_CERT_FILE=" in capsys.readouterr().out


async def test_gateway_with_bad_configuration_exits_with_one_clear_line() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": SOURCE_ROOT,
        "LOG_FORMAT": "json",
        "GATEWAY_INSECURE": "true",
        "GATEWAY_ADDRESS": "0.0.0.0",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", env=env, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        _, stderr = await process.communicate()
    assert process.returncode == 2
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert [entry["event"] for entry in lines] == ["gateway_config_invalid"]
    assert "loopback only" in lines[0]["problems"]


# -- a TLS mismatch is one line that says what to change ------------------------------------


@pytest.mark.parametrize(
    ("details", "insecure", "hint"),
    [
        (
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50051: "
            "Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:100000f7:SSL "
            "routines:OPENSSL_internal:WRONG_VERSION_NUMBER: Invalid certificate verification "
            "context: OK",
            False,
            "pass --insecure here too",
        ),
        (
            "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:50051: "
            "Socket closed",
            True,
            "leave out --insecure",
        ),
    ],
)
def test_a_tls_mismatch_gives_a_hint_not_the_handshake_error(
    details: str, insecure: bool, hint: str
) -> None:
    error = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details
    )
    text = rpc_error_text(error, insecure=insecure)
    assert hint in text
    assert "SSL_ERROR" not in text
    assert "ipv4" not in text
    assert "\n" not in text


async def test_mdgw_quote_without_insecure_against_a_plaintext_gateway_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    monkeypatch.delenv("GATEWAY_CLIENT_INSECURE", raising=False)
    try:
        args = _parser().parse_args(["quote", "AAPL", "--target", f"127.0.0.1:{port}"])
        assert await asyncio.to_thread(args.handler, args) == 1
    finally:
        await server.stop(0)
    err = capsys.readouterr().err
    assert err.startswith("mdgw quote: UNAVAILABLE: the gateway does not answer in TLS")
    assert "--insecure" in err
    assert "SSL_ERROR" not in err
