"""``mdgw k8s topics``: the topics of marketinfra.topics as Strimzi ``KafkaTopic`` resources.

``k8s/base/kafka/topics.yaml`` is this command's output, committed; a unit test fails when it
differs from what the declarations in code render, so topics are declared in one place.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

import yaml

from marketinfra.topics import ALL_TOPICS, TopicSpec

# The Strimzi Kafka resource and namespace of k8s/base/kafka/kafka.yaml.
STRIMZI_CLUSTER = "mdgw"
NAMESPACE = "mdgw"
# Three brokers in k8s/base/kafka/kafka.yaml; min.insync.replicas follows (TopicSpec.config).
REPLICATION_FACTOR = 3

_HEADER = (
    "# Generated from marketinfra/topics.py by `mdgw k8s topics > k8s/base/kafka/topics.yaml`.\n"
    "# Do not edit: change the declarations in code and regenerate.\n"
)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("k8s", help="Kubernetes manifests generated from code")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    topics = actions.add_parser(
        "topics",
        help="the declared topics as Strimzi KafkaTopic resources (k8s/base/kafka/topics.yaml)",
    )
    topics.set_defaults(handler=run_topics)
    from mdgw.commands import k8s_derived, k8s_smoke  # here: they import this module

    k8s_derived.register(actions)
    k8s_smoke.register(actions)


def run_topics(_args: argparse.Namespace) -> int:
    print(render_topic_manifests(ALL_TOPICS, REPLICATION_FACTOR), end="")
    return 0


def render_topic_manifests(specs: Iterable[TopicSpec], replication_factor: int) -> str:
    """One ``kafka.strimzi.io/v1`` KafkaTopic per spec, as a multi-document YAML text."""
    documents = [_topic_resource(spec, replication_factor) for spec in specs]
    body = yaml.safe_dump_all(
        documents, sort_keys=False, default_flow_style=False, width=1_000, allow_unicode=False
    )
    return _HEADER + body


def _topic_resource(spec: TopicSpec, replication_factor: int) -> dict[str, Any]:
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {
            # Resource names may not hold every character a topic name may, so the Kafka
            # name goes in spec.topicName and the resource gets a DNS-safe one.
            "name": spec.name.replace(".", "-").replace("_", "-").lower(),
            "namespace": NAMESPACE,
            "labels": {"strimzi.io/cluster": STRIMZI_CLUSTER},
            "annotations": {"mdgw/record-key": spec.key, "mdgw/record-value": spec.value},
        },
        "spec": {
            "topicName": spec.name,
            "partitions": spec.partitions,
            "replicas": replication_factor,
            "config": spec.config(replication_factor),
        },
    }
