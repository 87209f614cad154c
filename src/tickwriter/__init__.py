"""Tick writer: the only service that writes market data to Cassandra.

Consumes ``ticks.raw`` (and ``trades.executed``, ``orders.lifecycle``) in micro-batches,
writes idempotent rows, commits offsets only after the rows are written, and sends what
it cannot decode to the dead-letter topic. Also serves TickWriterService over gRPC.
"""
