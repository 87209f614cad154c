"""Plumbing shared by the services: settings, logging, metrics, Kafka and Cassandra adapters,
and the topic and table declarations. The pure domain lives in ``marketcore``.
"""
