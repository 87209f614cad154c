"""The gRPC subscribers of ``mdgw bench e2e`` (``python -m mdgw.e2e.clients``), one process
holding several StreamPrices calls: the same code reads the gateway and the bare server.

Each message is kept as it came (receipt time, bytes) and decoded only at the end, so the
client does as little as possible while it measures. Control on stdin: ``stop START_NS
END_NS`` ends the calls and prints, as one JSON line, HDR histograms (encoded) of the hops
that end at the client for ticks whose event time is in [START_NS, END_NS): gateway send ->
client, feed receipt -> client, venue event -> client; how many such updates each stream
got; and, of the first stream, (symbol, feed_sequence, send_ns) per update, for the hop from
the Kafka record that the bench computes. Prints ``subscribed`` once every call got its
first message (the snapshot, or the first tick).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import grpc
import orjson
import uvloop

from financial.marketdata.v2.prices_pb2 import PriceSubscription, PriceUpdate
from mdgw.e2e.ceilings import STREAM_PRICES, new_histogram

RawCall = grpc.aio.UnaryStreamCall[bytes, bytes]  # no (de)serializers: bytes both ways


async def _read(call: RawCall, kept: list[tuple[int, bytes]], first: asyncio.Event) -> None:
    wall_ns = time.time_ns
    try:
        async for message in call:
            kept.append((wall_ns(), message))
            first.set()
    except (grpc.aio.AioRpcError, asyncio.CancelledError):
        pass  # cancelled at stop, or the server ended the stream


async def _stdin_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def run(
    target: str, symbols: list[str], exchange: str, subscribers: int
) -> dict[str, object]:
    service, method = STREAM_PRICES
    # a connection per client, as separate clients have (not one shared subchannel)
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(subscribers)]
    request = PriceSubscription(symbols=symbols, exchange=exchange).SerializeToString()
    kept: list[list[tuple[int, bytes]]] = [[] for _ in range(subscribers)]
    firsts = [asyncio.Event() for _ in range(subscribers)]
    calls: list[RawCall] = []
    readers = []
    for channel, stream_kept, first in zip(channels, kept, firsts, strict=True):
        open_stream: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
            f"/{service}/{method}"
        )
        call = open_stream(request)
        calls.append(call)
        readers.append(asyncio.ensure_future(_read(call, stream_kept, first)))
    await asyncio.gather(*(first.wait() for first in firsts))
    sys.stdout.write("subscribed\n")
    sys.stdout.flush()
    words = (await _stdin_line()).split()
    start_ns, end_ns = int(words[1]), int(words[2])
    for call in calls:
        call.cancel()
    await asyncio.gather(*readers)
    for channel in channels:
        await channel.close()
    return summarize(kept, start_ns, end_ns)


def summarize(kept: list[list[tuple[int, bytes]]], start_ns: int, end_ns: int) -> dict[str, object]:
    send_client, receipt_client, event_client = new_histogram(), new_histogram(), new_histogram()
    counts = []
    first_stream: list[tuple[str, int, int]] = []
    for index, stream in enumerate(kept):
        count = 0
        for received_ns, data in stream:
            update = PriceUpdate.FromString(data)
            if not start_ns <= update.event_time_ns < end_ns:
                continue  # a snapshot, or a tick of the warm-up or of another run
            count += 1
            send_client.record_value(max(1, received_ns - update.gateway_send_time_ns))
            receipt_client.record_value(max(1, received_ns - update.received_time_ns))
            event_client.record_value(max(1, received_ns - update.event_time_ns))
            if index == 0:
                first_stream.append(
                    (update.symbol, update.feed_sequence, update.gateway_send_time_ns)
                )
        counts.append(count)
    return {
        "send_client": send_client.encode().decode(),
        "receipt_client": receipt_client.encode().decode(),
        "event_client": event_client.encode().decode(),
        "counts": counts,
        "first_stream": first_stream,
        "message_bytes": max((len(d) for s in kept for _, d in s[-1:]), default=0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mdgw.e2e.clients")
    parser.add_argument("--target", required=True)
    parser.add_argument("--symbols", required=True)
    parser.add_argument("--exchange", default="")
    parser.add_argument("--subscribers", type=int, default=1)
    args = parser.parse_args(argv)
    result = uvloop.run(run(args.target, args.symbols.split(","), args.exchange, args.subscribers))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
