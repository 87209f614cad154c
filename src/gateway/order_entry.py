"""Order entry for people at a terminal: text in, ``OrderRequest`` out, and one readable line
per trading message back. No I/O here, so ``mdgw order`` and ``mdgw trade`` share (and tests
check) exactly the same parsing and wording.

Quantities and prices are parsed from their decimal text straight into nanos
(``parse_nanos``): ``"189.50"`` is 189_500_000_000, and a value with more than nine decimals
is refused, never rounded. Checks made here are the ones a person gets wrong while typing
(side, number format, time in force); the gateway still decides everything else (lot, tick,
band, limits) and answers with a reject reason.
"""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeAlias

from financial.marketdata.v2 import common_pb2 as common
from financial.marketdata.v2.common_pb2 import Decimal
from financial.marketdata.v2.orders_pb2 import (
    ExecutionReport,
    OrderCancelRequest,
    OrderRequest,
    OrderResult,
    OrderStatusUpdate,
    PositionUpdate,
    RequestKind,
    RequestReject,
    TradingMessage,
)
from gateway.core.limits import MAX_IDENTIFIER_LENGTH, MAX_ORDER_ID_LENGTH, text_problem
from marketcore.fixed_point import (
    NANOS_DECIMALS,
    NANOS_LIMIT,
    NotADecimalError,
    NotRepresentableError,
    TooPreciseError,
    format_nanos,
    parse_nanos,
)
from marketinfra.decimal_codec import decimal_nanos, to_decimal

SIDES = {"buy": common.SIDE_BUY, "sell": common.SIDE_SELL}
TIMES_IN_FORCE = {
    "day": common.TIME_IN_FORCE_DAY,
    "ioc": common.TIME_IN_FORCE_IOC,
    "gtc": common.TIME_IN_FORCE_GTC,
}
FINAL_STATUSES = frozenset(
    {
        common.ORDER_STATUS_FILLED,
        common.ORDER_STATUS_CANCELLED,
        common.ORDER_STATUS_REJECTED,
        common.ORDER_STATUS_EXPIRED,
    }
)
SESSION_HELP = """\
commands:
  buy SYMBOL QTY [limit P] [stop P] [day|ioc|gtc] [exchange EX] [id ORDER_ID]
  sell SYMBOL QTY [limit P] [stop P] [day|ioc|gtc] [exchange EX] [id ORDER_ID]
  cancel ORDER_ID
  help
  quit              (or end of input)
no limit and no stop: a market order; limit and stop: a stop-limit order"""

# A line typed in ``mdgw trade``: a message to send, or a session command.
SessionCommand: TypeAlias = TradingMessage | Literal["help", "quit"]


# -- requests ---------------------------------------------------------------------------------


def new_order_id() -> str:
    """A client order id; random so that two terminals never collide on the idempotency key."""
    return "cli-" + uuid.uuid4().hex[:16]


