"""A NASDAQ ITCH 5.0 venue over SoupBinTCP that sends trades on a fixed schedule, for
``mdgw bench e2e`` (``python -m mdgw.e2e.venue``).

Open loop: tick ``i`` of a run is due at ``start + i / rate`` and is stamped with that time
(its ITCH timestamp), whatever happens downstream; when the sender is late it sends every
tick that is due at once, still stamped with its due time, so a stall shows in the latency
measured from the stamp instead of thinning the load (coordinated omission).

One message is one tick: a Trade (non-cross), type ``P``, which the feed handler turns into
one trade tick whatever the book holds. Written from the ITCH 5.0 and SoupBinTCP 4.0
specifications; threads and blocking sockets, so a due time is waited for with
``time.sleep`` (sub-millisecond), not an event loop's millisecond timers.

Control, on stdin: ``run RATE SECONDS`` sends a run and answers ``done TICKS START_NS`` on
stdout; ``quit`` (or end of input) stops. The first line on stdout is ``port PORT``.
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_NEW_YORK = ZoneInfo("America/New_York")
_SESSION = b"E2EBENCH01"
_HEARTBEAT_S = 1.0


def _header(kind: bytes, locate: int, nanos_since_midnight: int) -> bytes:
    return kind + struct.pack(">HH", locate, 0) + nanos_since_midnight.to_bytes(6, "big")


def stock_directory(locate: int, stock: str) -> bytes:
    body = struct.pack(
        ">8sccIcc2scccccIc", stock.encode().ljust(8), b"Q", b"N", 100, b"N", b"C", b"Z ",
        b"P", b"N", b"N", b"1", b"N", 0, b"N",
    )  # fmt: skip
    return _header(b"R", locate, 0) + body


def trade(locate: int, stock: str, price4: int, match: int, nanos_since_midnight: int) -> bytes:
    """Trade (non-cross) ``P``: order ref, side, shares, stock, price, match number."""
    body = struct.pack(">QcI8sIQ", 0, b"B", 100, stock.encode().ljust(8), price4, match)
    return _header(b"P", locate, nanos_since_midnight) + body


def since_midnight_ns(unix_ns: int) -> int:
    """Nanoseconds since midnight New York time (ITCH's time base) of a Unix time."""
    moment = datetime.fromtimestamp(unix_ns // 1_000_000_000, tz=UTC).astimezone(_NEW_YORK)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return (moment - midnight) // timedelta(seconds=1) * 1_000_000_000 + unix_ns % 1_000_000_000


def sequenced(message: bytes) -> bytes:
    return (len(message) + 1).to_bytes(2, "big") + b"S" + message


class ScheduledVenue:
    """The message history (SoupBinTCP resumes from any sequence number) and one client."""

    def __init__(self, symbols: list[str], listener: socket.socket) -> None:
        self.symbols = symbols
        self.history = [stock_directory(n + 1, s) for n, s in enumerate(symbols)]
        self._listener = listener
        self._lock = threading.Lock()  # the client socket and what it was sent
        self._client: socket.socket | None = None
        self._sent = 0  # messages of history the client has
        self._last_send = time.monotonic()
        self._match = 0

    def serve(self) -> None:
        """Accept clients, one at a time (a reconnect replaces the previous one)."""
        while True:
            connection, _ = self._listener.accept()
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._session, args=(connection,), daemon=True).start()

    def _session(self, connection: socket.socket) -> None:
        try:
            reader = connection.makefile("rb")
            header = reader.read(3)
            length = int.from_bytes(header[:2], "big")
            payload = reader.read(length - 1)
            if header[2:3] != b"L" or len(payload) != 46:
                connection.sendall(b"\x00\x02JA")
                return
            requested = max(1, int(payload[26:46].strip() or b"1"))
            accepted = b"A" + _SESSION + str(requested).encode().rjust(20)
            with self._lock:
                connection.sendall(len(accepted).to_bytes(2, "big") + accepted)
                backlog = b"".join(sequenced(m) for m in self.history[requested - 1 :])
                connection.sendall(backlog)
                self._client, self._sent = connection, len(self.history)
            while reader.read(1):  # client heartbeats and logout: read and dropped
                pass
        except OSError:
            pass
        finally:
            with self._lock:
                if self._client is connection:
                    self._client = None
            connection.close()

    def _send(self, messages: list[bytes]) -> None:
        with self._lock:
            self.history.extend(messages)
            client = self._client
            if client is None:
                return  # kept in history: a login resumes from where it stopped
            try:
                client.sendall(b"".join(sequenced(m) for m in self.history[self._sent :]))
                self._sent = len(self.history)
                self._last_send = time.monotonic()
            except OSError:
                self._client = None

    def heartbeats(self) -> None:
        while True:
            time.sleep(_HEARTBEAT_S / 4)
            with self._lock:
                client = self._client
                if client is None or time.monotonic() - self._last_send < _HEARTBEAT_S:
                    continue
                try:
                    client.sendall(b"\x00\x01H")
                    self._last_send = time.monotonic()
                except OSError:
                    self._client = None

    def run(self, rate_per_s: float, seconds: float) -> tuple[int, int]:
        """Send ``rate * seconds`` trades, tick i due (and stamped) at start + i / rate;
        returns (ticks, start_ns). The symbols take turns."""
        count = max(1, round(rate_per_s * seconds))
        interval_ns = 1e9 / rate_per_s
        start_ns = time.time_ns() + 20_000_000
        sent = 0
        symbols = self.symbols
        while sent < count:
            now_ns = time.time_ns()
            due: list[bytes] = []
            while sent < count and start_ns + int(sent * interval_ns) <= now_ns:
                stamp_ns = start_ns + int(sent * interval_ns)
                locate = sent % len(symbols)
                self._match += 1
                price4 = 1_000_000 + (self._match % 1000) * 100
                due.append(
                    trade(
                        locate + 1,
                        symbols[locate],
                        price4,
                        self._match,
                        since_midnight_ns(stamp_ns),
                    )
                )
                sent += 1
            if due:
                self._send(due)
            if sent < count:
                wait_ns = start_ns + int(sent * interval_ns) - time.time_ns()
                if wait_ns > 0:
                    time.sleep(wait_ns / 1e9)
        return count, start_ns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mdgw.e2e.venue")
    parser.add_argument("--symbols", required=True, help="comma-separated stock symbols")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    listener = socket.create_server((args.host, args.port))
    venue = ScheduledVenue(args.symbols.split(","), listener)
    threading.Thread(target=venue.serve, daemon=True).start()
    threading.Thread(target=venue.heartbeats, daemon=True).start()
    sys.stdout.write(f"port {listener.getsockname()[1]}\n")
    sys.stdout.flush()
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "run":
            ticks, start_ns = venue.run(float(words[1]), float(words[2]))
            sys.stdout.write(f"done {ticks} {start_ns}\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
