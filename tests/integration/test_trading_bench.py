"""``mdgw bench trading`` runs end to end against the real Kafka (tiny durations): the bare
server, the raw transactional ceiling and the gateway each answer in every interleaved round,
and the ceiling and the gateway both commit Kafka transactions, so the benchmark cannot rot.
Structure only: no figure is judged here."""

from __future__ import annotations

import argparse

import pytest
import uvloop

from gateway import trading_bench
from marketinfra.settings import KafkaSettings

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)  # for hangs, not for the machine's speed
def test_bench_trading_measures_three_sides_in_interleaved_rounds(
    kafka_settings: KafkaSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(seconds=0.3, warmup=0.1, batch=10, concurrency=2, repeats=2)
    result = uvloop.run(trading_bench.measure(args, kafka_settings))
    assert set(result.sides) == {"bare", "ceiling", "gateway"}
    for side in result.sides.values():
        assert len(side.orders_per_s) == len(side.latencies_ms) == 2
        assert all(rate > 0 for rate in side.orders_per_s)
        assert all(sample for sample in side.latencies_ms)
    # the ceiling does the gateway's Kafka work; the bare server writes nothing
    assert result.sides["ceiling"].orders_per_transaction
    assert result.sides["gateway"].orders_per_transaction
    assert not result.sides["bare"].orders_per_transaction
    trading_bench.print_result(result, args)
    out = capsys.readouterr().out
    assert "gateway against the ceiling that does the same Kafka work" in out
