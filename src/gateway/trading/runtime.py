"""Start and stop trading inside a gateway process: claim the trading log, rebuild the order
book from it, then take ticks from the quote view and run the timers (DAY order expiry, the
reference file re-read)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from gateway.config import GatewaySettings
from gateway.errors import ConfigError
from gateway.market import MarketData
from gateway.trading.convert import TradingTopics
from gateway.trading.desk import TradingDesk, TradingLog
from gateway.trading.journal import KafkaJournal
from gateway.trading.reference_file import load_reference
from marketcore.trading.order_manager import OrderManager
from marketcore.trading.rules import NANOS, RiskLimits
from marketcore.trading.simulated_venue import SimulatedVenue

log = structlog.get_logger(__name__)
TIMER_INTERVAL_S = 1.0


@dataclass
class Trading:
    desk: TradingDesk
    journal: TradingLog
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.journal.failed is None


def risk_limits(settings: GatewaySettings) -> RiskLimits:
    return RiskLimits(
        max_order_notional_nanos=settings.max_order_notional * NANOS,
        max_open_notional_nanos=settings.max_open_notional * NANOS,
        orders_per_second=settings.max_orders_per_second,
        order_burst=settings.order_burst,
        price_band_bps=settings.price_band_bps,
    )


async def start_trading(
    settings: GatewaySettings, market: MarketData, log_override: TradingLog | None = None
) -> Trading:
    """Raises JournalError (Kafka) or ConfigError (reference file) with a one-line message.
    ``log_override`` replaces the Kafka log (contract tests)."""
    reference = load_reference(settings.trading_reference_file)
    manager = OrderManager(SimulatedVenue(), reference, risk_limits(settings))
    topics = TradingTopics(settings.orders_topic, settings.trades_topic, settings.positions_topic)
    journal = log_override or KafkaJournal(
        settings.kafka, settings.trading_id, topics, asyncio.get_running_loop()
    )
    timeout_s = settings.trading_recovery_timeout_s
    await asyncio.to_thread(journal.start, timeout_s)
    try:
        state = await asyncio.to_thread(journal.read_state, timeout_s)
    except BaseException:
        await asyncio.to_thread(journal.stop)
        raise
    desk = TradingDesk(manager, journal, topics)
    working = desk.restore(state.orders, state.positions)
    market.listeners.append(desk.on_updates)
    trading = Trading(desk, journal)
    trading.tasks.append(asyncio.create_task(_expire_orders(desk)))
    if settings.trading_reference_file is not None:
        trading.tasks.append(
            asyncio.create_task(_reload_reference(desk, settings.trading_reference_file))
        )
    log.info(
        "trading_started",
        orders=len(state.orders),
        working=working,
        positions=len(state.positions),
        records_read=state.records,
        skipped=state.skipped,
    )
    return trading


async def stop_trading(trading: Trading) -> None:
    """After the server stopped taking calls: stop the timers, commit what is queued."""
    for task in trading.tasks:
        task.cancel()
    await asyncio.gather(*trading.tasks, return_exceptions=True)
    await asyncio.to_thread(trading.journal.stop)


async def _expire_orders(desk: TradingDesk) -> None:
    while True:
        await asyncio.sleep(TIMER_INTERVAL_S)
        desk.expire_due()


async def _reload_reference(desk: TradingDesk, path: Path) -> None:
    """Re-read the reference file when it changes; a broken edit keeps the previous rules."""
    seen = _stamp(path)
    while True:
        await asyncio.sleep(TIMER_INTERVAL_S)
        stamp = _stamp(path)
        if stamp == seen:
            continue
        seen = stamp
        try:
            desk.manager.reference = await asyncio.to_thread(load_reference, path)
        except ConfigError as exc:
            log.error("reference_reload_failed", error=str(exc))  # noqa: TRY400 - one line
            continue
        log.info("reference_reloaded", path=str(path))


def _stamp(path: Path) -> tuple[int, int] | None:
    with contextlib.suppress(OSError):
        stat = path.stat()
        return stat.st_mtime_ns, stat.st_size
    return None
