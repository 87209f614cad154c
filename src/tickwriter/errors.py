"""Tick writer errors.

TickWriterError
 +-- RecordRejected     a record that cannot be decoded or fails validation (goes to the DLQ)
 +-- WriteFailed        (retriable) Cassandra did not take a batch
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
