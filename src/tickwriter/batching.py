"""When to flush a micro-batch, and how to cut it into Cassandra batches. Pure."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

Item = TypeVar("Item")


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    max_records: int = 200
    max_wait_ms: float = 50.0

    def __post_init__(self) -> None:
        if self.max_records < 1 or self.max_wait_ms < 0:
            raise ValueError(f"invalid flush policy: {self}")


def should_flush(policy: FlushPolicy, pending: int, oldest_age_ms: float, drained: bool) -> bool:
    """Flush when full, when the oldest record waited long enough, or as soon as nothing more
    is waiting: low latency at low load, large batches at high load."""
    if pending == 0:
        return False
    return pending >= policy.max_records or oldest_age_ms >= policy.max_wait_ms or drained


def chunk_by_partition(
    items: Iterable[Item], partition_of: Callable[[Item], Hashable], max_per_chunk: int
) -> list[list[Item]]:
    """Group items by partition key, keeping arrival order, in chunks of at most ``max_per_chunk``.

    One chunk becomes one UNLOGGED batch: a batch touching one partition is applied as one
    mutation on one replica set, and bounding it keeps it under the batch-size warning.
    """
    if max_per_chunk < 1:
        raise ValueError(f"max_per_chunk must be positive: {max_per_chunk}")
    groups: dict[Hashable, list[Item]] = {}
    for item in items:
        groups.setdefault(partition_of(item), []).append(item)
    chunks: list[list[Item]] = []
    for group in groups.values():
        chunks.extend(group[i : i + max_per_chunk] for i in range(0, len(group), max_per_chunk))
    return chunks


def commit_positions(offsets: Sequence[tuple[str, int, int]]) -> dict[tuple[str, int], int]:
    """Next offset to commit per (topic, partition): one past the highest handled offset."""
    positions: dict[tuple[str, int], int] = {}
    for topic, partition, offset in offsets:
        key = (topic, partition)
        positions[key] = max(positions.get(key, 0), offset + 1)
    return positions
