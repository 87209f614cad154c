"""The FIX 4.4 initiator session as a pure state machine: messages and times in, messages to
send and decisions out. The connection (``client.py``) does the I/O.

- Logon (A) with ResetSeqNumFlag=Y: both sides start at MsgSeqNum 1 on every connection.
- Heartbeat (0) when we sent nothing for HeartBtInt; TestRequest (1) when we heard
  nothing for 1.2 x HeartBtInt; no answer within another HeartBtInt: disconnect.
- An incoming TestRequest is answered with a Heartbeat carrying its TestReqID.
- Sequence gap (MsgSeqNum above the expected one): a ResendRequest (2) for the gap, and
  the caller resubscribes market data (a fresh snapshot is what matters for a book);
  a SequenceReset (4) moves the expected number forward. A MsgSeqNum below the expected
  one without PossDupFlag is a broken session: Logout and disconnect.
- Logout (5): answered, then the connection ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from feedhandlers.venues.fix import schema
from feedhandlers.venues.fix.parse import MAX_NUMBER_DIGITS, FixMessage

NANOS = 1_000_000_000


def sending_time(now_ns: int) -> str:
    """FIX UTCTimestamp with milliseconds, from Unix nanoseconds (pure arithmetic)."""
    days, rest = divmod(now_ns // 1_000_000, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    year, month, day = _civil_from_days(days)
    return f"{year:04d}{month:02d}{day:02d}-{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm)."""
    days += 719_468
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = month_index + 3 if month_index < 10 else month_index - 9
    return year_of_era + era * 400 + (month <= 2), month, day


@dataclass(frozen=True, slots=True)
class SessionConfig:
    sender_comp_id: str = "MDGW"
    target_comp_id: str = "VENUE"
    heartbeat_s: int = 30


@dataclass(slots=True)
class SessionOutcome:
    send: list[bytes] = field(default_factory=list)
    application: bool = False  # market data: hand the message to the parser
    logged_on: bool = False
    gap: tuple[int, int] | None = None  # (first missing, last missing): resubscribe
    disconnect: str = ""  # non-empty: end the connection, for this reason
    rejected: str = ""  # a session-level Reject (3) from the venue
    dropped: bool = False  # a duplicate or out-of-sequence message: not to be applied


@dataclass(slots=True)
class FixSession:
    config: SessionConfig
    next_out: int = 1
    expected_in: int = 1
    logged_on: bool = False
    last_sent_ns: int = 0
    last_received_ns: int = 0
    test_request_id: str = ""
    test_request_sent_ns: int = 0
    _test_requests: int = 0

    def message(self, msg_type: str, body: list[schema.Field], now_ns: int) -> bytes:
        """Encode an outgoing message with the session header and the next MsgSeqNum."""
        header: list[schema.Field] = [
            (schema.SENDER_COMP_ID, self.config.sender_comp_id),
            (schema.TARGET_COMP_ID, self.config.target_comp_id),
            (schema.MSG_SEQ_NUM, str(self.next_out)),
            (schema.SENDING_TIME, sending_time(now_ns)),
        ]
        self.next_out += 1
        self.last_sent_ns = now_ns
        return schema.encode(msg_type, body, header=header)

    def logon(self, now_ns: int) -> bytes:
        self.next_out = self.expected_in = 1
        self.logged_on = False
        self.last_received_ns = now_ns
        body: list[schema.Field] = [
            (schema.ENCRYPT_METHOD, "0"),
            (schema.HEART_BT_INT, str(self.config.heartbeat_s)),
            (schema.RESET_SEQ_NUM_FLAG, "Y"),
        ]
        return self.message(schema.LOGON, body, now_ns)

    def logout(self, now_ns: int, text: str = "") -> bytes:
        return self.message(schema.LOGOUT, [(schema.TEXT, text)] if text else [], now_ns)

    def on_message(self, message: FixMessage, now_ns: int) -> SessionOutcome:
        self.last_received_ns = now_ns
        self.test_request_id = ""  # any traffic answers a pending TestRequest
        outcome = SessionOutcome()
        kind = message.msg_type
        if kind == schema.SEQUENCE_RESET:
            new_seq = message.get(schema.NEW_SEQ_NO)
            # a NewSeqNo of thousands of digits is no number (int() would raise)
            if (
                new_seq.isdigit()
                and len(new_seq) <= MAX_NUMBER_DIGITS
                and int(new_seq) > self.expected_in
            ):
                self.expected_in = int(new_seq)
            return outcome
        if not self._check_sequence(message, now_ns, outcome):
            return outcome
        if kind == schema.LOGON:
            self.logged_on = outcome.logged_on = True
        elif kind == schema.TEST_REQUEST:
            test_id = message.get(schema.TEST_REQ_ID)
            outcome.send.append(
                self.message(schema.HEARTBEAT, [(schema.TEST_REQ_ID, test_id)], now_ns)
            )
        elif kind == schema.LOGOUT:
            outcome.send.append(self.logout(now_ns))
            outcome.disconnect = "logout"
        elif kind == schema.REJECT:
            outcome.rejected = message.get(schema.TEXT, "session reject")
        elif kind not in schema.SESSION_TYPES:
            outcome.application = True
        return outcome

    def _check_sequence(self, message: FixMessage, now_ns: int, outcome: SessionOutcome) -> bool:
        """Advance the expected MsgSeqNum; False when the message must be dropped."""
        seq = message.seq_num
        if seq == self.expected_in:
            self.expected_in += 1
            return True
        if seq > self.expected_in:
            outcome.gap = (self.expected_in, seq - 1)
            outcome.send.append(
                self.message(
                    schema.RESEND_REQUEST,
                    [(schema.BEGIN_SEQ_NO, str(self.expected_in)), (schema.END_SEQ_NO, "0")],
                    now_ns,
                )
            )
            self.expected_in = seq + 1
            return True
        outcome.dropped = True
        if message.get(schema.POSS_DUP_FLAG) == "Y":
            return False  # a resent duplicate of what we already have
        outcome.send.append(self.logout(now_ns, f"MsgSeqNum too low: {seq} < {self.expected_in}"))
        outcome.disconnect = "sequence_too_low"
        return False

    def on_timer(self, now_ns: int) -> SessionOutcome:
        """Heartbeats and the TestRequest watchdog; call about once a second."""
        outcome = SessionOutcome()
        interval_ns = self.config.heartbeat_s * NANOS
        if self.test_request_id:
            if now_ns - self.test_request_sent_ns >= interval_ns:
                outcome.disconnect = "heartbeat_timeout"
            return outcome
        if now_ns - self.last_received_ns >= interval_ns * 6 // 5:
            self._test_requests += 1
            self.test_request_id = f"T{self._test_requests}"
            self.test_request_sent_ns = now_ns
            outcome.send.append(
                self.message(
                    schema.TEST_REQUEST, [(schema.TEST_REQ_ID, self.test_request_id)], now_ns
                )
            )
        elif now_ns - self.last_sent_ns >= interval_ns:
            outcome.send.append(self.message(schema.HEARTBEAT, [], now_ns))
        return outcome
