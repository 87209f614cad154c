"""Server config files and JVM command lines, rendered from the templates in resources/conf."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from string import Template

from mdgw.localinfra.jars import find_jar
from mdgw.localinfra.layout import RESOURCES, ServerPaths
from mdgw.localinfra.settings import LocalInfraSettings

KAFKA_MAIN = "kafka.Kafka"
KAFKA_STORAGE_TOOL = "kafka.tools.StorageTool"
CASSANDRA_MAIN = "org.apache.cassandra.service.CassandraDaemon"
MAIN_CLASSES = {"kafka": KAFKA_MAIN, "cassandra": CASSANDRA_MAIN}

# conf/jvm17-server.options of Cassandra 5.0 (JPMS opens/exports), plus what bin/cassandra.in.sh
# adds on a JDK; without these Cassandra dies with InaccessibleObjectException on Java 17.
_CASSANDRA_JAVA17_FLAGS = [
    "-Djdk.attach.allowAttachSelf=true",
    *(
        f"--add-exports={module}=ALL-UNNAMED"
        for module in (
            "java.base/jdk.internal.misc",
            "java.management.rmi/com.sun.jmx.remote.internal.rmi",
            "java.management/com.sun.jmx.remote.security",
            "java.rmi/sun.rmi.registry",
            "java.rmi/sun.rmi.server",
            "java.sql/java.sql",
            "java.base/java.lang.ref",
            "jdk.unsupported/sun.misc",
            "jdk.attach/sun.tools.attach",
            "jdk.compiler/com.sun.tools.javac.file",
        )
    ),
    *(
        f"--add-opens={module}=ALL-UNNAMED"
        for module in (
            "java.base/java.lang.module",
            "java.base/jdk.internal.loader",
            "java.base/jdk.internal.ref",
            "java.base/jdk.internal.reflect",
            "java.base/jdk.internal.math",
            "java.base/jdk.internal.module",
            "java.base/jdk.internal.util.jar",
            "jdk.management/com.sun.management.internal",
            "java.base/sun.nio.ch",
            "java.base/java.io",
            "java.base/java.lang.reflect",
            "java.base/java.lang",
            "java.base/java.util",
            "java.base/java.nio",
            "java.base/java.nio.charset",
            "jdk.compiler/com.sun.tools.javac",
        )
    ),
]


def render_kafka(settings: LocalInfraSettings, paths: ServerPaths) -> Path:
    template = Template((RESOURCES / "conf" / "kafka-server.properties").read_text())
    properties = paths.conf / "server.properties"
    properties.write_text(
        template.substitute(
            kafka_port=settings.kafka_port,
            kafka_controller_port=settings.kafka_controller_port,
            kafka_data_dir=paths.data,
        )
    )
    (paths.conf / "log4j2.properties").write_text(
        (RESOURCES / "conf" / "kafka-log4j2.properties").read_text()
    )
    return properties


def render_cassandra(settings: LocalInfraSettings, paths: ServerPaths) -> Path:
    template = Template((RESOURCES / "conf" / "cassandra.yaml").read_text())
    yaml_path = paths.conf / "cassandra.yaml"
    yaml_path.write_text(
        template.substitute(
            cassandra_port=settings.cassandra_port,
            cassandra_storage_port=settings.cassandra_storage_port,
        )
    )
    (paths.conf / "logback.xml").write_text(
        (RESOURCES / "conf" / "cassandra-logback.xml").read_text()
    )
    return yaml_path


def kafka_jvm(java: Path, settings: LocalInfraSettings, paths: ServerPaths) -> list[str]:
    return [
        str(java),
        f"-Xms{settings.kafka_heap}",
        f"-Xmx{settings.kafka_heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Djava.io.tmpdir={paths.tmp}",
        f"-Dkafka.logs.dir={paths.log.parent}",
        f"-Dlog4j2.configurationFile={paths.conf / 'log4j2.properties'}",
        "-cp",
        f"{paths.lib}/*",
    ]


def kafka_format_command(java: Path, settings: LocalInfraSettings, paths: ServerPaths) -> list[str]:
    return [
        *kafka_jvm(java, settings, paths),
        "-Dkafka.root.level=WARN",
        KAFKA_STORAGE_TOOL,
        "format",
        "-t",
        new_kafka_cluster_id(),
        "-c",
        str(paths.conf / "server.properties"),
        "--ignore-formatted",
    ]


def kafka_server_command(java: Path, settings: LocalInfraSettings, paths: ServerPaths) -> list[str]:
    return [*kafka_jvm(java, settings, paths), KAFKA_MAIN, str(paths.conf / "server.properties")]


def cassandra_server_command(
    java: Path, settings: LocalInfraSettings, paths: ServerPaths
) -> list[str]:
    jamm = find_jar(paths.lib, "jamm-")
    return [
        str(java),
        f"-Xms{settings.cassandra_heap}",
        f"-Xmx{settings.cassandra_heap}",
        # conf/jvm-server.options (5.0), minus AlwaysPreTouch and UseNUMA
        "-ea",
        "-da:net.openhft...",
        "-XX:+UseThreadPriorities",
        "-Xss256k",
        "-XX:+UseTLAB",
        "-XX:+ResizeTLAB",
        "-XX:+PerfDisableSharedMem",
        "-XX:+CrashOnOutOfMemoryError",
        "-Djava.net.preferIPv4Stack=true",
        "-Dchronicle.analytics.disable=true",
        # conf/jvm17-server.options (5.0): G1
        "-XX:+UseG1GC",
        "-XX:+ParallelRefProcEnabled",
        "-XX:MaxTenuringThreshold=1",
        "-XX:G1HeapRegionSize=16m",
        "-XX:MaxGCPauseMillis=300",
        "-XX:InitiatingHeapOccupancyPercent=70",
        *_CASSANDRA_JAVA17_FLAGS,
        "-Dio.netty.tryReflectionSetAccessible=true",
        f"-javaagent:{jamm}",
        f"-Dcassandra.jmx.local.port={settings.cassandra_jmx_port}",
        "-Dcom.sun.management.jmxremote.authenticate=false",
        f"-Dcassandra.config=file://{paths.conf / 'cassandra.yaml'}",
        f"-Dcassandra.storagedir={paths.data}",
        f"-Dcassandra.logdir={paths.log.parent}",
        f"-Dlogback.configurationFile={paths.conf / 'logback.xml'}",
        # without it CassandraDaemon closes stdout/stderr after start-up and we lose its log
        "-Dcassandra-foreground=yes",
        # single node: no need to wait for gossip to settle (saves ~10 s per start)
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.superuser_setup_delay_ms=0",
        # JNA, snappy, lz4 and zstd unpack native code here; it must allow exec
        f"-Djava.io.tmpdir={paths.tmp}",
        f"-Djna.tmpdir={paths.tmp}",
        "-cp",
        f"{paths.lib}/*",
        CASSANDRA_MAIN,
    ]


def new_kafka_cluster_id() -> str:
    """A Kafka Uuid as StorageTool random-uuid prints it: 16 random bytes, base64url, no padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):  # Kafka refuses ids that look like a command-line flag
            return text
