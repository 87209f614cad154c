"""Instrument reference data from a JSON file, over the built-in defaults.

Format (every field optional; decimal values as strings, exactly)::

    {
      "exchanges": {"NASDAQ": {"tick": "0.01", "lot": "1", "hours": "09:30-16:00"}},
      "instruments": {"NASDAQ|AAPL": {"halted": true}, "COINBASE|BTC-USD": {"lot": "0.001"}}
    }

``hours`` is ``"always"`` or ``"HH:MM-HH:MM"`` in the venue's time zone, Monday to Friday. An
exchange entry starts from that exchange's defaults; an instrument entry from its exchange's
rules. Listing an instrument makes it tradable before its first quote. The gateway re-reads
the file when it changes, so halting an instrument is an edit.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import time
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from marketcore.fixed_point import NotRepresentableError, parse_nanos
from marketcore.instruments import InstrumentKey, InvalidInstrumentError
from marketcore.trading.rules import (
    ALWAYS_OPEN,
    DEFAULT_REFERENCE,
    InstrumentRules,
    ReferenceData,
    TradingHours,
)

_FIELDS = {"tick", "lot", "hours", "halted"}


def load_reference(path: Path | None) -> ReferenceData:
    """The defaults, with ``path``'s entries over them. Raises ConfigError naming the entry."""
    if path is None:
        return DEFAULT_REFERENCE
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the reference file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON: {exc.msg} (line {exc.lineno})") from exc
    return parse_reference(raw, str(path))


def parse_reference(raw: Any, source: str = "reference data") -> ReferenceData:
    if not isinstance(raw, dict) or set(raw) - {"exchanges", "instruments"}:
        raise ConfigError(f'{source}: expected {{"exchanges": {{...}}, "instruments": {{...}}}}')
    exchanges = dict(DEFAULT_REFERENCE.exchanges)
    for name, entry in _entries(raw, "exchanges", source):
        base = exchanges.get(name, InstrumentRules(1, 1, ALWAYS_OPEN))
        exchanges[name] = _rules(entry, base, f"{source}: exchanges.{name}")
    symbols: dict[InstrumentKey, InstrumentRules] = {}
    for name, entry in _entries(raw, "instruments", source):
        where = f"{source}: instruments.{name}"
        try:
            key = InstrumentKey.from_kafka_key(name.encode())
        except InvalidInstrumentError as exc:
            raise ConfigError(f"{where}: expected EXCHANGE|SYMBOL ({exc})") from exc
        exchange_rules = exchanges.get(key.exchange)
        if exchange_rules is None and not {"tick", "lot"} <= set(entry):
            raise ConfigError(f"{where}: unknown exchange; give tick and lot")
        fallback = InstrumentRules(1, 1, ALWAYS_OPEN)
        symbols[key] = _rules(entry, exchange_rules or fallback, where)
    return ReferenceData(exchanges, symbols)


def _entries(raw: dict[str, Any], section: str, source: str) -> list[tuple[str, dict[str, Any]]]:
    entries = raw.get(section, {})
    if not isinstance(entries, dict):
        raise ConfigError(f"{source}: {section} must be an object")
    for name, entry in entries.items():
        if not isinstance(entry, dict) or set(entry) - _FIELDS:
            fields = ", ".join(sorted(_FIELDS))
            raise ConfigError(f"{source}: {section}.{name} must be an object of {fields}")
    return list(entries.items())


def _rules(entry: dict[str, Any], base: InstrumentRules, where: str) -> InstrumentRules:
    rules = base
    if "tick" in entry:
        rules = replace(rules, tick_nanos=_positive_nanos(entry["tick"], f"{where}.tick"))
    if "lot" in entry:
        rules = replace(rules, lot_nanos=_positive_nanos(entry["lot"], f"{where}.lot"))
    if "hours" in entry:
        rules = replace(rules, hours=_hours(entry["hours"], f"{where}.hours"))
    if "halted" in entry:
        if not isinstance(entry["halted"], bool):
            raise ConfigError(f"{where}.halted must be true or false")
        rules = replace(rules, halted=entry["halted"])
    return rules


def _positive_nanos(value: Any, where: str) -> int:
    if not isinstance(value, str):
        raise ConfigError(f'{where} must be a decimal string such as "0.01"')
    try:
        nanos = parse_nanos(value)
    except NotRepresentableError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if nanos <= 0:
        raise ConfigError(f"{where} must be positive")
    return nanos


def _hours(value: Any, where: str) -> TradingHours:
    if value == "always":
        return ALWAYS_OPEN
    try:
        opens, closes = (time.fromisoformat(part) for part in str(value).split("-"))
    except ValueError as exc:
        raise ConfigError(f'{where} must be "always" or "HH:MM-HH:MM"') from exc
    if not opens < closes:
        raise ConfigError(f"{where}: opening must come before closing")
    return TradingHours(open_at=opens, close_at=closes)
