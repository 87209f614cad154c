"""The trading desk: the order core, the trading log and the sessions, on the event loop.

Every request and every tick goes the same way: the ``OrderManager`` decides (pure, at once,
so the next request sees the new state), the events are appended to the ``KafkaJournal``, and
each answer is released to its caller and to the account's sessions only once its events are
committed. Appends commit in order, so an account sees its orders' changes in the order they
happened, and nothing is ever told that is not in the log.

Sessions: every LiveTrading session of an account receives every change of that account's
orders and positions from the moment it opens (whichever RPC placed the order), after the
current state of its working orders. A session opened with cancel-on-disconnect cancels the
orders it placed when it ends; otherwise they keep working (the default).

A submission whose records Kafka refuses for good (``RecordRefusedError``: too large for the
topic, invalid) is withdrawn, as if it had never come: nothing of it is in the log, so nothing
of it stays in memory, and its caller is told a refusal naming the order id (``refusal``); the
log and every other order carry on. Only when something else already happened to that order
or its position (a tick filled it meanwhile) can memory not be put back: then the log fails as
for any write error (a restart rebuilds the state from the log).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from financial.marketdata.v2.orders_pb2 import TradingMessage
from gateway import metrics
from gateway.core.updates import FeedUpdate
from gateway.errors import JournalError, RecordRefusedError
from gateway.trading import convert
from gateway.trading.convert import Record, TradingTopics
from gateway.trading.recovery import RecoveredState
from marketcore.trading.events import Executed, RequestKind, RequestRefused, TradingEvent
from marketcore.trading.model import Order, OrderSpec, Rejection, RejectReason, Touch
from marketcore.trading.order_manager import OrderManager, Submitted
from marketcore.trading.positions import Position

log = structlog.get_logger(__name__)
# A session that falls this far behind (messages waiting) is ended: the log has everything.
SESSION_QUEUE_LIMIT = 10_000


class TradingLog(Protocol):
    """Where order events are recorded (Kafka: ``journal.KafkaJournal``)."""

    failed: JournalError | None

    def start(self, timeout_s: float) -> None:
        """Become the log's only writer (blocking)."""
        ...

    def read_state(self, timeout_s: float) -> RecoveredState:
        """What was recorded before (blocking)."""
        ...

    def append(self, records: list[Record]) -> asyncio.Future[None]:
        """Record atomically; the future is done once committed (appends commit in order)."""
        ...

    def stop(self, timeout_s: float = 10.0) -> None:
        """Commit what is queued and stop (blocking)."""
        ...


@dataclass(eq=False)
class Session:
    """One LiveTrading stream: what it must be told, in order, each after its commit."""

    account_id: str
    cancel_on_disconnect: bool
    outbox: asyncio.Queue[tuple[asyncio.Future[None], TradingMessage]] = field(
        default_factory=asyncio.Queue
    )
    placed: set[str] = field(default_factory=set)  # order ids this session submitted
    overflowed: bool = False

    def tell(self, committed: asyncio.Future[None], message: TradingMessage) -> None:
        if self.outbox.qsize() >= SESSION_QUEUE_LIMIT:
            self.overflowed = True
            return
        self.outbox.put_nowait((committed, message))


