"""The pure domain shared by every service: no I/O, no clock, no frameworks.

Time arrives as an argument (``*_ns``); prices and sizes are fixed-point integers
(nanos, 1e-9 of the unit). An import-linter contract keeps grpc, Kafka, Cassandra, logging and
metrics out of this package.
"""
