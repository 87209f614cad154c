"""k8s/ checked offline: custom resources against the real Strimzi CRD schemas (strict: an
unknown or misspelt field fails, as kubectl's strict field validation would), and the
KafkaTopic manifests against the topic declarations in code."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from marketinfra.topics import ALL_TOPICS
from mdgw.commands.topics import K8S_REPLICATION_FACTOR, render_topic_manifests

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
CRDS = ROOT / "tests" / "data" / "k8s-crds" / "strimzi-1.2.0"
BUILT_IN = {
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "StatefulSet"),
    ("policy/v1", "PodDisruptionBudget"),
}


def _strict(schema: Any) -> Any:
    """Forbid fields a schema does not name, unless it explicitly keeps unknown fields."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@functools.cache
def _crd_schemas() -> dict[tuple[str, str], Any]:
    schemas: dict[tuple[str, str], Any] = {}
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                api_version = f"{crd['spec']['group']}/{version['name']}"
                schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                schemas[(api_version, crd["spec"]["names"]["kind"])] = schema
    return schemas


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((str(path.relative_to(ROOT)), document))
    return found


@pytest.mark.parametrize(("source", "document"), _documents())
def test_every_manifest_is_a_known_kind_and_custom_resources_match_their_crd(
    source: str, document: dict[str, Any]
) -> None:
    key = (document["apiVersion"], document["kind"])
    schemas = _crd_schemas()
    assert key in schemas or key in BUILT_IN, f"{source}: unknown {key}"
    assert document["metadata"].get("namespace", "mdgw") == "mdgw"
    if key in schemas:
        errors = sorted(Draft7Validator(schemas[key]).iter_errors(document), key=str)
        assert not errors, f"{source}: " + "; ".join(error.message for error in errors)


def test_strict_validation_catches_a_removed_field() -> None:
    schemas = _crd_schemas()
    kafka = next(doc for _, doc in _documents() if doc["kind"] == "Kafka")
    broken = copy.deepcopy(kafka)
    broken["spec"]["zookeeper"] = {"replicas": 3}  # gone in kafka.strimzi.io/v1
    assert list(Draft7Validator(schemas[("kafka.strimzi.io/v1", "Kafka")]).iter_errors(broken))


def test_topic_manifests_are_generated_from_the_code() -> None:
    committed = (K8S / "kafka" / "topics.yaml").read_text()
    assert committed == render_topic_manifests(ALL_TOPICS, K8S_REPLICATION_FACTOR), (
        "k8s/kafka/topics.yaml is stale: run `mdgw topics manifest > k8s/kafka/topics.yaml`"
    )


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    on_disk = {
        str(path.relative_to(K8S))
        for path in K8S.rglob("*.yaml")
        if path.name != "kustomization.yaml"
    }
    assert listed == on_disk
