"""``mdgw order`` and ``mdgw trade`` against a real grpc.aio server with trading (in-memory
feed and trading log). The commands call asyncio.run themselves, so they run in a thread."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from financial.marketdata.v2 import common_pb2 as common
from financial.marketdata.v2.orders_pb2 import OrderStatusUpdate
from gateway import cli
from marketinfra.topics import ORDERS_LIFECYCLE
from tests.contract.trading_support import (
    ALICE,
    VIEWER,
    TradingServed,
    order,
    tick,
    trading_gateway,
)
from tests.support import nanos, until


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mdgw")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


async def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    code: int = await asyncio.to_thread(args.handler, args)
    return code


def _lines(out: str, *prefixes: str) -> list[str]:
    """The command's lines about these orders (the server's log lines share stdout in tests,
    structlog being unconfigured)."""
    return [line for line in out.splitlines() if line.strip().startswith(prefixes)]


@pytest.fixture
async def served(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TradingServed]:
    async with trading_gateway() as served:
        served.feed.push([tick(100, 101, ask_size=1)])
        monkeypatch.setenv("GATEWAY_CLIENT_TARGET", served.target)
        monkeypatch.setenv("GATEWAY_CLIENT_INSECURE", "true")
        monkeypatch.setenv("GATEWAY_CLIENT_TOKEN", ALICE)
        yield served


# -- mdgw order buy|sell ----------------------------------------------------------------------


async def test_a_limit_order_is_accepted(
    served: TradingServed, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["order", "buy", "BTC-USD", "1", "--limit", "99.50", "--id", "o-1", "--tif", "GTC"]
    assert await _run(argv) == 0
    assert _lines(capsys.readouterr().out, "o-1") == [
        "o-1  SENDING  buy 1 BTC-USD limit 99.50 GTC",  # the id is known before it is sent
        "o-1  NEW  buy 1 BTC-USD limit 99.50 GTC",
    ]
    assert await _run(argv) == 0  # the same order again: answered, not placed twice
    assert "duplicate" in _lines(capsys.readouterr().out, "o-1")[1]
    placed = [
        OrderStatusUpdate.FromString(record.value)
        for record in served.records(ORDERS_LIFECYCLE.name)
    ]
    assert [(s.order_id, s.status) for s in placed] == [("o-1", common.ORDER_STATUS_NEW)]
    assert nanos(placed[0].order.limit_price) == 99_500_000_000
    assert placed[0].order.time_in_force == common.TIME_IN_FORCE_GTC


async def test_a_market_order_fills(
    served: TradingServed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _run(["order", "sell", "BTC-USD", "0.5", "--id", "m-1"]) == 0
    assert _lines(capsys.readouterr().out, "m-1") == [
        "m-1  SENDING  sell 0.5 BTC-USD at market DAY",
        "m-1  FILLED  sell 0.5 BTC-USD at market DAY",
    ]


async def test_a_rejected_order_exits_1_and_says_why(
    served: TradingServed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _run(["order", "buy", "BTC-USD", "1", "--limit", "150", "--id", "r-1"]) == 1
    _, line = _lines(capsys.readouterr().out, "r-1")
    assert line.startswith("r-1  REJECTED  buy 1 BTC-USD limit 150.00 DAY  PRICE_OUT_OF_BAND: ")


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["BTC-USD", "abc"], "quantity must be a positive number"),
        (["BTC-USD", "1", "--limit", "0"], "limit price must be a positive number"),
        (
            ["BTC-USD", "1", "--limit", "99.0000000001"],
            "limit price '99.0000000001' has more than 9 decimals",
        ),
        (["BTC-USD", "0.0000000001"], "quantity '0.0000000001' has more than 9 decimals"),
        (["BTC-USD", "1", "--id", "has space"], "order id must be"),
    ],
)
async def test_bad_input_exits_2_like_argparse(
    served: TradingServed, capsys: pytest.CaptureFixture[str], argv: list[str], problem: str
) -> None:
    assert await _run(["order", "buy", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: mdgw order buy")
    assert f"mdgw order buy: error: {problem}" in err
    assert served.log.records == []


def test_an_unknown_time_in_force_is_refused_by_argparse(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        _parser().parse_args(["order", "buy", "BTC-USD", "1", "--tif", "fok"])
    assert caught.value.code == 2
    assert "invalid choice: 'fok'" in capsys.readouterr().err


async def test_a_grpc_error_is_one_line_and_exit_1(
    served: TradingServed, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_CLIENT_TOKEN", VIEWER)  # market data only
    assert await _run(["order", "buy", "BTC-USD", "1", "--limit", "99", "--id", "p-1"]) == 1
    assert capsys.readouterr().err == (
        "mdgw order: p-1  NOT PLACED  PERMISSION_DENIED: not permitted for this account\n"
    )


# -- mdgw order cancel ------------------------------------------------------------------------


async def test_cancel_answers_about_that_order(
    served: TradingServed, capsys: pytest.CaptureFixture[str]
) -> None:
    await served.client(ALICE).submit_orders(
        [order("c-1", "buy", 1, limit=99), order("c-2", "buy", 1, limit=98)]
    )
    assert await _run(["order", "cancel", "c-1"]) == 0
    out = capsys.readouterr().out
    # the session began with both working orders (c-1 still NEW): only the answer is shown
    assert _lines(out, "c-") == [
        "c-1  CANCELLED  buy 1 BTC-USD on COINBASE limit 99.00 DAY  filled 0 of 1  "
        "cancelled on request"
    ]
    assert await _run(["order", "cancel", "c-1"]) == 1
    [line] = _lines(capsys.readouterr().out, "c-")
    assert line.startswith("c-1  CANCEL REFUSED  TOO_LATE_TO_CANCEL: ")
    assert line.endswith("(order is CANCELLED)")
    assert await _run(["order", "cancel", "nope"]) == 1
    assert "nope  CANCEL REFUSED  UNKNOWN_ORDER" in capsys.readouterr().out


async def test_a_refused_cancel_session_is_one_line_and_exit_1(
    served: TradingServed, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_CLIENT_TOKEN", VIEWER)
    assert await _run(["order", "cancel", "c-1"]) == 1
    assert capsys.readouterr().err.startswith(
        "mdgw order cancel: c-1  NOT SENT  PERMISSION_DENIED: "
    )


# -- mdgw trade -------------------------------------------------------------------------------


async def test_a_session_places_cancels_and_reports_what_still_works(
    served: TradingServed, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    script = (
        "buy BTC-USD 1 limit 99 id s-1\n"
        "buy BTC-USD 2 limit 98 gtc id s-2\n"
        "bogus\n"
        "\n"
        "cancel s-1\n"
        "buy BTC-USD 0.5 id s-3\n"
        "help\n"
        "quit\n"
        "buy BTC-USD 1 id never\n"
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO(script))
    assert await _run(["trade"]) == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    sending = _lines(captured.out, "s-1  SENDING", "s-2  SENDING", "s-3  SENDING")
    assert sending == [
        "s-1  SENDING  buy 1 BTC-USD limit 99.00 DAY",
        "s-2  SENDING  buy 2 BTC-USD limit 98.00 GTC",
        "s-3  SENDING  buy 0.5 BTC-USD at market DAY",
    ]
    assert "s-1  CANCELLING" in out
    from_server = [line for line in _lines(captured.out, "s-", "POSITION") if "SENDING" not in line]
    from_server.remove("s-1  CANCELLING")
    assert [" ".join(line.split()[:2]) for line in from_server] == [
        "s-1 NEW",
        "s-2 NEW",
        "s-1 CANCELLED",
        "s-3 NEW",
        "s-3 FILL",
        "s-3 FILLED",
        "POSITION BTC-USD",
        "s-2 NEW",  # the summary, indented
    ]
    assert (
        "s-3  FILL s-3-1  bought 0.5 BTC-USD on COINBASE at 101.00  filled 0.5, 0 left"
        in (from_server[4])
    )
    assert "long 0.5  cost 50.50" in from_server[6]
    assert "session closed; 1 order(s) still working:" in out
    assert "  s-2  NEW  buy 2 BTC-USD on COINBASE limit 98.00 GTC  filled 0 of 2" in out
    assert "cancel ORDER_ID" in captured.out  # help
    assert "error: unknown command 'bogus' (type help)" in captured.err
    assert not any("never" in line for line in out)  # nothing after quit is sent


async def test_end_of_input_closes_the_session_and_cancel_on_disconnect_cancels(
    served: TradingServed, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("buy BTC-USD 1 limit 99 id d-1\n"))
    assert await _run(["trade", "--cancel-on-disconnect"]) == 0
    out = capsys.readouterr().out
    assert "  d-1  NEW  buy 1 BTC-USD on COINBASE limit 99.00 DAY  filled 0 of 1" in out
    assert "--cancel-on-disconnect: the gateway cancels those placed in this session (d-1)" in out

    def last_status() -> int:
        updates = [
            OrderStatusUpdate.FromString(r.value) for r in served.records(ORDERS_LIFECYCLE.name)
        ]
        return updates[-1].status

    # the gateway cancels as the session closes, on its own time
    await until(lambda: last_status() == common.ORDER_STATUS_CANCELLED)


async def test_a_session_refused_by_the_gateway_exits_1(
    served: TradingServed, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_CLIENT_TOKEN", VIEWER)
    monkeypatch.setattr(sys, "stdin", io.StringIO("buy BTC-USD 1 limit 99\n"))
    assert await _run(["trade"]) == 1
    assert "mdgw trade: PERMISSION_DENIED: " in capsys.readouterr().err


async def test_a_session_that_breaks_names_each_unsettled_order_and_how_to_check(
    served: TradingServed, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served.log.failing = True  # the trading log cannot be written: the session ends UNAVAILABLE
    monkeypatch.setattr(sys, "stdin", io.StringIO("buy BTC-USD 1 limit 99 id u-1\n"))
    assert await _run(["trade"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("trading session open")
    err = err[1:]
    assert err[0].startswith("mdgw trade: UNAVAILABLE: the trading log cannot be written")
    assert err[1].startswith("mdgw trade: 1 order(s) sent in this session without a final answer")
    assert err[2] == "  u-1  OUTCOME UNKNOWN"
    assert err[3] == "    mdgw order buy BTC-USD 1 --limit 99.00 --tif day --id u-1"


async def test_reject_texts_show_exact_decimals(
    served: TradingServed, capsys: pytest.CaptureFixture[str]
) -> None:
    # Coinbase trades 0.0001 lots by default: 0.00012345 is off the lot, said exactly
    argv = ["order", "buy", "BTC-USD", "0.00012345", "--limit", "100.5", "--id", "lot-1"]
    assert await _run(argv) == 1
    assert _lines(capsys.readouterr().out, "lot-1") == [
        "lot-1  SENDING  buy 0.00012345 BTC-USD limit 100.50 DAY",
        "lot-1  REJECTED  buy 0.00012345 BTC-USD limit 100.50 DAY  INVALID_QUANTITY: "
        "quantity 0.00012345 is not a multiple of the lot 0.0001",
    ]
    argv = ["order", "buy", "BTC-USD", "1", "--limit", "100.000000001", "--id", "tick-1"]
    assert await _run(argv) == 1
    assert _lines(capsys.readouterr().out, "tick-1") == [
        "tick-1  SENDING  buy 1 BTC-USD limit 100.000000001 DAY",
        "tick-1  REJECTED  buy 1 BTC-USD limit 100.000000001 DAY  INVALID_PRICE: "
        "limit price 100.000000001 is off the tick 0.01",
    ]


async def test_a_session_on_a_sub_micro_instrument_prints_the_exact_digits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "reference.json"
    reference.write_text(
        json.dumps({"instruments": {"COINBASE|ADA-BTC": {"tick": "0.00000001", "lot": "1e-8"}}})
    )
    async with trading_gateway(reference=reference) as served:
        served.feed.push([tick("0.00002288", "0.000022900", symbol="ADA-BTC")])
        monkeypatch.setenv("GATEWAY_CLIENT_TARGET", served.target)
        monkeypatch.setenv("GATEWAY_CLIENT_INSECURE", "true")
        monkeypatch.setenv("GATEWAY_CLIENT_TOKEN", ALICE)
        script = "buy ADA-BTC 0.12345678 limit 0.00002290 id a-1\nsell ADA-BTC 0.1 id a-2\n"
        monkeypatch.setattr(sys, "stdin", io.StringIO(script))
        assert await _run(["trade"]) == 0
    out = capsys.readouterr().out
    assert _lines(out, "a-1  SENDING", "a-1  FILL ", "a-2  FILL ", "POSITION") == [
        "a-1  SENDING  buy 0.12345678 ADA-BTC limit 0.0000229 DAY",
        "a-1  FILL a-1-1  bought 0.12345678 ADA-BTC on COINBASE at 0.0000229  filled "
        "0.12345678, 0 left  venue SIM",
        # 0.12345678 x 0.0000229 = 0.000002827160262, to the nano
        "POSITION  ADA-BTC  long 0.12345678  cost 0.000002827  realized P&L 0.00",
        "a-2  FILL a-2-1  sold 0.1 ADA-BTC on COINBASE at 0.00002288  filled 0.1, 0 left  "
        "venue SIM",
        # 0.02345678 left at the average cost; 0.1 x (0.00002288 - 0.0000229) realized
        "POSITION  ADA-BTC  long 0.02345678  cost 0.000000537  realized P&L -0.000000002",
    ]
