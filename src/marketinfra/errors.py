"""Infrastructure errors shared by every service.

InfraError
 +-- KafkaUnavailableError      (retriable) no broker answered in time
 +-- CassandraUnavailableError  (retriable) no Cassandra node answered in time
 +-- TopicApplyError            a topic could not be created or altered
 +-- SchemaApplyError           a CQL statement of cql/ failed
 +-- NotSetUpError              a keyspace or topic a service needs does not exist
 +-- SecurityConfigError        a token table or TLS file that cannot be used
"""

from __future__ import annotations

from typing import ClassVar


class InfraError(Exception):
    retriable: ClassVar[bool] = False


class KafkaUnavailableError(InfraError):
    retriable: ClassVar[bool] = True

    def __init__(self, bootstrap_servers: str, detail: str) -> None:
        super().__init__(f"Kafka at {bootstrap_servers} is unavailable: {detail}")
        self.bootstrap_servers = bootstrap_servers


class CassandraUnavailableError(InfraError):
    retriable: ClassVar[bool] = True

    def __init__(self, contact_points: str, detail: str) -> None:
        super().__init__(f"Cassandra at {contact_points} is unavailable: {detail}")
        self.contact_points = contact_points


class TopicApplyError(InfraError):
    def __init__(self, topic: str, detail: str) -> None:
        super().__init__(f"topic {topic}: {detail}")
        self.topic = topic


class SchemaApplyError(InfraError):
    def __init__(self, source: str, statement: str, detail: str) -> None:
        head = " ".join(statement.split())[:120]
        super().__init__(f"{source}: {detail} (in: {head})" if head else f"{source}: {detail}")
        self.source = source
        self.statement = statement


class NotSetUpError(InfraError):
    """Raised at start-up, with the command that fixes it."""


class SecurityConfigError(InfraError):
    """A token table or TLS file that cannot be used (one line, never a token)."""
