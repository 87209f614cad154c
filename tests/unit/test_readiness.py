"""Readiness: named conditions, all needed; changes reach watchers."""

import pytest

from marketinfra.readiness import CASSANDRA, KAFKA, Readiness


def test_a_service_is_ready_only_once_every_condition_is_met() -> None:
    readiness = Readiness()
    readiness.add(KAFKA, "no statistics yet")
    readiness.add(CASSANDRA, "not connected")
    assert not readiness.ready
    assert readiness.unmet() == {KAFKA: "no statistics yet", CASSANDRA: "not connected"}
    readiness.set(KAFKA, True)
    assert not readiness.ready
    readiness.set(CASSANDRA, True)
    assert readiness.ready
    readiness.set(CASSANDRA, False, "writes failing")
    assert readiness.unmet() == {CASSANDRA: "writes failing"}


def test_watchers_hear_of_changes_not_of_repeats() -> None:
    readiness = Readiness()
    calls: list[bool] = []
    readiness.watch(lambda: calls.append(readiness.ready))
    assert calls == [True]  # nothing to meet yet
    readiness.add(KAFKA, "not yet")
    readiness.set(KAFKA, True)
    readiness.set(KAFKA, True)
    readiness.set(KAFKA, False, "down")
    readiness.set(KAFKA, False, "down")
    assert calls == [True, False, True, False]


def test_a_condition_must_be_added_before_it_is_reported() -> None:
    with pytest.raises(KeyError, match="never added"):
        Readiness().set("partitions", True)
