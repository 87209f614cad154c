"""FIX 4.4: the schema against the FIX 4.4 data dictionary (tests/data/fix), framing with
BodyLength and CheckSum, market data into ticks, and the session state machine."""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from feedhandlers.parsing import FrameKind
from feedhandlers.venues.fix import schema
from feedhandlers.venues.fix.parse import FixFramer, FixParser, decode
from feedhandlers.venues.fix.session import FixSession, SessionConfig, sending_time
from marketcore.normalization import RejectReason
from marketcore.ticks import Tick

DICTIONARY = Path(__file__).parents[1] / "data" / "fix" / "FIX44-marketdata.xml"
T0 = 1_618_677_810_244_000_000  # 2021-04-17 16:43:30.244 UTC


def _fields() -> dict[int, ET.Element]:
    root = ET.parse(DICTIONARY).getroot()
    return {int(f.attrib["number"]): f for f in root.iter("field") if "number" in f.attrib}


@pytest.mark.parametrize(
    ("tag", "name"),
    [
        (schema.BODY_LENGTH, "BodyLength"),
        (schema.CHECKSUM, "CheckSum"),
        (schema.MSG_SEQ_NUM, "MsgSeqNum"),
        (schema.MSG_TYPE, "MsgType"),
        (schema.NEW_SEQ_NO, "NewSeqNo"),
        (schema.SENDING_TIME, "SendingTime"),
        (schema.SYMBOL, "Symbol"),
        (schema.BEGIN_SEQ_NO, "BeginSeqNo"),
        (schema.END_SEQ_NO, "EndSeqNo"),
        (schema.POSS_DUP_FLAG, "PossDupFlag"),
        (schema.HEART_BT_INT, "HeartBtInt"),
        (schema.TEST_REQ_ID, "TestReqID"),
        (schema.GAP_FILL_FLAG, "GapFillFlag"),
        (schema.RESET_SEQ_NUM_FLAG, "ResetSeqNumFlag"),
        (schema.NO_RELATED_SYM, "NoRelatedSym"),
        (schema.MD_REQ_ID, "MDReqID"),
        (schema.SUBSCRIPTION_REQUEST_TYPE, "SubscriptionRequestType"),
        (schema.MARKET_DEPTH, "MarketDepth"),
        (schema.MD_UPDATE_TYPE, "MDUpdateType"),
        (schema.NO_MD_ENTRY_TYPES, "NoMDEntryTypes"),
        (schema.NO_MD_ENTRIES, "NoMDEntries"),
        (schema.MD_ENTRY_TYPE, "MDEntryType"),
        (schema.MD_ENTRY_PX, "MDEntryPx"),
        (schema.MD_ENTRY_SIZE, "MDEntrySize"),
        (schema.MD_ENTRY_DATE, "MDEntryDate"),
        (schema.MD_ENTRY_TIME, "MDEntryTime"),
        (schema.MD_UPDATE_ACTION, "MDUpdateAction"),
        (schema.MD_REQ_REJ_REASON, "MDReqRejReason"),
    ],
)
def test_tags_match_the_fix44_dictionary(tag: int, name: str) -> None:
    assert _fields()[tag].attrib["name"] == name


def _enum(tag: int) -> dict[str, str]:
    return {v.attrib["description"]: v.attrib["enum"] for v in _fields()[tag].iter("value")}


def test_enumerations_and_message_types_match_the_fix44_dictionary() -> None:
    entry_types = _enum(schema.MD_ENTRY_TYPE)
    assert (entry_types["BID"], entry_types["OFFER"], entry_types["TRADE"]) == (
        schema.BID,
        schema.OFFER,
        schema.TRADE,
    )
    actions = _enum(schema.MD_UPDATE_ACTION)
    assert (actions["NEW"], actions["CHANGE"], actions["DELETE"]) == (
        schema.NEW,
        schema.CHANGE,
        schema.DELETE,
    )
    subscription = _enum(schema.SUBSCRIPTION_REQUEST_TYPE)
    assert subscription["SNAPSHOT_AND_UPDATES"] == schema.SNAPSHOT_AND_UPDATES
    assert subscription["DISABLE_PREVIOUS_SNAPSHOT"] == schema.UNSUBSCRIBE
    assert _enum(schema.MD_UPDATE_TYPE)["INCREMENTAL_REFRESH"] == "1"
    root = ET.parse(DICTIONARY).getroot()
    types = {m.attrib["name"]: m.attrib["msgtype"] for m in root.iter("message")}
    assert types["MarketDataRequest"] == schema.MARKET_DATA_REQUEST
    assert types["MarketDataSnapshotFullRefresh"] == schema.MARKET_DATA_SNAPSHOT
    assert types["MarketDataIncrementalRefresh"] == schema.MARKET_DATA_INCREMENTAL
    assert types["MarketDataRequestReject"] == schema.MARKET_DATA_REJECT
    assert (types["Logon"], types["Heartbeat"], types["TestRequest"]) == ("A", "0", "1")
    assert (types["ResendRequest"], types["SequenceReset"], types["Logout"]) == ("2", "4", "5")


