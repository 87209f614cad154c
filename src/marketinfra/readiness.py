"""What a service needs to do its job, as named conditions; ready when every one is met.

Each service makes one ``Readiness`` in ``app.py``, names its conditions there, and its
adapters report them (from any thread) with ``set``; the health port
(``marketinfra.health``) and the service's own gRPC health follow it. Adding a condition is
one ``add`` and the ``set`` calls that feed it::

    readiness = Readiness()
    readiness.add(KAFKA, "no statistics from the brokers yet")
    ...
    readiness.set(KAFKA, brokers > 0, "no broker connected")

A condition starts unmet. Only changes are logged (``readiness_changed``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

# Conditions the services share; a service may add its own.
KAFKA = "kafka"  # connected to at least one broker
CASSANDRA = "cassandra"  # at least one node up, and writes (or reads) going through
PARTITIONS = "partitions"  # the consumer has its partitions (group joined, or assigned)


class Readiness:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._unmet: dict[str, str] = {}  # condition -> why it is not met
        self._known: set[str] = set()
        self._watchers: list[Callable[[], None]] = []

    def add(self, condition: str, why_not_yet: str) -> None:
        """A condition that must be met from now on; it starts unmet for ``why_not_yet``."""
        with self._lock:
            self._known.add(condition)
            self._unmet[condition] = why_not_yet
        self._notify()

    def set(self, condition: str, met: bool, why_not: str = "") -> None:
        """Report a condition (cheap when nothing changed; any thread)."""
        why_not = why_not or "not met"
        with self._lock:
            if condition not in self._known:
                raise KeyError(f"readiness condition {condition!r} was never added")
            was_met = condition not in self._unmet
            if met == was_met and (met or self._unmet[condition] == why_not):
                return
            if met:
                del self._unmet[condition]
            else:
                self._unmet[condition] = why_not
            reason = self._unmet.get(condition)
            ready = not self._unmet
        log.info(
            "readiness_changed",
            condition=condition,
            met=met,
            reason=None if met else reason,
            ready=ready,
        )
        if met != was_met:
            self._notify()

    @property
    def ready(self) -> bool:
        with self._lock:
            return not self._unmet

    def unmet(self) -> dict[str, str]:
        """The conditions not met, with why."""
        with self._lock:
            return dict(self._unmet)

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the thread that made the change) whenever readiness may
        have changed; once now."""
        with self._lock:
            self._watchers.append(callback)
        callback()

    def _notify(self) -> None:
        with self._lock:
            watchers = list(self._watchers)
        for callback in watchers:
            callback()
