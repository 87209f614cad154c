"""Shared by the fuzz suite: how many inputs each target tried, for ``mdgw bench fuzz``."""

from __future__ import annotations

from collections import Counter

# target name -> inputs tried in this process; the conftest writes it out at the end
INPUTS_TRIED: Counter[str] = Counter()


def tried(target: str) -> None:
    """Count one input given to ``target`` (call it once per example, first thing)."""
    INPUTS_TRIED[target] += 1