class TradingDesk:
    def __init__(
        self,
        manager: OrderManager,
        journal: TradingLog,
        topics: TradingTopics,
        *,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.manager = manager
        self._journal = journal
        self._topics = topics
        self._wall_ns = wall_ns
        self._sessions: dict[str, set[Session]] = {}
        self._last_commit: asyncio.Future[None] | None = None

    @property
    def failed(self) -> JournalError | None:
        return self._journal.failed

    # -- requests ----------------------------------------------------------------------------

    def place(
        self, spec: OrderSpec, caller: str, session: Session | None = None
    ) -> tuple[Submitted | RequestRefused, asyncio.Future[None]]:
        """Decide an order now; the future is done once the outcome is committed to the log
        (it raises JournalError when the log cannot be written: the outcome is then unknown,
        and resubmitting with the same order id after the gateway is back is safe). The
        session, if any, is told the outcome in its turn."""
        self._require_journal()
        position_before = self.manager.position(spec.account_id, spec.symbol)
        outcome = self.manager.submit(spec, caller, self._wall_ns())
        if isinstance(outcome, RequestRefused):
            metrics.ORDERS.labels("refused").inc()
            committed = self._barrier()
            if session is not None:
                session.tell(committed, _reject_message(outcome))
            return outcome, committed
        if outcome.duplicate:
            metrics.ORDERS.labels("duplicate").inc()
            # the first submission's outcome may still be on its way to the log: wait for it
            committed = self._barrier()
            if session is not None:
                status = convert.order_status(outcome.order, self._wall_ns(), duplicate=True)
                session.tell(committed, TradingMessage(status=status))
            return outcome, committed
        order = outcome.order
        if order.reject is not None:
            metrics.ORDERS.labels("rejected").inc()
            metrics.ORDERS_REJECTED.labels(order.reject.reason.name.lower()).inc()
        else:
            metrics.ORDERS.labels("accepted").inc()
            if session is not None:
                session.placed.add(order.order_id)
        committed = self._record(outcome.events)
        position_after = self.manager.position(spec.account_id, spec.symbol)

        def recorded(future: asyncio.Future[None]) -> None:
            error = None if future.cancelled() else future.exception()
            if isinstance(error, RecordRefusedError):
                self._withdraw(order, position_before, position_after, error, session)

        committed.add_done_callback(recorded)
        return outcome, committed

    async def submit(self, spec: OrderSpec, caller: str) -> Submitted | RequestRefused:
        """``place`` and wait for the commit."""
        outcome, committed = self.place(spec, caller)
        await committed
        return outcome

    def cancel(
        self,
        order_id: str,
        caller: str,
        session: Session | None = None,
        account_id: str | None = None,
    ) -> tuple[list[TradingEvent] | RequestRefused, asyncio.Future[None]]:
        """Cancel what remains of the caller's order ``order_id``, like ``place``
        (``account_id``: the account the request names, refused when not the caller's)."""
        self._require_journal()
        outcome = self.manager.cancel(order_id, caller, self._wall_ns(), account_id)
        if isinstance(outcome, RequestRefused):
            metrics.CANCELS.labels(outcome.rejection.reason.name.lower()).inc()
            committed = self._barrier()
            if session is not None:
                session.tell(committed, _reject_message(outcome))
            return outcome, committed
        metrics.CANCELS.labels("cancelled").inc()
        return outcome, self._record(outcome)

    # -- sessions ----------------------------------------------------------------------------

    def open_session(self, account_id: str, *, cancel_on_disconnect: bool) -> Session:
        """Register a session; its outbox starts with its account's working orders."""
        session = Session(account_id, cancel_on_disconnect)
        committed = self._barrier()
        now_ns = self._wall_ns()
        for order in self.manager.working_orders(account_id):
            session.tell(committed, TradingMessage(status=convert.order_status(order, now_ns)))
        self._sessions.setdefault(account_id, set()).add(session)
        metrics.TRADING_SESSIONS.inc()
        return session

    def close_session(self, session: Session) -> None:
        """Unregister; with cancel-on-disconnect, cancel the orders the session placed that
        still work (recorded like any cancel; nobody waits for it)."""
        sessions = self._sessions.get(session.account_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._sessions[session.account_id]
        metrics.TRADING_SESSIONS.dec()
        if not session.cancel_on_disconnect or self.failed is not None:
            return
        now_ns = self._wall_ns()
        events: list[TradingEvent] = []
        for order_id in sorted(session.placed):
            order = self.manager.order(session.account_id, order_id)
            if order is not None and order.is_working:
                outcome = self.manager.cancel(order_id, session.account_id, now_ns)
                if not isinstance(outcome, RequestRefused):
                    events.extend(outcome)
        if events:
            log.info("session_orders_cancelled", orders=len(events))
            self._record(events)

    # -- market and time ---------------------------------------------------------------------

    def on_updates(self, updates: Sequence[FeedUpdate]) -> None:
        """Ticks from the feed (on the loop): orders execute against them."""
        if self.failed is not None:
            return
        now_ns = self._wall_ns()
        events: list[TradingEvent] = []
        manager = self.manager
        for update in updates:
            tick = update.tick
            touch = Touch(
                tick.bid_nanos,
                tick.ask_nanos,
                tick.bid_size_nanos,
                tick.ask_size_nanos,
                tick.last_nanos,
            )
            events.extend(manager.on_tick(update.key, touch, now_ns))
        if events:
            self._record(events)

    def expire_due(self) -> None:
        if self.failed is not None:
            return
        events = self.manager.expire_due(self._wall_ns())
        if events:
            self._record(events)

    def restore(self, orders: list[Order], positions: list[Position]) -> int:
        working = self.manager.restore(orders, positions)
        metrics.ORDERS_WORKING.set(working)
        return working

    # -- internals ---------------------------------------------------------------------------

    def _record(self, events: list[TradingEvent]) -> asyncio.Future[None]:
        """Append ``events`` to the log and queue them for the sessions that must hear them."""
        committed = self._journal.append(convert.records(events, self._topics))
        self._last_commit = committed
        committed.add_done_callback(_retrieve)
        for event in events:
            sessions = self._sessions.get(event.account_id)
            if isinstance(event, Executed):
                metrics.EXECUTIONS.inc()
            if not sessions:
                continue
            message = convert.trading_message(event)
            for session in sessions:
                session.tell(committed, message)
        metrics.ORDERS_WORKING.set(self.manager.working_count())
        return committed

    def _withdraw(
        self,
        order: Order,
        position_before: Position | None,
        position_after: Position | None,
        error: RecordRefusedError,
        session: Session | None,
    ) -> None:
        """Undo a submission Kafka refused to record (see the module docstring)."""
        manager = self.manager
        untouched = manager.order(order.account_id, order.order_id) is order and (
            manager.position(order.account_id, order.spec.symbol) is position_after
        )
        if not untouched:
            failed = JournalError(
                f"order {order.order_id} of {order.account_id} could not be recorded "
                f"({error.detail}) and has changed since: the log is behind memory"
            )
            self._journal.failed = failed
            log.error("journal_failed", error=str(failed))
            return
        manager.withdraw(order.ref, position_before)
        metrics.ORDERS.labels("withdrawn").inc()
        metrics.ORDERS_WORKING.set(manager.working_count())
        log.warning("order_withdrawn", order_id=order.order_id, reason=error.detail)
        if session is not None:
            session.placed.discard(order.order_id)
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            session.tell(done, _reject_message(refusal(order.spec, order.account_id, error)))

    def _barrier(self) -> asyncio.Future[None]:
        """A future done once everything appended so far is committed (an append Kafka
        refused counts as done: it is no concern of a later request)."""
        last = self._last_commit
        if last is None or (last.done() and not last.cancelled() and last.exception() is None):
            return self._journal.append([])
        if last.done() and isinstance(last.exception(), RecordRefusedError):
            return self._journal.append([])
        if last.done():
            return last
        barrier: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def settle(future: asyncio.Future[None]) -> None:
            if barrier.done():
                return
            error = None if future.cancelled() else future.exception()
            if error is None or isinstance(error, RecordRefusedError):
                barrier.set_result(None)
            else:
                barrier.set_exception(error)

        last.add_done_callback(settle)
        return barrier

    def _require_journal(self) -> None:
        if self.failed is not None:
            raise self.failed


def refusal(spec: OrderSpec, account_id: str, error: RecordRefusedError) -> RequestRefused:
    """What the caller of a withdrawn submission is told: refused, nothing placed."""
    text = f"not placed: {error}; nothing of this order was recorded"
    return RequestRefused(
        spec.order_id, account_id, RequestKind.NEW_ORDER, Rejection(RejectReason.MALFORMED, text)
    )


def _reject_message(refused: RequestRefused) -> TradingMessage:
    return TradingMessage(reject=convert.request_reject(refused))


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