# --- framing ------------------------------------------------------------------------------


def _msg(msg_type: str, body: list[schema.Field], seq: int = 1, when_ns: int = T0) -> bytes:
    header = [(49, "SIM"), (56, "MDGW"), (34, str(seq)), (52, sending_time(when_ns))]
    return schema.encode(msg_type, body, header=header)


def test_encode_computes_body_length_and_checksum_like_the_spec_example() -> None:
    raw = schema.encode("0", [(49, "A"), (56, "B"), (34, "2"), (52, "20210417-16:43:30.244")])
    assert raw.startswith(b"8=FIX.4.4\x019=45\x0135=0\x01")  # 5+5+5+5+25 bytes
    assert raw.endswith(b"\x0110=" + b"%03d" % (sum(raw[:-7]) % 256) + b"\x01")
    assert sending_time(T0) == "20210417-16:43:30.244"


def test_framer_cuts_a_stream_split_anywhere() -> None:
    stream = _msg("0", [], 1) + _msg("0", [], 2) + _msg("0", [], 3)
    for cut in range(1, len(stream)):
        framer = FixFramer()
        pieces = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert [decode(p.raw).seq_num for p in pieces] == [1, 2, 3]


def test_framer_reports_a_bad_checksum_or_body_length_and_resynchronizes() -> None:
    good = _msg("0", [], 1)
    bad_checksum = good[:-4] + b"%03d" % ((int(good[-4:-1]) + 1) % 256) + b"\x01"
    bad_length = good.replace(b"9=", b"9=9", 1)
    framer = FixFramer()
    pieces = framer.feed(b"junk" + bad_checksum + bad_length + _msg("0", [], 2))
    errors = [p.error for p in pieces if p.error]
    assert any("before 8=FIX" in e for e in errors)
    assert any("CheckSum" in e for e in errors)
    assert [decode(p.raw).seq_num for p in pieces if not p.error] == [2]


# --- market data --------------------------------------------------------------------------


def _snapshot_body(symbol: str = "AAPL") -> list[schema.Field]:
    return [
        (262, "md-1"), (55, symbol), (268, "3"),
        (269, "0"), (270, "189.49"), (271, "300"),
        (269, "1"), (270, "189.51"), (271, "200"),
        (269, "2"), (270, "189.50"), (271, "10"),
        (272, "20210417"), (273, "16:43:29.500"),
    ]  # fmt: skip


def test_snapshot_sets_the_book_and_the_last_trade() -> None:
    result = FixParser("SIMX").parse(_msg("W", _snapshot_body()), T0 + 77)
    assert result.ticks == [
        Tick(
            exchange="SIMX",
            symbol="AAPL",
            bid_nanos=189_490_000_000,
            ask_nanos=189_510_000_000,
            last_nanos=189_500_000_000,
            bid_size_nanos=300_000_000_000,
            ask_size_nanos=200_000_000_000,
            last_size_nanos=10_000_000_000,
            event_time_ns=1_618_677_809_500_000_000,  # the trade entry's 272/273
            received_time_ns=T0 + 77,
            venue_symbol="AAPL",
        )
    ]


def test_incremental_refresh_moves_the_top_and_emits_once_per_symbol() -> None:
    parser = FixParser("SIMX")
    parser.parse(_msg("W", _snapshot_body("AAPL"), 1), T0 + 1)
    parser.parse(_msg("W", _snapshot_body("MSFT"), 2), T0 + 1)
    body = [
        (262, "md-1"), (268, "4"),
        (279, "2"), (269, "0"), (55, "AAPL"), (270, "189.49"),
        (279, "0"), (269, "0"), (55, "AAPL"), (270, "189.50"), (271, "100"),
        (279, "1"), (269, "1"), (55, "MSFT"), (270, "189.51"), (271, "999"),
        (279, "0"), (269, "1"), (55, "MSFT"), (270, "195.00"), (271, "1"),  # below the top
    ]  # fmt: skip
    result = parser.parse(_msg("X", body, 3, T0 + 1_000_000), T0 + 2_000_000)
    aapl, msft = result.ticks
    assert (aapl.symbol, aapl.bid_nanos, aapl.bid_size_nanos) == (
        "AAPL",
        189_500_000_000,
        100_000_000_000,
    )
    assert aapl.event_time_ns == T0 + 1_000_000  # no entry time: SendingTime
    assert (msft.symbol, msft.ask_nanos, msft.ask_size_nanos) == (
        "MSFT",
        189_510_000_000,
        999_000_000_000,
    )
    assert result.rejections == []


