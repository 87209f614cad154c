"""``mdgw order`` and ``mdgw trade``: orders from a terminal.

- ``mdgw order buy|sell``: one order through SubmitOrders. Its order id is chosen (or taken
  from ``--id``) and printed before anything is sent; when the answer is lost (DEADLINE_EXCEEDED,
  UNAVAILABLE) the same order is sent again with the same id, which the gateway never places
  twice, and if no attempt is answered the command says how to learn the order's state (the
  exact command, id included). Every line about the order starts with its id. Exit 0 when it
  was accepted (any status but REJECTED), 1 when rejected or refused (not placed), 2 on bad
  input, 3 when the outcome is unknown.
- ``mdgw order cancel``: a short LiveTrading session that sends the cancel and waits for the
  answer about that order; exit 0 when it was cancelled.
- ``mdgw trade``: an interactive LiveTrading session; commands come from stdin (a terminal or a
  pipe), and every message from the gateway is printed as it arrives.

Connection settings come from ``GATEWAY_CLIENT_*``, as for ``mdgw quote``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import grpc

from financial.marketdata.v2 import common_pb2 as common
from financial.marketdata.v2.orders_pb2 import (
    OrderBatchSummary,
    OrderCancelRequest,
    OrderRequest,
    OrderStatusUpdate,
    TradingMessage,
)
from gateway import cli  # a module import: gateway.cli imports this module too
from gateway.client import ORDER_ATTEMPTS
from gateway.errors import GatewayError, OrderOutcomeUnknown
from gateway.order_entry import (
    SESSION_HELP,
    describe_order,
    format_message,
    format_result,
    format_status,
    is_final,
    is_rejected,
    order_command,
    order_request,
    parse_command,
)

TradingCall = grpc.aio.StreamStreamCall[TradingMessage, TradingMessage]
SETTLE_S = 5.0  # longest wait for the gateway to open (or refuse) a session
EXIT_UNKNOWN = 3  # mdgw order: no answer; the order may or may not be placed
# Statuses with which the gateway refuses a call before deciding any order in it.
NOT_PLACED = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    order = subparsers.add_parser("order", help="place or cancel one order")
    actions = order.add_subparsers(dest="action", metavar="ACTION", required=True)
    for side in ("buy", "sell"):
        place = actions.add_parser(
            side,
            help=f"{side} through SubmitOrders",
            description=(
                f"{side.capitalize()} SYMBOL: a market order, or with --limit a limit order, "
                "--stop a stop order, both a stop-limit order. Prices and quantities are exact "
                "decimals (at most 9 places, never rounded). Exit 0 accepted, 1 rejected or "
                "failed, 2 bad input."
            ),
        )
        place.add_argument("symbol", metavar="SYMBOL")
        place.add_argument("quantity", metavar="QUANTITY", help="e.g. 100 or 0.25")
        place.add_argument("--limit", metavar="PRICE", help="limit price, e.g. 189.50")
        place.add_argument("--stop", metavar="PRICE", help="stop (trigger) price")
        place.add_argument("--exchange", default="", help="default: where the symbol is quoted")
        place.add_argument(
            "--tif",
            default="day",
            type=str.lower,
            choices=("day", "ioc", "gtc"),
            help="time in force (default day)",
        )
        place.add_argument(
            "--id",
            dest="order_id",
            metavar="ORDER_ID",
            help="client order id (default: a new one); resending the same order with the same "
            "id is safe: the gateway answers with its state and places nothing",
        )
        place.add_argument("--account", default="", help="default: the token's account")
        cli._client_flags(place)
        place.set_defaults(handler=_run_order, side=side, order_parser=place)

    cancel = actions.add_parser("cancel", help="cancel what remains of an order")
    cancel.add_argument("order_id", metavar="ORDER_ID")
    cli._client_flags(cancel)
    cancel.set_defaults(handler=_run_cancel)

    trade = subparsers.add_parser(
        "trade",
        help="interactive trading session (LiveTrading)",
        description=(
            "Send orders and cancels typed on stdin; print every message from the gateway "
            "(status changes, fills, positions, rejects) as it arrives. Type help for the "
            "commands; quit or end of input closes the session."
        ),
    )
    trade.add_argument(
        "--cancel-on-disconnect",
        action="store_true",
        help="the gateway cancels the orders placed in this session when it ends",
    )
    cli._client_flags(trade)
    trade.set_defaults(handler=_run_trade)


# -- order buy|sell ---------------------------------------------------------------------------


def _run_order(args: argparse.Namespace) -> int:
    try:
        request = order_request(
            args.side,
            args.symbol,
            args.quantity,
            limit=args.limit,
            stop=args.stop,
            exchange=args.exchange,
            time_in_force=args.tif,
            order_id=args.order_id,
            account_id=args.account,
        )
    except ValueError as exc:  # like argparse's own errors: usage, one line, exit 2
        parser: argparse.ArgumentParser = args.order_parser
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    request.client_time_ns = time.time_ns()  # the gateway ignores it when matching a resend
    order_id = request.order_id
    # the id is known before anything is sent: whatever happens next, it can be asked about
    print(f"{order_id}  SENDING  {describe_order(request)}", flush=True)

    def resending(attempt: int, exc: grpc.aio.AioRpcError, delay_s: float) -> None:
        print(
            f"{order_id}  NO ANSWER  {cli._error_text(exc, args)}; sending the same order again "
            f"in {delay_s:.1f} s with the same id (attempt {attempt + 1} of {ORDER_ATTEMPTS}; "
            "the gateway never places an id twice)",
            flush=True,
        )

    async def send() -> OrderBatchSummary:
        async with cli._client(args) as client:
            return await client.submit_orders([request], on_resend=resending)

    try:
        summary = asyncio.run(send())
    except OrderOutcomeUnknown as exc:
        return _outcome_unknown(args, request, f"{exc.code}: {exc.detail}", exc.attempts)
    except grpc.aio.AioRpcError as exc:
        if exc.code() not in NOT_PLACED:  # INTERNAL, UNKNOWN...: it may have been placed
            return _outcome_unknown(args, request, cli._error_text(exc, args), 1)
        print(f"mdgw order: {order_id}  NOT PLACED  {cli._error_text(exc, args)}", file=sys.stderr)
        return 1
    except GatewayError as exc:  # the connection could not be set up (TLS files...)
        print(f"mdgw order: {order_id}  NOT PLACED  {exc}", file=sys.stderr)
        return 1
    results = [result for result in summary.results if result.order_id == order_id]
    if len(results) != 1:
        return _outcome_unknown(args, request, "the gateway answered without its result", 1)
    result = results[0]
    print(format_result(result, request))
    return 1 if is_rejected(result) else 0


def _outcome_unknown(
    args: argparse.Namespace, request: OrderRequest, problem: str, attempts: int
) -> int:
    """Say that the order may or may not be placed, and the exact command that finds out."""
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    print(
        f"mdgw order: {request.order_id}  OUTCOME UNKNOWN  no answer{tries} ({problem}); the "
        "order may have been placed. To learn its state, send it again with the same id (the "
        f"gateway answers with the order and places nothing twice):\n"
        f"  {order_command(request, cli._given_client_flags(args))}",
        file=sys.stderr,
    )
    return EXIT_UNKNOWN


# -- order cancel -----------------------------------------------------------------------------


def _run_cancel(args: argparse.Namespace) -> int:
    try:
        answer = asyncio.run(_cancel(args))
    except grpc.aio.AioRpcError as exc:
        problem = cli._error_text(exc, args)
        if exc.code() in NOT_PLACED:
            print(f"mdgw order cancel: {args.order_id}  NOT SENT  {problem}", file=sys.stderr)
        else:
            print(
                f"mdgw order cancel: {args.order_id}  CANCEL OUTCOME UNKNOWN  {problem}; run "
                f"`mdgw order cancel {args.order_id}` again to learn it (a second cancel of a "
                "cancelled order is refused TOO_LATE_TO_CANCEL, with its status)",
                file=sys.stderr,
            )
        return 1
    except GatewayError as exc:
        print(f"mdgw order cancel: {args.order_id}  NOT SENT  {exc}", file=sys.stderr)
        return 1
    if answer is None:
        print(
            f"mdgw order cancel: no answer about {args.order_id} from the gateway",
            file=sys.stderr,
        )
        return 1
    print(format_message(answer))
    cancelled = answer.HasField("status") and answer.status.status == common.ORDER_STATUS_CANCELLED
    return 0 if cancelled else 1


def _answers_cancel(message: TradingMessage, order_id: str) -> bool:
    """Whether this is the gateway's answer to our cancel. A session starts with the account's
    working orders (this one included, still working), so only a CANCELLED status or a
    refusal about this order answers."""
    if message.HasField("reject"):
        return message.reject.order_id == order_id
    return (
        message.HasField("status")
        and message.status.order_id == order_id
        and message.status.status == common.ORDER_STATUS_CANCELLED
    )


async def _cancel(args: argparse.Namespace) -> TradingMessage | None:
    async with cli._client(args) as client:
        call = client.trading_session()
        await _settle(call)
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            # when the call has ended, reading it below raises how
            await call.write(TradingMessage(cancel=OrderCancelRequest(order_id=args.order_id)))
        answer: TradingMessage | None = None
        try:
            async with asyncio.timeout(client.timeout_s):
                async for message in call:
                    if _answers_cancel(message, args.order_id):
                        answer = message
                        break
        except TimeoutError:
            call.cancel()
            return None
        if answer is None:
            return None
        await call.done_writing()
        # the outcome is known: how the session then ends changes nothing about it
        with contextlib.suppress(TimeoutError, grpc.aio.AioRpcError):
            async with asyncio.timeout(client.timeout_s):
                async for _ in call:
                    pass  # what the gateway still had queued before it ends the call
        call.cancel()
        return answer


# -- trade ------------------------------------------------------------------------------------


def _run_trade(args: argparse.Namespace) -> int:
    session = _Session()
    try:
        return asyncio.run(_trade(args, session))
    except (grpc.aio.AioRpcError, GatewayError) as exc:
        code = cli._failed("trade", exc, args)
        _print_unsettled(session, args)
        return code


@dataclass
class _Session:
    """What the session learnt: the latest status of each order it heard of, and the orders
    it placed (what --cancel-on-disconnect will cancel)."""

    latest: dict[str, OrderStatusUpdate] = field(default_factory=dict)
    placed: list[str] = field(default_factory=list)
    sent: dict[str, OrderRequest] = field(default_factory=dict)  # new orders, by id

    def note(self, message: TradingMessage) -> None:
        if message.HasField("status"):
            update = message.status
            known = self.latest.get(update.order_id)
            if known is None or update.event_sequence >= known.event_sequence:
                self.latest[update.order_id] = update

    def working(self) -> list[OrderStatusUpdate]:
        return [update for update in self.latest.values() if not is_final(update.status)]


async def _trade(args: argparse.Namespace, session: _Session) -> int:
    lines = _stdin_lines(asyncio.get_running_loop(), sys.stdin)
    async with cli._client(args) as client:
        call = client.trading_session(cancel_on_disconnect=args.cancel_on_disconnect)
        printer = asyncio.ensure_future(_print_messages(call, session))
        print("trading session open: type help for the commands, quit to leave", file=sys.stderr)
        try:
            await _follow_commands(lines, call, session, printer)
            if not printer.done():
                await call.done_writing()  # the gateway sends what is pending, then ends
            try:
                async with asyncio.timeout(client.timeout_s):
                    await printer
            except TimeoutError:
                print(
                    f"mdgw trade: the gateway did not close the session within "
                    f"{client.timeout_s:g}s",
                    file=sys.stderr,
                )
                return 1
        finally:
            printer.cancel()
            await asyncio.gather(printer, return_exceptions=True)  # its error is raised above
    _print_pending(session, cancel_on_disconnect=args.cancel_on_disconnect)
    return 0


async def _print_messages(call: TradingCall, session: _Session) -> None:
    async for message in call:
        session.note(message)
        print(format_message(message), flush=True)


async def _follow_commands(
    lines: asyncio.Queue[str | None],
    call: TradingCall,
    session: _Session,
    printer: asyncio.Future[None],
) -> None:
    """Act on each line until quit, end of input, or the end of the call (printer done)."""
    settled = False
    while True:
        line = await _next_line(lines, printer)
        if line is None:
            return
        try:
            command = parse_command(line)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            continue
        if command is None:
            continue
        if command == "quit":
            return
        if command == "help":
            print(SESSION_HELP, flush=True)
            continue
        if not settled:
            settled = True
            await _settle(call)
        if not await _send(call, command, session):
            return


async def _send(call: TradingCall, command: TradingMessage, session: _Session) -> bool:
    """Say what is sent, then send it; False when the call has ended (the printer then
    raises how it ended)."""
    if call.done():
        return False
    if command.HasField("new_order"):
        order = command.new_order
        order.client_time_ns = time.time_ns()
        session.placed.append(order.order_id)
        session.sent[order.order_id] = order
        print(f"{order.order_id}  SENDING  {describe_order(order)}", flush=True)
    else:
        print(f"{command.cancel.order_id}  CANCELLING", flush=True)
    try:
        await call.write(command)
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        return False  # it ended as we wrote
    return True


async def _settle(call: TradingCall) -> None:
    """Before the first write, wait for the gateway to open the session (its initial metadata)
    or refuse it (a bad token, no trading permission): a write racing the server's close can
    fail with a bare INTERNAL from gRPC that replaces the gateway's status."""
    with contextlib.suppress(TimeoutError, grpc.aio.AioRpcError):
        async with asyncio.timeout(SETTLE_S):
            await call.initial_metadata()


