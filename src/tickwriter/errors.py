"""Tick writer errors.

TickWriterError
 +-- RecordRejected     a record that cannot be decoded or fails validation (goes to the DLQ)
 +-- WriteFailed        (retriable) Cassandra did not take a batch: down, timed out, overloaded
 +-- WriteRefused       (not retriable) the rows themselves cannot be written, so no retry will
                        help: the driver cannot serialize a value, or Cassandra answers
                        InvalidRequest. The pipeline then writes the rows one by one, and those
                        refused alone go to the DLQ (``write_refused:<kind>``).
"""

from __future__ import annotations

from typing import ClassVar


class TickWriterError(Exception):
    retriable: ClassVar[bool] = False


class RecordRejected(TickWriterError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class WriteFailed(TickWriterError):
    retriable: ClassVar[bool] = True

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"write failed ({kind}): {detail}")
        self.kind = kind


class WriteRefused(TickWriterError):
    retriable: ClassVar[bool] = False

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"write refused ({kind}): {detail}")
        self.kind = kind
        self.detail = detail
