"""NASDAQ TotalView-ITCH 5.0: message layouts, and the framings that carry them.

Every message starts with its type (1 byte), Stock Locate (2), Tracking Number (2) and a
Timestamp (6 bytes: nanoseconds since midnight, Eastern time); integers are big-endian;
Price(4) has 4 implied decimals; Stock is 8 ASCII bytes, space-padded. Lengths per type
are fixed (``LENGTHS``, from the specification's message formats).

Framings:
- files: each message preceded by a 2-byte big-endian length;
- SoupBinTCP: packets ``[length: 2][type: 1][payload]``; type ``S`` (sequenced data)
  carries one ITCH message; ``A`` login accepted (session 10, sequence number 20 ASCII),
  ``J`` rejected, ``H`` server heartbeat, ``Z`` end of session, ``+`` debug. The client
  sends ``L`` login (username 6, password 10, session 10, sequence 20), ``R`` heartbeat,
  ``O`` logout;
- MoldUDP64: datagrams ``[session: 10][sequence: 8][count: 2]`` then ``count`` messages
  ``[length: 2][message]``; ``sequence`` numbers the first message; count 0xFFFF ends the
  session.
"""

from __future__ import annotations

import struct

EXCHANGE = "NASDAQ"

LENGTHS: dict[bytes, int] = {
    b"S": 12, b"R": 39, b"H": 25, b"Y": 20, b"L": 26, b"V": 35, b"W": 12, b"K": 28,
    b"J": 35, b"h": 21, b"A": 36, b"F": 40, b"E": 31, b"C": 36, b"X": 23, b"D": 19,
    b"U": 35, b"P": 44, b"Q": 40, b"B": 19, b"I": 50, b"N": 20, b"O": 48,
}  # fmt: skip

# After the common header (type, locate, tracking, timestamp: 11 bytes).
HEADER = struct.Struct(">cHH6s")
STOCK_DIRECTORY = struct.Struct(">8s")  # Stock; the rest is not used
ADD_ORDER = struct.Struct(">QcI8sI")  # order ref, side, shares, stock, price
ORDER_EXECUTED = struct.Struct(">QIQ")  # order ref, executed shares, match number
ORDER_EXECUTED_WITH_PRICE = struct.Struct(">QIQcI")  # ... printable, execution price
ORDER_CANCEL = struct.Struct(">QI")  # order ref, cancelled shares
ORDER_DELETE = struct.Struct(">Q")
ORDER_REPLACE = struct.Struct(">QQII")  # original ref, new ref, shares, price
TRADE = struct.Struct(">QcI8sIQ")  # order ref, side, shares, stock, price, match number
CROSS_TRADE = struct.Struct(">Q8sIQc")  # shares, stock, cross price, match number, cross type
HEADER_BYTES = 11
PRICE_DECIMALS = 4
BUY = b"B"

# MoldUDP64
MOLD_HEADER = struct.Struct(">10sQH")
MOLD_END_OF_SESSION = 0xFFFF
# SoupBinTCP
SOUP_SEQUENCED = b"S"
SOUP_LOGIN_ACCEPTED = b"A"
SOUP_LOGIN_REJECTED = b"J"
SOUP_SERVER_HEARTBEAT = b"H"
SOUP_END_OF_SESSION = b"Z"
SOUP_DEBUG = b"+"


def soup_login(username: str, password: str, session: str = "", sequence: int = 1) -> bytes:
    payload = (
        b"L"
        + username.encode().ljust(6)[:6]
        + password.encode().ljust(10)[:10]
        + session.encode().rjust(10)[:10]
        + str(sequence).encode().rjust(20)
    )
    return len(payload).to_bytes(2, "big") + payload


def soup_client_heartbeat() -> bytes:
    return b"\x00\x01R"
