"""Venue timestamps -> Unix nanoseconds, exactly (integer arithmetic, never float).

Venues spell time as ISO 8601 text (Coinbase ``"2021-04-17T16:43:30.244075Z"``), decimal
seconds (Kraken ``"1534614057.321597"``) or integer milliseconds (Binance ``1633998523963``).
Malformed input raises ``ValueError``.
"""

from __future__ import annotations

from functools import lru_cache

from marketcore.scaled_decimal import parse_scaled

NANOS_PER_SECOND = 1_000_000_000
NANOS_PER_MILLI = 1_000_000
_SECONDS_PER_DAY = 86_400
# Unix nanoseconds up to year 9999; anything later is a malformed timestamp.
_MAX_NS = 253_402_300_800 * NANOS_PER_SECOND


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _fraction_ns(fraction: str, original: str) -> int:
    """``""`` or ``".123456"`` (up to 9 digits) as nanoseconds."""
    if not fraction:
        return 0
    digits = fraction[1:]
    if fraction[0] != "." or not (digits.isascii() and digits.isdigit()) or len(digits) > 9:
        raise ValueError(f"bad fraction of a second: {original!r}")
    return int(digits.ljust(9, "0"))


@lru_cache(maxsize=64)
def _day_start_s(year: int, month: int, day: int) -> int:
    month_days = _DAYS_IN_MONTH[month - 1] if 1 <= month <= 12 else 0
    if month == 2 and not _is_leap(year):
        month_days = 28
    if not 1 <= day <= month_days:
        raise ValueError(f"no such date: {year:04d}-{month:02d}-{day:02d}")
    return _days_from_civil(year, month, day) * _SECONDS_PER_DAY


def iso8601_utc_ns(text: str) -> int:
    """``YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)`` as Unix ns (fraction up to 9 digits)."""
    if (
        len(text) < 20
        or (text[4], text[7], text[13], text[16]) != ("-", "-", ":", ":")
        or text[10] not in "Tt "
    ):
        raise ValueError(f"not an ISO 8601 UTC time: {text!r}")
    if text[-1] in "Zz":
        fraction = text[19:-1]
    elif text.endswith("+00:00"):
        fraction = text[19:-6]
    else:
        raise ValueError(f"not a UTC time: {text!r}")
    digits = text[0:4] + text[5:7] + text[8:10] + text[11:13] + text[14:16] + text[17:19]
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"not an ISO 8601 UTC time: {text!r}")
    hour, minute, second = int(digits[8:10]), int(digits[10:12]), int(digits[12:14])
    # second 60: a leap second, as venues may send
    if hour > 23 or minute > 59 or second > 60:
        raise ValueError(f"no such time: {text!r}")
    seconds = _day_start_s(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))
    seconds += hour * 3600 + minute * 60 + second
    return seconds * NANOS_PER_SECOND + _fraction_ns(fraction, text)


def decimal_seconds_ns(text: str) -> int:
    """``"1534614057.321597"`` (seconds since the epoch, as text) as Unix nanoseconds."""
    value = parse_scaled(text, 9, limit=_MAX_NS)
    if value < 0:
        raise ValueError(f"time before 1970: {text!r}")
    return value


def millis_ns(value: object) -> int:
    """Integer Unix milliseconds (JSON number) as Unix nanoseconds."""
    if type(value) is not int or not 0 <= value <= _MAX_NS // NANOS_PER_MILLI:
        raise ValueError(f"not a Unix time in milliseconds: {value!r}")
    return value * NANOS_PER_MILLI


def fix_utc_timestamp_ns(text: str) -> int:
    """FIX UTCTimestamp ``YYYYMMDD-HH:MM:SS[.sss[sss[sss]]]`` as Unix nanoseconds."""
    if len(text) < 17 or text[8] != "-":
        raise ValueError(f"not a FIX UTCTimestamp: {text!r}")
    return iso8601_utc_ns(f"{text[0:4]}-{text[4:6]}-{text[6:8]}T{text[9:]}Z")
