"""Cassandra sessions with the project's defaults, and per-operation consistency.

Consistency is chosen per statement when it is prepared (see ``Consistency``),
following the reference design: ticks LOCAL_ONE (immutable, idempotent,
throughput first), trades and reads LOCAL_QUORUM (durable before an ack,
never stale).
"""

from __future__ import annotations

from enum import Enum

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    Session,
)
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.query import PreparedStatement

from marketinfra import cql_decimal
from marketinfra.errors import CassandraUnavailableError, NotSetUpError
from marketinfra.settings import CassandraSettings

try:  # libev is the fast reactor; asyncore is deprecated on 3.11 and gone in 3.12
    from cassandra.io.libevreactor import LibevConnection as _Connection
except ImportError:  # pragma: no cover - depends on how the driver was built
    from cassandra.io.asyncioreactor import AsyncioConnection as _Connection


class Consistency(Enum):
    TICK_WRITE = ConsistencyLevel.LOCAL_ONE
    TRADE_WRITE = ConsistencyLevel.LOCAL_QUORUM
    READ = ConsistencyLevel.LOCAL_QUORUM
    REFERENCE_READ = ConsistencyLevel.LOCAL_ONE


def make_cluster(settings: CassandraSettings) -> Cluster:
    cql_decimal.install()  # exact decimal columns without the driver's slow serializer
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.local_dc)),
        consistency_level=ConsistencyLevel.LOCAL_QUORUM,
        request_timeout=settings.request_timeout_s,
    )
    auth = None
    if settings.username:
        auth = PlainTextAuthProvider(settings.username, settings.password.get_secret_value())
    return Cluster(
        contact_points=settings.hosts(),
        port=settings.port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connection_class=_Connection,
        connect_timeout=settings.connect_timeout_s,
        control_connection_timeout=settings.connect_timeout_s,
        auth_provider=auth,
        protocol_version=5,
        reconnection_policy=reconnection_policy(settings),
    )


def reconnection_policy(settings: CassandraSettings) -> ExponentialReconnectionPolicy:
    """Reconnect to a down node for as long as the process lives, at most
    ``reconnect_max_delay_s`` apart.

    The driver's own default waits up to 10 minutes between attempts; worse, an
    ExponentialReconnectionPolicy gives up after ``max_attempts`` (64 by default, about 295 s
    at a 5 s cap): the driver logs "exhausted retry schedule", the node stays marked down
    after it is back, every write fails with NoHostAvailable and a paused tick writer never
    resumes (issue 15, item 9). ``max_attempts=None`` never gives up.
    """
    return ExponentialReconnectionPolicy(
        base_delay=settings.reconnect_base_delay_s,
        max_delay=max(settings.reconnect_max_delay_s, settings.reconnect_base_delay_s),
        max_attempts=None,
    )


def connect(settings: CassandraSettings, *, use_keyspace: bool = True) -> tuple[Cluster, Session]:
    """Open a session (in the configured keyspace unless told otherwise) or raise a clear error."""
    cluster = make_cluster(settings)
    try:
        session = cluster.connect(settings.keyspace if use_keyspace else None)
    except NoHostAvailable as exc:
        cluster.shutdown()
        raise CassandraUnavailableError(settings.contact_points, str(exc)) from exc
    return cluster, session


def require_keyspace(cluster: Cluster, keyspace: str) -> None:
    if keyspace not in cluster.metadata.keyspaces:
        raise NotSetUpError(
            f"Cassandra keyspace {keyspace} does not exist: run `mdgw schema apply`"
        )


def prepare(session: Session, cql: str, consistency: Consistency) -> PreparedStatement:
    statement: PreparedStatement = session.prepare(cql)
    statement.consistency_level = consistency.value
    return statement
