"""Applies the CQL schema: the keyspace from settings, then ``cql/NNN_*.cql`` in order.

Every statement is ``IF NOT EXISTS``, so applying is idempotent. Because of that, a keyspace
that already holds the v1 tables (int64 ``*_micros`` columns) would silently keep them: the
apply refuses such a keyspace instead, naming what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cassandra import DriverException
from cassandra.cluster import NoHostAvailable, Session

from marketinfra.errors import SchemaApplyError
from marketinfra.settings import CassandraSettings


@dataclass(frozen=True, slots=True)
class AppliedStatement:
    source: str
    statement: str


def keyspace_cql(settings: CassandraSettings) -> str:
    if settings.replication_strategy == "SimpleStrategy":
        replication = (
            f"'class': 'SimpleStrategy', 'replication_factor': {settings.replication_factor}"
        )
    else:
        factors = settings.datacenter_factors() or {settings.local_dc: settings.replication_factor}
        per_dc = ", ".join(f"'{dc}': {factor}" for dc, factor in factors.items())
        replication = f"'class': 'NetworkTopologyStrategy', {per_dc}"
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {settings.keyspace} "
        f"WITH replication = {{{replication}}} AND durable_writes = true"
    )


def split_statements(text: str) -> list[str]:
    """Split CQL text into statements, dropping ``--`` and ``//`` comments (not inside strings)."""
    statements: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        current.append(_strip_comment(line))
        joined = "\n".join(current).strip()
        if joined.endswith(";"):
            statements.append(joined[:-1].strip())
            current = []
    leftover = "\n".join(current).strip()
    if leftover:
        statements.append(leftover)
    return [statement for statement in statements if statement]


def _strip_comment(line: str) -> str:
    in_string = False
    for index, char in enumerate(line):
        if char == "'":
            in_string = not in_string
        elif not in_string and line.startswith(("--", "//"), index):
            return line[:index].rstrip()
    return line


def cql_files(cql_dir: Path) -> list[Path]:
    files = sorted(cql_dir.glob("[0-9][0-9][0-9]_*.cql"))
    if not files:
        raise SchemaApplyError(str(cql_dir), "", "no NNN_*.cql files found (set CASSANDRA_CQL_DIR)")
    return files


def apply_schema(session: Session, settings: CassandraSettings) -> list[AppliedStatement]:
    """Create the keyspace and every table; returns what was run, in order."""
    applied = [_run(session, "keyspace", keyspace_cql(settings))]
    _refuse_v1_tables(session, settings.keyspace)
    session.set_keyspace(settings.keyspace)
    for path in cql_files(settings.cql_dir):
        for statement in split_statements(path.read_text(encoding="utf-8")):
            applied.append(_run(session, path.name, statement))
    return applied


def _refuse_v1_tables(session: Session, keyspace: str) -> None:
    query = "SELECT table_name, column_name FROM system_schema.columns WHERE keyspace_name = %s"
    try:
        rows = list(session.execute(query, (keyspace,), timeout=60))
    except (DriverException, NoHostAvailable) as exc:
        raise SchemaApplyError("keyspace", query, str(exc)) from exc
    v1 = sorted({row.table_name for row in rows if row.column_name.endswith("_micros")})
    if v1:
        raise SchemaApplyError(
            "keyspace",
            "",
            f"keyspace {keyspace} holds v1 tables with int64 micros columns ({', '.join(v1)}); "
            "v2 stores exact decimals and needs a keyspace of its own: set CASSANDRA_KEYSPACE "
            "to a new keyspace (default market_data_v2) and keep this one for its history "
            "(README: Migrating from v1)",
        )


def _run(session: Session, source: str, statement: str) -> AppliedStatement:
    try:
        session.execute(statement, timeout=60)
    except (DriverException, NoHostAvailable) as exc:  # NoHostAvailable is not a DriverException
        raise SchemaApplyError(source, statement, str(exc)) from exc
    return AppliedStatement(source, statement)