def test_an_update_before_the_snapshot_asks_for_one() -> None:
    body = [(268, "1"), (279, "0"), (269, "0"), (55, "IBM"), (270, "1"), (271, "1")]
    result = FixParser().parse(_msg("X", body), 1)
    assert [r.reason for r in result.rejections] == [RejectReason.BOOK_NOT_READY]
    assert result.resync == ["IBM"]


def test_a_crossed_book_is_refused_with_a_reason() -> None:
    parser = FixParser()
    parser.parse(_msg("W", _snapshot_body()), T0 + 1)
    body = [(268, "1"), (279, "0"), (269, "0"), (55, "AAPL"), (270, "190.00"), (271, "1")]
    result = parser.parse(_msg("X", body, 2), T0 + 2)
    assert [r.reason for r in result.rejections] == [RejectReason.CROSSED_QUOTE]


def test_market_data_request_reject_is_a_venue_error() -> None:
    result = FixParser().parse(_msg("Y", [(262, "md-1"), (281, "0"), (58, "Unknown symbol")]), 1)
    assert result.kind is FrameKind.VENUE_ERROR
    assert "Unknown symbol" in result.rejections[0].detail


def test_a_tampered_message_is_malformed_not_fatal() -> None:
    raw = bytearray(_msg("W", _snapshot_body()))
    raw[30] ^= 1
    result = FixParser().parse(bytes(raw), 1)
    assert result.kind is FrameKind.MALFORMED


# --- session ------------------------------------------------------------------------------


def _session() -> FixSession:
    return FixSession(SessionConfig("MDGW", "SIM", heartbeat_s=10))


def test_logon_resets_sequence_numbers_and_marks_the_session_up() -> None:
    session = _session()
    logon = decode(session.logon(T0))
    assert (logon.msg_type, logon.seq_num, logon.get(141), logon.get(108)) == ("A", 1, "Y", "10")
    outcome = session.on_message(decode(_msg("A", [(98, "0"), (108, "10")], 1)), T0)
    assert outcome.logged_on
    assert session.expected_in == 2


def test_test_request_is_answered_with_its_id() -> None:
    session = _session()
    session.logon(T0)
    outcome = session.on_message(decode(_msg("1", [(112, "ping-7")], 1)), T0)
    (reply,) = outcome.send
    heartbeat = decode(reply)
    assert (heartbeat.msg_type, heartbeat.get(112), heartbeat.seq_num) == ("0", "ping-7", 2)


def test_a_gap_sends_a_resend_request_and_is_reported() -> None:
    session = _session()
    session.logon(T0)
    session.on_message(decode(_msg("A", [], 1)), T0)
    outcome = session.on_message(decode(_msg("X", [], 5)), T0)
    assert outcome.gap == (2, 4)
    assert outcome.application
    resend = decode(outcome.send[0])
    assert (resend.msg_type, resend.get(7), resend.get(16)) == ("2", "2", "0")
    fill = session.on_message(decode(_msg("4", [(123, "Y"), (36, "9"), (43, "Y")], 2)), T0)
    assert fill.send == []
    assert session.expected_in == 9


def test_sequence_too_low_logs_out_unless_a_possible_duplicate() -> None:
    session = _session()
    session.logon(T0)
    session.on_message(decode(_msg("A", [], 1)), T0)
    session.on_message(decode(_msg("0", [], 2)), T0)
    duplicate = session.on_message(decode(_msg("X", [(43, "Y")], 2)), T0)
    assert duplicate.dropped
    assert not duplicate.disconnect
    low = session.on_message(decode(_msg("X", [], 1)), T0)
    assert low.disconnect == "sequence_too_low"
    assert decode(low.send[0]).msg_type == "5"


def test_heartbeats_then_test_request_then_disconnect_when_the_venue_goes_quiet() -> None:
    session = _session()
    session.logon(T0)
    second = 1_000_000_000
    assert session.on_timer(T0 + 5 * second).send == []
    heartbeat = session.on_timer(T0 + 10 * second)
    assert decode(heartbeat.send[0]).msg_type == "0"
    test_request = session.on_timer(T0 + 12 * second)
    assert decode(test_request.send[0]).msg_type == "1"
    assert session.on_timer(T0 + 21 * second).disconnect == ""
    assert session.on_timer(T0 + 22 * second).disconnect == "heartbeat_timeout"


def test_logout_is_answered() -> None:
    session = _session()
    session.logon(T0)
    outcome = session.on_message(decode(_msg("5", [], 1)), T0)
    assert outcome.disconnect == "logout"
    assert decode(outcome.send[0]).msg_type == "5"
