"""The pure domain shared by every service: no I/O, no clock, no frameworks.

Time arrives as an argument (``*_ns``); prices and sizes are fixed-point integers
(micros). An import-linter contract keeps grpc, Kafka, Cassandra, logging and
metrics out of this package.
"""
