"""``mdgw bench gateway`` runs end to end (tiny durations): every case is measured, for each
worker count, and the tables print, so the benchmark cannot rot between the runs people make by
hand."""

from __future__ import annotations

import argparse

import pytest
import uvloop

from gateway import bench


# It starts 2 x 2 server processes and runs 18 cases: about 20 s alone, near a minute beside a CPU
# hog, which is the suite's per-test limit; the limit is for hangs, not for the machine's speed.
@pytest.mark.timeout(300)
def test_bench_gateway_measures_every_case(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(
        seconds=0.3, warmup=0.2, subscribers="1,3", concurrency=4, workers="1,2"
    )
    streams, quotes = uvloop.run(bench.measure(args))
    cases = [(row.rpc.split()[0], row.workers, row.subscribers) for row in streams]
    assert cases == [
        (rpc, workers, subscribers)
        for workers in (1, 2)
        for subscribers in (1, 3)
        for rpc in ("StreamPrices", "StreamPriceBatches")
    ]
    assert all(row.bare > 0 and row.gateway > 0 for row in streams)
    assert [row.workers for row in quotes] == [1, 2]
    assert all(row.bare_rps > 0 and row.gateway_rps > 0 for row in quotes)
    assert all(row.gateway_cores > 0 for row in streams)  # the servers' CPU is read
    assert all(row.bare_cores > 0 and row.gateway_cores > 0 for row in quotes)
    bench.print_streams(streams)
    bench.print_quotes(quotes)
    assert "StreamPriceBatches (10)" in capsys.readouterr().out