def order_request(
    side: str,
    symbol: str,
    quantity: str,
    *,
    limit: str | None = None,
    stop: str | None = None,
    exchange: str = "",
    time_in_force: str = "day",
    order_id: str | None = None,
    account_id: str = "",
) -> OrderRequest:
    """The order a person typed. The type follows from the prices given: none is MARKET,
    ``limit`` LIMIT, ``stop`` STOP, both STOP_LIMIT. Raises ValueError (one line, fit for a
    terminal) for a bad side, symbol, quantity, price, time in force or order id."""
    side_value = SIDES.get(side.strip().lower())
    if side_value is None:
        raise ValueError(f"side must be buy or sell, not {side!r}")
    if not symbol or symbol != symbol.strip() or any(char.isspace() for char in symbol):
        raise ValueError(f"symbol must be one word, not {symbol!r}")
    for field, value in (("symbol", symbol), ("exchange", exchange)):
        problem = text_problem(field, value, MAX_IDENTIFIER_LENGTH)
        if problem is not None:  # the gateway would refuse it (INVALID_ARGUMENT)
            raise ValueError(problem)
    tif = TIMES_IN_FORCE.get(time_in_force.strip().lower())
    if tif is None:
        raise ValueError(f"time in force must be day, ioc or gtc, not {time_in_force!r}")
    if order_id is None:
        order_id = new_order_id()
    elif not _good_order_id(order_id):
        raise ValueError(
            f"order id must be 1 to {MAX_ORDER_ID_LENGTH} printable characters without "
            f"spaces, not {order_id!r}"
        )
    limit_nanos = _positive(limit, "limit price") if limit is not None else 0
    stop_nanos = _positive(stop, "stop price") if stop is not None else 0
    order_type = {
        (False, False): common.ORDER_TYPE_MARKET,
        (True, False): common.ORDER_TYPE_LIMIT,
        (False, True): common.ORDER_TYPE_STOP,
        (True, True): common.ORDER_TYPE_STOP_LIMIT,
    }[(limit is not None, stop is not None)]
    return OrderRequest(
        order_id=order_id,
        symbol=symbol,
        side=side_value,
        quantity=to_decimal(_positive(quantity, "quantity")),
        # a price not given stays unset (not an empty Decimal), as the protos document
        limit_price=to_decimal(limit_nanos),
        stop_price=to_decimal(stop_nanos),
        order_type=order_type,
        account_id=account_id,
        exchange=exchange,
        time_in_force=tif,
    )


def order_command(order: OrderRequest, client_flags: Sequence[str] = ()) -> str:
    """The ``mdgw order`` command that sends exactly ``order`` again, id included: what a person
    runs to learn the state of an order whose answer was lost (the gateway answers an id it
    already placed with the order's state and places nothing)."""
    side = {common.SIDE_BUY: "buy", common.SIDE_SELL: "sell"}.get(order.side, "buy")
    words = ["mdgw", "order", side, order.symbol, _quantity(order.quantity)]
    if order.order_type in (common.ORDER_TYPE_LIMIT, common.ORDER_TYPE_STOP_LIMIT):
        words += ["--limit", _price(order.limit_price)]
    if order.order_type in (common.ORDER_TYPE_STOP, common.ORDER_TYPE_STOP_LIMIT):
        words += ["--stop", _price(order.stop_price)]
    if order.exchange:
        words += ["--exchange", order.exchange]
    tif = order.time_in_force or common.TIME_IN_FORCE_DAY
    words += ["--tif", _name(common.TimeInForce.Name, tif, "TIME_IN_FORCE_").lower()]
    if order.account_id:
        words += ["--account", order.account_id]
    words += ["--id", order.order_id, *client_flags]
    return shlex.join(words)


def _positive(text: str, what: str) -> int:
    """Exact nanos of a positive decimal: 0 means "absent" on the wire, so it cannot be a
    price, and a quantity must be positive. Nothing is rounded: a tenth decimal is refused."""
    try:
        value = parse_nanos(text.strip())
    except TooPreciseError:
        raise ValueError(
            f"{what} {text!r} has more than {NANOS_DECIMALS} decimals: prices and quantities "
            f"are exact to {NANOS_DECIMALS} places, never rounded"
        ) from None
    except NotADecimalError:
        value = 0
    except NotRepresentableError:
        raise ValueError(
            f"{what} {text!r} is beyond the largest value carried "
            f"({format_nanos(NANOS_LIMIT, min_decimals=0)})"
        ) from None
    if value <= 0:
        raise ValueError(f"{what} must be a positive number, not {text!r}")
    return value


def _good_order_id(order_id: str) -> bool:
    # the gateway refuses such ids with INVALID_ARGUMENT, which would end a whole session
    return (
        0 < len(order_id) <= MAX_ORDER_ID_LENGTH
        and order_id.isprintable()
        and not any(char.isspace() for char in order_id)
    )


def parse_command(line: str) -> SessionCommand | None:
    """One line of ``mdgw trade``; None for a blank line. Raises ValueError (one line) for a
    command that cannot be sent, so the session can say so and carry on."""
    words = line.split()
    if not words:
        return None
    verb, rest = words[0].lower(), words[1:]
    if verb in ("help", "?"):
        return "help"
    if verb in ("quit", "exit"):
        return "quit"
    if verb == "cancel":
        if len(rest) != 1:
            raise ValueError("usage: cancel ORDER_ID")
        if not _good_order_id(rest[0]):
            raise ValueError(f"not an order id: {rest[0]!r}")
        return TradingMessage(cancel=OrderCancelRequest(order_id=rest[0]))
    if verb in SIDES:
        return TradingMessage(new_order=_order_words(verb, rest))
    raise ValueError(f"unknown command {words[0]!r} (type help)")


