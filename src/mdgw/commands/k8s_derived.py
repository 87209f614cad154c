"""``mdgw k8s derived``: the Kubernetes resources whose contents come from code, so a topic,
consumer group or transactional id is never copied by hand into a manifest.

``k8s/base/generated/derived.yaml`` is this command's output, committed; a unit test fails when it
differs. It holds:

- ConfigMap ``mdgw-topics``: every service's ``*_TOPIC`` variable (and the tick writer's group
  and the trading log's transactional id) with the value the code declares; the workloads take
  it with ``envFrom``, so a rename in ``marketinfra/topics.py`` reaches every pod;
- one Strimzi ``KafkaUser`` per service (TLS client certificates; ACLs on exactly the topics,
  groups and transactional ids that service uses), plus the setup Job's and KEDA's;
- the tick writer's KEDA ``ScaledObject`` on its group's lag on the ticks topic, at most one
  replica per partition, and the ``TriggerAuthentication`` it reads Kafka with;
- a ``PrometheusRule`` of recording rules that name the topics and the group once; the alerts
  (k8s/base/monitoring/alerts.yaml) use those series and never a topic name.
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml
from pydantic_settings import BaseSettings

from feedhandlers.config import FeedHandlerSettings
from gateway.config import GatewaySettings
from marketinfra.topics import ALL_TOPICS, TICKS_RAW, TRADES_EXECUTED
from mdgw.commands.k8s_topics import NAMESPACE, STRIMZI_CLUSTER
from tickwriter.config import TickWriterSettings

_HEADER = (
    "# Generated from the code by `mdgw k8s derived > k8s/base/generated/derived.yaml`.\n"
    "# Do not edit: change the declarations in code and regenerate.\n"
)
# The TLS listener of k8s/base/kafka/kafka.yaml, which authenticates clients by certificate.
TLS_BOOTSTRAP = f"{STRIMZI_CLUSTER}-kafka-bootstrap.{NAMESPACE}.svc:9093"
CLUSTER_CA_SECRET = f"{STRIMZI_CLUSTER}-cluster-ca-cert"
TICKWRITER = "tickwriter"
# KafkaUser names: Strimzi puts each user's certificate in a Secret of the same name.
USERS = ("feedhandler", "tickwriter", "gateway", "mdgw-setup", "keda-lag-reader")
# The gateway's feed and its trading recovery assign partitions themselves; librdkafka still
# needs a group id (gateway-<random>, gateway-recovery-<random>), never joined or committed.
GATEWAY_GROUP_PREFIX = "gateway-"
_LABELS = {"app.kubernetes.io/part-of": "mdgw"}


def register(actions: argparse._SubParsersAction[Any]) -> None:
    derived = actions.add_parser(
        "derived",
        help="topic env, KafkaUsers and ACLs, the tick writer's ScaledObject, topic recording "
        "rules (k8s/base/generated/derived.yaml)",
    )
    derived.set_defaults(handler=run_derived)


def run_derived(_args: argparse.Namespace) -> int:
    print(render_derived(), end="")
    return 0


def render_derived() -> str:
    writer = TickWriterSettings.model_fields
    gateway = GatewaySettings.model_fields
    documents = [
        _topic_env(),
        *_kafka_users(
            ticks=_default(FeedHandlerSettings, "ticks_topic"),
            writer_topics=[
                _default(TickWriterSettings, name)
                for name in ("ticks_topic", "trades_topic", "orders_topic")
            ],
            dlq=_default(TickWriterSettings, "dlq_topic"),
            group=str(writer["group_id"].default),
            gateway_reads=[
                _default(GatewaySettings, name)
                for name in ("ticks_topic", "orders_topic", "positions_topic")
            ],
            gateway_writes=[
                _default(GatewaySettings, name)
                for name in ("orders_topic", "trades_topic", "positions_topic")
            ],
            transactional_id=str(gateway["trading_id"].default),
        ),
        *_autoscaling(group=str(writer["group_id"].default)),
        _recording_rules(group=str(writer["group_id"].default)),
    ]
    body = yaml.safe_dump_all(
        documents, sort_keys=False, default_flow_style=False, width=1_000, allow_unicode=False
    )
    return _HEADER + body


def _default(settings: type[BaseSettings], field: str) -> str:
    return str(settings.model_fields[field].default)


def _env_name(settings: type[BaseSettings], field: str) -> str:
    return f"{settings.model_config['env_prefix']}{field}".upper()


def _topic_env() -> dict[str, Any]:
    data: dict[str, str] = {}
    for settings in (FeedHandlerSettings, TickWriterSettings, GatewaySettings):
        for field in sorted(settings.model_fields):
            if field.endswith("_topic"):
                data[_env_name(settings, field)] = _default(settings, field)
    data[_env_name(TickWriterSettings, "group_id")] = _default(TickWriterSettings, "group_id")
    data[_env_name(GatewaySettings, "trading_id")] = _default(GatewaySettings, "trading_id")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "mdgw-topics", "namespace": NAMESPACE, "labels": _LABELS},
        "data": data,
    }


def _acl(kind: str, name: str, operations: list[str], pattern: str = "literal") -> dict[str, Any]:
    resource: dict[str, Any] = {"type": kind}
    if kind != "cluster":
        resource |= {"name": name, "patternType": pattern}
    return {"resource": resource, "operations": operations, "host": "*"}


def _user(name: str, acls: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaUser",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"strimzi.io/cluster": STRIMZI_CLUSTER, **_LABELS},
        },
        "spec": {
            "authentication": {"type": "tls"},
            "authorization": {"type": "simple", "acls": acls},
        },
    }


def _kafka_users(
    *,
    ticks: str,
    writer_topics: list[str],
    dlq: str,
    group: str,
    gateway_reads: list[str],
    gateway_writes: list[str],
    transactional_id: str,
) -> list[dict[str, Any]]:
    idempotent = _acl("cluster", "", ["IdempotentWrite"])
    feedhandler = [_acl("topic", ticks, ["Write", "Describe"]), idempotent]
    tickwriter = [
        *(_acl("topic", topic, ["Read", "Describe"]) for topic in writer_topics),
        _acl("topic", dlq, ["Write", "Describe"]),
        _acl("group", group, ["Read", "Describe"]),
        idempotent,
    ]
    reads = set(gateway_reads)
    writes = set(gateway_writes)
    gateway = [
        _acl(
            "topic",
            topic,
            [op for op, on in (("Read", topic in reads), ("Write", topic in writes)) if on]
            + ["Describe"],
        )
        for topic in sorted(reads | writes)
    ]
    gateway += [
        _acl("group", GATEWAY_GROUP_PREFIX, ["Read", "Describe"], pattern="prefix"),
        _acl("transactionalId", transactional_id, ["Write", "Describe"]),
        idempotent,
    ]
    setup = [
        _acl("topic", spec.name, ["Create", "Describe", "Alter", "DescribeConfigs", "AlterConfigs"])
        for spec in ALL_TOPICS
    ]
    setup.append(_acl("cluster", "", ["Describe"]))
    keda = [_acl("topic", ticks, ["Describe"]), _acl("group", group, ["Describe"])]
    return [
        _user("feedhandler", feedhandler),
        _user("tickwriter", tickwriter),
        _user("gateway", gateway),
        _user("mdgw-setup", setup),
        _user("keda-lag-reader", keda),
    ]


def _autoscaling(*, group: str) -> list[dict[str, Any]]:
    auth = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": "kafka-lag-reader", "namespace": NAMESPACE, "labels": _LABELS},
        "spec": {
            "secretTargetRef": [
                {"parameter": "ca", "name": CLUSTER_CA_SECRET, "key": "ca.crt"},
                {"parameter": "cert", "name": "keda-lag-reader", "key": "user.crt"},
                {"parameter": "key", "name": "keda-lag-reader", "key": "user.key"},
            ]
        },
    }
    scaled = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": TICKWRITER, "namespace": NAMESPACE, "labels": _LABELS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": TICKWRITER},
            "minReplicaCount": 3,
            # a member beyond one per partition would sit idle
            "maxReplicaCount": TICKS_RAW.partitions,
            "pollingInterval": 15,
            # scale in slowly: each change is a (cooperative) rebalance
            "cooldownPeriod": 300,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleDown": {
                            "stabilizationWindowSeconds": 300,
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
                        },
                        "scaleUp": {
                            "stabilizationWindowSeconds": 0,
                            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 60}],
                        },
                    }
                }
            },
            "triggers": [
                {
                    "type": "kafka",
                    "metadata": {
                        "bootstrapServers": TLS_BOOTSTRAP,
                        "consumerGroup": group,
                        "topic": TICKS_RAW.name,
                        # records of lag each replica is expected to absorb
                        "lagThreshold": "5000",
                        "activationLagThreshold": "0",
                        "offsetResetPolicy": "latest",
                        "allowIdleConsumers": "false",
                        "tls": "enable",
                    },
                    "authenticationRef": {"name": "kafka-lag-reader"},
                }
            ],
        },
    }
    return [auth, scaled]


def _recording_rules(*, group: str) -> dict[str, Any]:
    def lag(topic: str) -> str:
        return f'sum(kafka_consumergroup_lag{{consumergroup="{group}", topic="{topic}"}})'

    rules = [
        {"record": "mdgw:tickwriter_ticks_lag:records", "expr": lag(TICKS_RAW.name)},
        {"record": "mdgw:tickwriter_trades_lag:records", "expr": lag(TRADES_EXECUTED.name)},
        {
            "record": "mdgw:ticks_in:rate1m",
            "expr": "sum(rate(kafka_server_brokertopicmetrics_messagesin_total"
            f'{{topic="{TICKS_RAW.name}"}}[1m]))',
        },
    ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "mdgw-topics",
            "namespace": NAMESPACE,
            "labels": {**_LABELS, "role": "alert-rules"},
        },
        "spec": {"groups": [{"name": "mdgw-topics", "interval": "30s", "rules": rules}]},
    }
