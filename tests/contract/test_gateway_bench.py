"""``mdgw bench gateway`` runs end to end (tiny durations): every case is measured, for each
worker count, bare and gateway interleaved in rounds, and the tables print, so the benchmark
cannot rot between the runs people make by hand. Structure only: no figure is judged here."""

from __future__ import annotations

import argparse

import pytest
import uvloop

from gateway import bench


# It starts 2 x 2 server processes and runs 36 cases (two rounds): about 40 s alone, longer
# beside a CPU hog; the limit is for hangs, not for the machine's speed.
@pytest.mark.timeout(400)
def test_bench_gateway_measures_every_case_in_interleaved_rounds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = argparse.Namespace(
        seconds=0.3, warmup=0.2, subscribers="1,3", concurrency=4, workers="1,2", repeats=2
    )
    streams, quotes = uvloop.run(bench.measure(args))
    cases = [(row.rpc.split()[0], row.workers, row.subscribers) for row in streams]
    assert cases == [
        (rpc, workers, subscribers)
        for workers in (1, 2)
        for subscribers in (1, 3)
        for rpc in ("StreamPrices", "StreamPriceBatches")
    ]
    for row in streams:  # one bare and one gateway figure per round, paired
        assert len(row.bare_samples) == len(row.gateway_samples) == 2
        assert len(row.round_ratios()) == 2
        assert all(sample > 0 for sample in row.bare_samples + row.gateway_samples)
        assert row.gateway_cores > 0  # the servers' CPU is read
    assert [row.workers for row in quotes] == [1, 2]
    for quote in quotes:
        assert len(quote.bare_samples) == len(quote.gateway_samples) == 2
        assert all(s.rps > 0 and s.cores > 0 for s in quote.bare_samples + quote.gateway_samples)
    assert set(bench.headline(streams, quotes)) == {
        "StreamPrices",
        "StreamPriceBatches",
        "GetQuote",
    }
    bench.print_headline(streams, quotes)
    bench.print_streams(streams)
    bench.print_quotes(quotes)
    out = capsys.readouterr().out
    assert "gateway / bare per RPC" in out
    assert "StreamPriceBatches (10)" in out
    assert "mostly framing" in out  # batches / StreamPrices stays, as context


def test_rounds_alternate_which_side_goes_first() -> None:
    assert [bench._sides(n) for n in range(3)] == [
        ("bare", "gateway"),
        ("gateway", "bare"),
        ("bare", "gateway"),
    ]


def test_a_row_above_its_ceiling_prints_its_spread(capsys: pytest.CaptureFixture[str]) -> None:
    row = bench.StreamRow(
        "StreamPrices",
        workers=1,
        subscribers=10,
        bare_samples=[100.0, 120.0, 110.0],
        gateway_samples=[105.0, 114.0, 121.0],
        feed_rate=1_000.0,
        gateway_cores_samples=[1.0, 1.0, 1.0],
    )
    assert row.ratio == pytest.approx(114 / 110)
    assert row.round_ratios() == pytest.approx([1.05, 0.95, 1.1])
    bench.print_streams([row])
    assert "above 100%: noise within the rounds' 95%-110%" in capsys.readouterr().out


def test_calls_lost_to_an_overloaded_machine_are_counted_not_fatal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def sample(failed: int) -> bench.QuoteSample:
        return bench.QuoteSample(rps=1_000.0, p50_ms=1.0, p99_ms=2.0, cores=1.0, failed=failed)

    row = bench.QuoteRow(1, [sample(0), sample(2)], [sample(1), sample(0)])
    bench.print_quotes([row])
    assert "calls lost (echo/GetQuote, all rounds): 2/1" in capsys.readouterr().out
