"""``mdgw k8s smoke``: the image and the dev overlay's workloads, run by ``podman kube play``
against a Kafka and a Cassandra on this machine, checked as a user would.

1. render ``k8s/overlays/dev`` (kustomize) and turn its workloads into Pods
   (``podman_pods``: host networking, local Kafka and Cassandra, development certificates);
2. run the setup Job's pod (schema into a keyspace of this run, topics) and wait for it;
3. run a venue simulator, the feed handler, the tick writer, the market-data gateway and the
   trading owner, and wait until each one's health port answers readiness SERVING;
4. stream prices through the containerized gateway over TLS with a token (``mdgw stream``),
   place an order with the trading owner (``mdgw order buy``), and see the tick writer's
   /metrics count rows written to Cassandra;
5. remove the pods and the run's keyspace (``--keep`` leaves them) and print how long each
   step took.

Needs podman and runc, the image (scripts/image-build) and ``kubectl`` (its kustomize).
The settings in deploy/image/containers.conf are used (CONTAINERS_CONF), so the machine's
podman configuration is never changed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.devcerts import make_dev_certificates
from marketinfra.cassandra import connect
from marketinfra.errors import InfraError
from marketinfra.settings import CassandraSettings, KafkaSettings
from mdgw.commands.podman_pods import SMOKE_WORKLOADS, SmokePlan, podman_pods

ROOT = Path(__file__).resolve().parents[3]
CONTAINERS_CONF = ROOT / "deploy" / "image" / "containers.conf"
POD_USER = 10001  # the image's user (deploy/image/Containerfile)
SYMBOLS = "SIM0-USD,SIM1-USD,SIM2-USD"
# How long a step may go without its condition before the smoke test gives up: generous, for
# a loaded 2-core machine; a healthy run needs a fraction of it.
STEP_LIMIT_S = 300.0
_POLL_S = 0.5


class SmokeFailed(Exception):
    pass


def register(actions: argparse._SubParsersAction[Any]) -> None:
    smoke = actions.add_parser(
        "smoke", help="run the dev overlay's workloads with podman kube play and use them"
    )
    smoke.add_argument("--image", default="localhost/mdgw:dev")
    smoke.add_argument("--overlay", type=Path, default=ROOT / "k8s" / "overlays" / "dev")
    smoke.add_argument("--base-port", type=int, default=27100, help="ports from here up")
    smoke.add_argument("--keep", action="store_true", help="leave the pods running")
    smoke.set_defaults(handler=run_smoke)


def run_smoke(args: argparse.Namespace) -> int:
    started = time.monotonic()
    timings: list[tuple[str, float]] = []
    try:
        with _workdir(args.keep) as work:
            _smoke(args, work, timings)
    except SmokeFailed as exc:
        print(f"k8s smoke: FAILED: {exc}", file=sys.stderr)
        return 1
    for step, seconds in timings:
        print(f"k8s smoke: {step}: {seconds:.1f} s")
    print(f"k8s smoke: passed in {time.monotonic() - started:.1f} s")
    return 0


@contextmanager
def _workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mdgw-smoke-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def _podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    result = subprocess.run(
        ["podman", "--runtime", "runc", *args], capture_output=True, text=True, env=env, check=False
    )
    if check and result.returncode != 0:
        raise SmokeFailed(f"podman {' '.join(args)}: {result.stderr.strip()}")
    return result


def _render(overlay: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise SmokeFailed("kubectl not found (its kustomize renders the overlay)")
    result = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SmokeFailed(f"kustomize {overlay}: {result.stderr.strip()}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _plan(args: argparse.Namespace, work: Path, token: str) -> SmokePlan:
    certs = make_dev_certificates(work / "certs", now=dt.datetime.now(dt.UTC))
    tls = work / "tls"
    tls.mkdir()
    for source, name in (
        (certs.server_cert, "tls.crt"),
        (certs.server_key, "tls.key"),
        (certs.ca_cert, "ca.crt"),
    ):
        shutil.copy(source, tls / name)
        os.chown(tls / name, POD_USER, POD_USER)  # the key stays 0600, readable by the pod only
    tls.chmod(0o755)
    work.chmod(0o755)
    kafka, cassandra = KafkaSettings(), CassandraSettings()
    return SmokePlan.with_ports(
        args.base_port,
        kafka_bootstrap=kafka.bootstrap_servers,
        cassandra_host=cassandra.hosts()[0],
        cassandra_port=cassandra.port,
        keyspace=f"smoke_{uuid.uuid4().hex[:10]}",
        image=args.image,
        tls_dir=tls,
        auth_tokens=json.dumps(
            {token: {"account": "smoke", "permissions": ["market_data", "trading"]}}
        ),
        tickwriter_tokens=json.dumps({token: {"account": "smoke", "permissions": ["write_ticks"]}}),
        symbols=SYMBOLS,
    )


def _smoke(args: argparse.Namespace, work: Path, timings: list[tuple[str, float]]) -> None:
    token = secrets.token_hex(16)
    step = time.monotonic()
    plan = _plan(args, work, token)
    pods = podman_pods(_render(args.overlay), plan)
    setup, services = pods[:1], pods[1:]
    (work / "setup.yaml").write_text(yaml.safe_dump_all(setup, sort_keys=False))
    (work / "services.yaml").write_text(yaml.safe_dump_all(services, sort_keys=False))
    timings.append(("render", time.monotonic() - step))
    played: list[Path] = []
    try:
        step = time.monotonic()
        _play(work / "setup.yaml", played)
        _wait_for_exit("mdgw-setup", "topics")
        timings.append(("setup job (schema + topics)", time.monotonic() - step))

        step = time.monotonic()
        _play(work / "services.yaml", played)
        for pod_name in list(SMOKE_WORKLOADS.values())[1:]:  # the setup Job's pod is done
            _wait_ready(pod_name, plan.ports[pod_name].health)
        timings.append(("services ready", time.monotonic() - step))

        step = time.monotonic()
        client_env = {
            **os.environ,
            "GATEWAY_CLIENT_CA_FILE": str(plan.tls_dir / "ca.crt"),
            "GATEWAY_CLIENT_TOKEN": token,
            "LOG_FORMAT": "console",
        }
        gateway_port = plan.ports["gateway"].grpc
        streamed = _mdgw(
            ["stream", *SYMBOLS.split(",")[:2], "--count", "5", "--plain"],
            {**client_env, "GATEWAY_CLIENT_TARGET": f"127.0.0.1:{gateway_port}"},
        )
        _require_updates(streamed, 5)
        timings.append(("5 prices streamed through the gateway", time.monotonic() - step))

        step = time.monotonic()
        trading_port = plan.ports["gateway-trading-0"].grpc
        ordered = _mdgw(
            ["order", "buy", SYMBOLS.split(",")[0], "0.01"],
            {**client_env, "GATEWAY_CLIENT_TARGET": f"127.0.0.1:{trading_port}"},
        )
        timings.append(("order placed with the trading owner", time.monotonic() - step))

        step = time.monotonic()
        _until("the tick writer to count rows written", lambda: _rows_written(plan))
        timings.append(("ticks written to Cassandra", time.monotonic() - step))
        print(f"k8s smoke: stream:\n{streamed}\nk8s smoke: order:\n{ordered}")
    except SmokeFailed:
        _print_logs()
        raise
    finally:
        if not args.keep:
            for path in reversed(played):
                _podman("kube", "down", str(path), check=False)
            for manifest in pods:
                for volume in manifest["spec"].get("volumes", ()):
                    if "emptyDir" in volume:
                        _podman("volume", "rm", "--force", volume["name"], check=False)
            _drop_keyspace(plan.keyspace)


def _rows_written(plan: SmokePlan) -> bool | None:
    port = plan.ports["tickwriter-0"].metrics
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    found = re.search(
        r'^tickwriter_rows_written_total\{table="tick_data"\} ([0-9.e+]+)$', text, re.M
    )
    return True if found and float(found.group(1)) > 0 else None


def _drop_keyspace(keyspace: str) -> None:
    settings = CassandraSettings()
    try:
        cluster, session = connect(settings, use_keyspace=False)
    except InfraError as exc:
        print(f"k8s smoke: keyspace {keyspace} left behind: {exc}", file=sys.stderr)
        return
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()


def _require_updates(streamed: str, count: int) -> None:
    if len([line for line in streamed.splitlines() if "SIM" in line]) < count:
        raise SmokeFailed(f"mdgw stream printed fewer than {count} updates:\n{streamed}")


def _play(path: Path, played: list[Path]) -> None:
    played.append(path)
    _podman("kube", "play", "--network", "host", str(path))


def _until(what: str, probe: Any) -> Any:
    deadline = time.monotonic() + STEP_LIMIT_S
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise SmokeFailed(f"{what}: not after {STEP_LIMIT_S:.0f} s")
        time.sleep(_POLL_S)


def _state(container: str) -> tuple[str, int]:
    result = _podman(
        "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", container, check=False
    )
    status, _, code = result.stdout.strip().partition(" ")
    return status, int(code or 0)


def _wait_for_exit(pod: str, container: str) -> None:
    name = f"{pod}-{container}"

    def exited() -> int | None:
        status, code = _state(name)
        return code if status in ("exited", "stopped") else None

    code = _until(f"{name} to finish", exited)
    if code != 0:
        raise SmokeFailed(f"{name} exited {code}:\n{_logs(name)}")


def _wait_ready(pod: str, health_port: int) -> None:
    serving = health_pb2.HealthCheckResponse.SERVING

    def ready() -> bool | None:
        with grpc.insecure_channel(f"127.0.0.1:{health_port}") as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="readiness"), timeout=2
                )
            except grpc.RpcError:
                return None
        return True if reply.status == serving else None

    _until(f"{pod} readiness SERVING on 127.0.0.1:{health_port}", ready)


def _mdgw(args: Sequence[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mdgw", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=STEP_LIMIT_S,
        check=False,
    )
    if result.returncode != 0:
        raise SmokeFailed(
            f"mdgw {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result.stdout


def _logs(container: str) -> str:
    return _podman("logs", "--tail", "30", container, check=False).stderr[-4000:]


def _print_logs() -> None:
    names = _podman("ps", "-a", "--format", "{{.Names}}", check=False).stdout.split()
    for name in names:
        if name.endswith("-infra"):
            continue
        result = _podman("logs", "--tail", "15", name, check=False)
        print(f"--- {name}\n{(result.stdout + result.stderr)[-3000:]}", file=sys.stderr)