def _order_words(side: str, words: list[str]) -> OrderRequest:
    if len(words) < 2:
        raise ValueError(f"usage: {side} SYMBOL QTY [limit P] [stop P] [day|ioc|gtc] ...")
    symbol, quantity, options = words[0], words[1], words[2:]
    given: dict[str, str] = {}
    position = 0
    while position < len(options):
        word = options[position].lower()
        if word in TIMES_IN_FORCE:
            key, value, position = "tif", word, position + 1
        elif word in ("limit", "stop", "exchange", "id"):
            if position + 1 >= len(options):
                raise ValueError(f"{word} needs a value")
            key, value, position = word, options[position + 1], position + 2
        else:
            raise ValueError(f"unexpected {options[position]!r} in an order (type help)")
        if key in given:
            raise ValueError(f"{'time in force' if key == 'tif' else key} given twice")
        given[key] = value
    return order_request(
        side,
        symbol,
        quantity,
        limit=given.get("limit"),
        stop=given.get("stop"),
        exchange=given.get("exchange", ""),
        time_in_force=given.get("tif", "day"),
        order_id=given.get("id"),
    )


# -- answers ----------------------------------------------------------------------------------


def status_name(status: common.OrderStatus.ValueType) -> str:
    return _name(common.OrderStatus.Name, status, "ORDER_STATUS_")


def reason_name(reason: common.RejectReason.ValueType) -> str:
    return _name(common.RejectReason.Name, reason, "REJECT_REASON_")


def _name(lookup: Callable[[Any], str], value: int, prefix: str) -> str:
    """``ORDER_STATUS_FILLED`` -> ``FILLED``; the number itself for a value newer than our
    protos (a newer gateway), rather than failing on it."""
    try:
        name = lookup(value)
    except ValueError:
        return str(value)
    return name.removeprefix(prefix)


def _quantity(value: Decimal) -> str:
    return format_nanos(decimal_nanos(value), min_decimals=0)


def _price(value: Decimal) -> str:
    return format_nanos(decimal_nanos(value))


def is_rejected(result: OrderResult) -> bool:
    return result.status == common.ORDER_STATUS_REJECTED or result.reject_reason != 0


def is_final(status: common.OrderStatus.ValueType) -> bool:
    """No further change can come: the order no longer works at the venue."""
    return status in FINAL_STATUSES


def describe_order(order: OrderRequest, *, exchange: str = "") -> str:
    """``buy 100 AAPL on NASDAQ limit 189.50 DAY``: the order as a person would say it.
    ``exchange``: where the gateway placed it (an order may leave the choice to it)."""
    side = {common.SIDE_BUY: "buy", common.SIDE_SELL: "sell"}.get(order.side, "?")
    parts = [side, _quantity(order.quantity), order.symbol]
    if exchange or order.exchange:
        parts += ["on", exchange or order.exchange]
    if order.order_type in (common.ORDER_TYPE_STOP, common.ORDER_TYPE_STOP_LIMIT):
        parts += ["stop", _price(order.stop_price)]
    if order.order_type in (common.ORDER_TYPE_LIMIT, common.ORDER_TYPE_STOP_LIMIT):
        parts += ["limit", _price(order.limit_price)]
    if order.order_type == common.ORDER_TYPE_MARKET:
        parts.append("at market")
    tif = order.time_in_force or common.TIME_IN_FORCE_DAY  # unspecified is treated as DAY
    parts.append(_name(common.TimeInForce.Name, tif, "TIME_IN_FORCE_"))
    return " ".join(parts)


def _reason(reason: common.RejectReason.ValueType, text: str) -> str:
    if reason and text:
        return f"{reason_name(reason)}: {text}"
    return reason_name(reason) if reason else text


