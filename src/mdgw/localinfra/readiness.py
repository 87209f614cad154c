"""Is a server ready? Kafka: it answers a metadata request. Cassandra: it answers CQL OPTIONS."""

from __future__ import annotations

import logging
import socket

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

# CQL native protocol v4 OPTIONS request: version 0x04, flags 0, stream 0, opcode 0x05, length 0.
_CQL_OPTIONS = bytes([0x04, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00])
_CQL_SUPPORTED_OPCODE = 0x06
_quiet = logging.getLogger("mdgw.localinfra.probe")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False  # a broker that is still starting makes librdkafka log errors


def cassandra_ready(port: int, timeout_s: float = 2.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(_CQL_OPTIONS)
            header = _read_exactly(sock, 9)
    except OSError:
        return False
    # response version has the high bit set (0x84); opcode SUPPORTED
    return header is not None and header[0] & 0x80 != 0 and header[4] == _CQL_SUPPORTED_OPCODE


def kafka_ready(port: int, timeout_s: float = 2.0) -> bool:
    if not _accepts_connections(port):
        return False
    # librdkafka takes a logging.Logger for "logger"; the stub only allows scalars
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "logger": _quiet})  # type: ignore[dict-item]
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return bool(metadata.brokers)


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _read_exactly(sock: socket.socket, count: int) -> bytes | None:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data
