"""Shared by the fuzz suite: how many inputs each target tried, and for RPC targets the status
codes they answered, for ``mdgw bench fuzz``."""

from __future__ import annotations

from collections import Counter

# target name -> inputs tried in this process; the conftest writes it out at the end
INPUTS_TRIED: Counter[str] = Counter()
# target name -> gRPC status code name -> answers (OK, INVALID_ARGUMENT...; INTERNAL is a bug)
STATUSES: dict[str, Counter[str]] = {}


def tried(target: str) -> None:
    """Count one input given to ``target`` (call it once per example, first thing)."""
    INPUTS_TRIED[target] += 1


def answered(target: str, code: str) -> None:
    """Count one answer of an RPC target by its status code name (``"OK"``, ``"INTERNAL"``)."""
    STATUSES.setdefault(target, Counter())[code] += 1
