"""TickWriterService checks its callers as the gateway does: TLS, mutual TLS and bearer tokens
with the write_ticks permission; plaintext only on loopback. The server is the tick writer's
own (``app.grpc_server``) on port 0 with a fake writer behind it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from financial.marketdata.v2 import services_pb2_grpc
from gateway.devcerts import DevCertificates, make_dev_certificates
from marketinfra.errors import SecurityConfigError
from marketinfra.grpc_security import channel_credentials
from tests.contract.test_tickwriter_service import FakeWriter, tick
from tickwriter import app
from tickwriter.config import TickWriterSettings

SOURCE_ROOT = str(Path(__file__).resolve().parents[2] / "src")
WRITER = "writer-token-0123456789abcdef"
READER = "reader-token-0123456789abcdef"
TOKENS = json.dumps(
    {
        WRITER: {"account": "feed-loader", "permissions": ["write_ticks"]},
        READER: {"account": "nosy", "permissions": []},
    }
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    return make_dev_certificates(tmp_path_factory.mktemp("certs"), now=dt.datetime.now(tz=dt.UTC))


async def _serve(settings: TickWriterSettings, writer: FakeWriter) -> tuple[grpc.aio.Server, int]:
    """Port 0 in the settings: "serve none" to ``grpc_problem``, "any free port" to bind."""
    health = health_aio.HealthServicer()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    server, port = app.grpc_server(settings, writer, health)
    await server.start()
    return server, port


@pytest.fixture
async def tls_port(certs: DevCertificates) -> AsyncIterator[int]:
    settings = TickWriterSettings(
        grpc_port=0, tls_cert_file=certs.server_cert, tls_key_file=certs.server_key,
        auth_tokens=TOKENS,
    )  # fmt: skip
    server, port = await _serve(settings, FakeWriter())
    yield port
    await server.stop(0)


async def _write(
    port: int, credentials: grpc.ChannelCredentials | None, token: str = WRITER
) -> grpc.StatusCode:
    target = f"127.0.0.1:{port}"
    channel = (
        grpc.aio.insecure_channel(target)
        if credentials is None
        else grpc.aio.secure_channel(target, credentials)
    )
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    async with channel:
        try:
            stub = services_pb2_grpc.TickWriterServiceStub(channel)
            ack = await stub.WriteTick(tick(), timeout=5, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    assert ack.success
    return grpc.StatusCode.OK


async def test_tls_and_a_write_token_are_needed_to_write(
    tls_port: int, certs: DevCertificates
) -> None:
    trusted = channel_credentials(certs.ca_cert, None, None)
    assert await _write(tls_port, trusted) == grpc.StatusCode.OK
    assert await _write(tls_port, trusted, "") == grpc.StatusCode.UNAUTHENTICATED
    assert await _write(tls_port, trusted, "x" * 30) == grpc.StatusCode.UNAUTHENTICATED
    assert await _write(tls_port, trusted, READER) == grpc.StatusCode.PERMISSION_DENIED
    assert await _write(tls_port, None) == grpc.StatusCode.UNAVAILABLE  # plaintext


async def test_health_needs_no_token(tls_port: int, certs: DevCertificates) -> None:
    credentials = channel_credentials(certs.ca_cert, None, None)
    async with grpc.aio.secure_channel(f"127.0.0.1:{tls_port}", credentials) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_mutual_tls_needs_a_client_certificate_from_its_ca(
    certs: DevCertificates, tmp_path: Path
) -> None:
    settings = TickWriterSettings(
        grpc_port=0, tls_cert_file=certs.server_cert, tls_key_file=certs.server_key,
        tls_client_ca_file=certs.ca_cert, auth_tokens=TOKENS,
    )  # fmt: skip
    writer = FakeWriter()
    server, port = await _serve(settings, writer)
    try:
        with_cert = channel_credentials(certs.ca_cert, certs.client_cert, certs.client_key)
        assert await _write(port, with_cert) == grpc.StatusCode.OK
        without_cert = channel_credentials(certs.ca_cert, None, None)
        assert await _write(port, without_cert) == grpc.StatusCode.UNAVAILABLE
        other = make_dev_certificates(tmp_path / "other", now=dt.datetime.now(tz=dt.UTC))
        foreign = channel_credentials(certs.ca_cert, other.client_cert, other.client_key)
        assert await _write(port, foreign) == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)
    assert len(writer.calls) == 1


async def test_insecure_mode_serves_plaintext_on_loopback() -> None:
    writer = FakeWriter()
    server, port = await _serve(TickWriterSettings(grpc_port=0, grpc_insecure=True), writer)
    try:
        assert await _write(port, None, "") == grpc.StatusCode.OK  # no tokens set: anyone
    finally:
        await server.stop(0)
    assert len(writer.calls) == 1


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({}, "TICKWRITER_TLS_CERT_FILE"),  # the default: TLS, but no certificate given
        ({"grpc_insecure": True, "grpc_address": "0.0.0.0"}, "loopback only"),
        ({"grpc_insecure": True, "grpc_address": "10.1.2.3"}, "loopback only"),
        ({"tls_cert_file": "c.pem", "tls_key_file": "k.pem"}, "TICKWRITER_AUTH_TOKENS is empty"),
    ],
)
def test_settings_that_would_serve_unchecked_callers_are_refused(
    fields: dict[str, object], problem: str
) -> None:
    problem_text = TickWriterSettings(**fields).grpc_problem()
    assert problem_text is not None
    assert problem in problem_text


def test_no_service_needs_no_security_settings() -> None:
    assert TickWriterSettings(grpc_port=0).grpc_problem() is None
    assert TickWriterSettings(grpc_insecure=True).grpc_problem() is None  # 127.0.0.1


def test_mdgw_tickwriter_refuses_plaintext_off_loopback_with_one_line_and_exit_2() -> None:
    env = {**os.environ, "PYTHONPATH": SOURCE_ROOT, "TICKWRITER_GRPC_ADDRESS": "0.0.0.0"}
    result = subprocess.run(
        [sys.executable, "-m", "mdgw", "tickwriter", "--insecure"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "tickwriter_config_invalid" in line
    assert "loopback only" in line


async def test_an_unreadable_certificate_is_a_clear_error(tmp_path: Path) -> None:
    settings = TickWriterSettings(
        grpc_port=0, tls_cert_file=tmp_path / "missing.pem", tls_key_file=tmp_path / "k.pem",
        auth_tokens=TOKENS,
    )  # fmt: skip
    with pytest.raises(SecurityConfigError, match="cannot read the TLS"):
        app.grpc_server(settings, FakeWriter(), health_aio.HealthServicer())
