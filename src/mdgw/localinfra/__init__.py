"""Real Kafka (KRaft) and Cassandra 5.0 for development, tests and CI, without Docker.

The jars come from Maven Central (poms in resources/), resolved once into
``<home>/lib`` and run on the installed JDK 17, listening on 127.0.0.1 only.
"""

from mdgw.localinfra.cli import register_cli
from mdgw.localinfra.errors import LocalInfraError
from mdgw.localinfra.launcher import ServerStatus, down, log_tail, status, up
from mdgw.localinfra.settings import LocalInfraSettings

__all__ = [
    "LocalInfraError",
    "LocalInfraSettings",
    "ServerStatus",
    "down",
    "log_tail",
    "register_cli",
    "status",
    "up",
]
