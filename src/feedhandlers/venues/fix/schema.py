"""FIX 4.4 market data: the tags and values we use, and the messages the initiator sends.

Field numbers and enumerations are those of the FIX 4.4 data dictionary (QuickFIX's
FIX44.xml, ``../shared/data/fix``). A message is ``tag=value<SOH>`` fields: BeginString
(8), BodyLength (9: bytes after the BodyLength field up to the CheckSum field), MsgType
(35), the body, CheckSum (10: the byte sum of everything before it, modulo 256, three
digits).

Session: Logon (A), Heartbeat (0), TestRequest (1), ResendRequest (2), Reject (3),
SequenceReset (4), Logout (5). Market data: MarketDataRequest (V), snapshot (W),
incremental refresh (X), MarketDataRequestReject (Y).
"""

from __future__ import annotations

from collections.abc import Sequence

SOH = b"\x01"
BEGIN_STRING = b"FIX.4.4"
EXCHANGE = "FIX"  # default exchange code; a deployment names its venue (FEEDHANDLER_FIX_EXCHANGE)

# tags
BEGIN_STRING_TAG = 8
BODY_LENGTH = 9
CHECKSUM = 10
MSG_SEQ_NUM = 34
MSG_TYPE = 35
NEW_SEQ_NO = 36
SENDER_COMP_ID = 49
SENDING_TIME = 52
SYMBOL = 55
TEXT = 58
BEGIN_SEQ_NO = 7
END_SEQ_NO = 16
POSS_DUP_FLAG = 43
ENCRYPT_METHOD = 98
HEART_BT_INT = 108
TEST_REQ_ID = 112
GAP_FILL_FLAG = 123
RESET_SEQ_NUM_FLAG = 141
TARGET_COMP_ID = 56
NO_RELATED_SYM = 146
MD_REQ_ID = 262
SUBSCRIPTION_REQUEST_TYPE = 263
MARKET_DEPTH = 264
MD_UPDATE_TYPE = 265
NO_MD_ENTRY_TYPES = 267
NO_MD_ENTRIES = 268
MD_ENTRY_TYPE = 269
MD_ENTRY_PX = 270
MD_ENTRY_SIZE = 271
MD_ENTRY_DATE = 272
MD_ENTRY_TIME = 273
MD_UPDATE_ACTION = 279
MD_REQ_REJ_REASON = 281

# MsgType (35)
HEARTBEAT = "0"
TEST_REQUEST = "1"
RESEND_REQUEST = "2"
REJECT = "3"
SEQUENCE_RESET = "4"
LOGOUT = "5"
LOGON = "A"
MARKET_DATA_REQUEST = "V"
MARKET_DATA_SNAPSHOT = "W"
MARKET_DATA_INCREMENTAL = "X"
MARKET_DATA_REJECT = "Y"
SESSION_TYPES = frozenset(
    {HEARTBEAT, TEST_REQUEST, RESEND_REQUEST, REJECT, SEQUENCE_RESET, LOGOUT, LOGON}
)

# MDEntryType (269)
BID = "0"
OFFER = "1"
TRADE = "2"
TRADE_VOLUME = "B"
# MDUpdateAction (279)
NEW = "0"
CHANGE = "1"
DELETE = "2"
# SubscriptionRequestType (263)
SNAPSHOT = "0"
SNAPSHOT_AND_UPDATES = "1"
UNSUBSCRIBE = "2"

Field = tuple[int, str]


def checksum(data: bytes) -> bytes:
    return b"%03d" % (sum(data) % 256)


def encode(msg_type: str, body: Sequence[Field], *, header: Sequence[Field] = ()) -> bytes:
    """A whole message: BeginString, BodyLength, MsgType, ``header``, ``body``, CheckSum."""
    fields = [(MSG_TYPE, msg_type), *header, *body]
    payload = b"".join(b"%d=%s\x01" % (tag, value.encode()) for tag, value in fields)
    head = b"8=" + BEGIN_STRING + SOH + b"9=%d" % len(payload) + SOH
    message = head + payload
    return message + b"10=" + checksum(message) + SOH


def market_data_request(
    request_id: str, symbols: Sequence[str], subscribe: bool = True
) -> list[Field]:
    """Top of book and trades for ``symbols``, snapshot then incremental updates."""
    body: list[Field] = [
        (MD_REQ_ID, request_id),
        (SUBSCRIPTION_REQUEST_TYPE, SNAPSHOT_AND_UPDATES if subscribe else UNSUBSCRIBE),
        (MARKET_DEPTH, "1"),
        (MD_UPDATE_TYPE, "1"),  # incremental refresh
        (NO_MD_ENTRY_TYPES, "3"),
        (MD_ENTRY_TYPE, BID),
        (MD_ENTRY_TYPE, OFFER),
        (MD_ENTRY_TYPE, TRADE),
        (NO_RELATED_SYM, str(len(symbols))),
    ]
    body.extend((SYMBOL, symbol) for symbol in symbols)
    return body