def format_result(result: OrderResult, order: OrderRequest | None = None) -> str:
    """A SubmitOrders answer for one order: ``cli-1f2e  NEW  buy 100 AAPL limit 189.50 DAY``
    (the order described when given: the result alone does not say what it was)."""
    parts = [result.order_id, status_name(result.status)]
    if result.duplicate:
        parts.append("(duplicate: already placed, current state)")
    if order is not None:
        parts.append(describe_order(order))
    if is_rejected(result):
        parts.append(_reason(result.reject_reason, result.reject_text))
    return "  ".join(part for part in parts if part)


def format_status(update: OrderStatusUpdate) -> str:
    """A change of one order: its status, what it is, how much has filled, and why (a reject
    or cancel reason)."""
    filled = decimal_nanos(update.filled_quantity)
    total = decimal_nanos(update.order.quantity) or (
        filled + decimal_nanos(update.remaining_quantity)
    )
    parts = [
        update.order_id,
        status_name(update.status),
        (
            describe_order(update.order, exchange=update.exchange)
            if update.order.order_id
            else update.symbol
        ),
        f"filled {format_nanos(filled, min_decimals=0)} of {format_nanos(total, min_decimals=0)}",
    ]
    if update.stop_triggered:
        parts.append("stop triggered")
    if update.duplicate:
        parts.append("(duplicate: already placed, current state)")
    parts.append(_reason(update.reject_reason, update.text))
    return "  ".join(part for part in parts if part)


def format_execution(report: ExecutionReport) -> str:
    """A fill: what traded at which price, and what is left of the order."""
    verb = {common.SIDE_BUY: "bought", common.SIDE_SELL: "sold"}.get(report.side, "traded")
    where = f" on {report.exchange}" if report.exchange else ""
    line = (
        f"{report.order_id}  FILL {report.execution_id}  {verb} "
        f"{_quantity(report.fill_quantity)} {report.symbol}{where} at "
        f"{_price(report.fill_price)}  filled "
        f"{_quantity(report.cumulative_quantity)}, "
        f"{_quantity(report.remaining_quantity)} left"
    )
    if decimal_nanos(report.fees):
        line += f"  fees {_price(report.fees)}"
    if report.venue:
        line += f"  venue {report.venue}"
    return line


def format_position(position: PositionUpdate) -> str:
    """The account's position in one instrument after a fill (cost and P&L to nine decimals
    of the currency: the rounded fields, which is what a person reads)."""
    where = f" on {position.exchange}" if position.exchange else ""
    net = decimal_nanos(position.net_quantity)
    side = "long" if net > 0 else "short" if net < 0 else "flat"
    return (
        f"POSITION  {position.symbol}{where}  {side} {format_nanos(abs(net), min_decimals=0)}  "
        f"cost {_price(position.cost)}  "
        f"realized P&L {_price(position.realized_pnl)}"
    )


def format_reject(reject: RequestReject) -> str:
    """A refused request (no order changed): a cancel that cannot be done, or a reused id."""
    what = {
        RequestKind.REQUEST_KIND_NEW_ORDER: "ORDER REFUSED",
        RequestKind.REQUEST_KIND_CANCEL: "CANCEL REFUSED",
    }.get(reject.request, "REQUEST REFUSED")
    parts = [reject.order_id, what, _reason(reject.reject_reason, reject.text)]
    if reject.order_status:
        parts.append(f"(order is {status_name(reject.order_status)})")
    return "  ".join(part for part in parts if part)


def format_message(message: TradingMessage) -> str:
    """Any LiveTrading message as one line."""
    kind = message.WhichOneof("payload")
    if kind == "status":
        return format_status(message.status)
    if kind == "execution":
        return format_execution(message.execution)
    if kind == "position":
        return format_position(message.position)
    if kind == "reject":
        return format_reject(message.reject)
    if kind == "new_order":
        return f"{message.new_order.order_id}  NEW ORDER  {describe_order(message.new_order)}"
    if kind == "cancel":
        return f"{message.cancel.order_id}  CANCEL"
    return "(empty message)"