async def _next_line(lines: asyncio.Queue[str | None], printer: asyncio.Future[None]) -> str | None:
    """The next input line; None at end of input or when the call ended (nothing to send to)."""
    if printer.done():
        return None
    getting = asyncio.ensure_future(lines.get())
    either: set[asyncio.Future[Any]] = {getting, printer}
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if not getting.done():
        getting.cancel()
        return None
    return getting.result()


def _stdin_lines(loop: asyncio.AbstractEventLoop, stream: TextIO) -> asyncio.Queue[str | None]:
    """Lines of ``stream`` as they come (None at the end), read by a daemon thread: a terminal
    or a pipe alike, and a read still blocked when the session ends (the gateway closed it)
    does not keep the process alive, as a thread of asyncio's default executor would."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        while True:
            try:
                line = stream.readline()
            except (OSError, ValueError):  # stdin closed under us: treat as end of input
                line = ""
            try:
                loop.call_soon_threadsafe(queue.put_nowait, line or None)
            except RuntimeError:  # the loop is closed: the session is over
                return
            if not line:
                return

    threading.Thread(target=read, name="mdgw-trade-stdin", daemon=True).start()
    return queue


def _print_unsettled(session: _Session, args: argparse.Namespace) -> None:
    """After a session broke: each order it sent that is not known to be final, by id, with its
    last known state, and the command that tells its state now."""
    unsettled = [
        (order_id, session.latest.get(order_id))
        for order_id in session.sent
        if order_id not in session.latest or not is_final(session.latest[order_id].status)
    ]
    if not unsettled:
        return
    print(
        f"mdgw trade: {len(unsettled)} order(s) sent in this session without a final answer; "
        "to learn the state of one, send it again with its id (the gateway places nothing twice):",
        file=sys.stderr,
    )
    flags = cli._given_client_flags(args)
    for order_id, known in unsettled:
        state = format_status(known) if known is not None else f"{order_id}  OUTCOME UNKNOWN"
        print(f"  {state}", file=sys.stderr)
        print(f"    {order_command(session.sent[order_id], flags)}", file=sys.stderr)


def _print_pending(session: _Session, *, cancel_on_disconnect: bool) -> None:
    working = session.working()
    if not working:
        print("session closed; no orders working", flush=True)
        return
    print(f"session closed; {len(working)} order(s) still working:", flush=True)
    for update in working:
        print(f"  {format_status(update)}", flush=True)
    if cancel_on_disconnect:
        placed = set(session.placed)
        mine = [update.order_id for update in working if update.order_id in placed]
        if mine:
            print(
                f"  --cancel-on-disconnect: the gateway cancels those placed in this session "
                f"({', '.join(mine)})",
                flush=True,
            )
