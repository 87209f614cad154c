"""TLS, mutual TLS, and a gRPC client that is not ours (reflection), over real grpc.aio."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from gateway import app
from gateway.client import GatewayClient
from gateway.config import GatewaySettings
from gateway.devcerts import DevCertificates, make_dev_certificates
from gateway.fakes import ManualFeed, MemoryQuoteStore, decoded
from gateway.market import MarketData
from gateway.security import channel_credentials
from tests.support import price_update

TOKEN = "security-token-0123456789abcdef"
TOKENS = json.dumps({TOKEN: {"account": "acct-sec", "permissions": ["market_data"]}})
TICK = price_update(
    exchange="NASDAQ", symbol="AAPL", bid_nanos=1_000_000, ask_nanos=1_100_000,
    event_time_ns=1_700_000_000_000_000_000, feed_handler_id="t", feed_sequence=1,
)  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    return make_dev_certificates(tmp_path_factory.mktemp("certs"), now=dt.datetime.now(tz=dt.UTC))


async def _start(settings: GatewaySettings) -> app.Gateway:
    def feed_factory(market: MarketData, loop: asyncio.AbstractEventLoop) -> ManualFeed:
        feed = ManualFeed(market, loop)
        market.apply(decoded([TICK]))
        return feed

    return await app.start(settings, store=MemoryQuoteStore(), feed_factory=feed_factory)


@pytest.fixture
async def tls_gateway(certs: DevCertificates) -> AsyncIterator[app.Gateway]:
    gateway = await _start(
        GatewaySettings(
            port=0,
            trading="off",
            tls_cert_file=certs.server_cert,
            tls_key_file=certs.server_key,
            auth_tokens=TOKENS,
        )
    )
    yield gateway
    await app.stop(gateway)


@pytest.fixture
async def mtls_gateway(certs: DevCertificates) -> AsyncIterator[app.Gateway]:
    gateway = await _start(
        GatewaySettings(
            port=0,
            trading="off",
            tls_cert_file=certs.server_cert,
            tls_key_file=certs.server_key,
            tls_client_ca_file=certs.ca_cert,
            auth_tokens=TOKENS,
        )
    )
    yield gateway
    await app.stop(gateway)


async def _quote_status(
    port: int, credentials: grpc.ChannelCredentials | None, token: str = TOKEN
) -> grpc.StatusCode:
    async with GatewayClient(f"127.0.0.1:{port}", credentials=credentials, token=token) as client:
        try:
            quote = await client.get_quote("AAPL", timeout_s=3)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        assert quote.latest.symbol == "AAPL"
        return grpc.StatusCode.OK


async def test_tls_serves_clients_that_trust_its_ca(
    tls_gateway: app.Gateway, certs: DevCertificates
) -> None:
    trusted = channel_credentials(certs.ca_cert, None, None)
    assert await _quote_status(tls_gateway.port, trusted) == grpc.StatusCode.OK
    assert await _quote_status(tls_gateway.port, trusted, "") == grpc.StatusCode.UNAUTHENTICATED


async def test_tls_refuses_plaintext_and_untrusted_clients(
    tls_gateway: app.Gateway, certs: DevCertificates, tmp_path: Path
) -> None:
    assert await _quote_status(tls_gateway.port, None) == grpc.StatusCode.UNAVAILABLE
    other = make_dev_certificates(tmp_path / "other", now=dt.datetime.now(tz=dt.UTC))
    untrusted = channel_credentials(other.ca_cert, None, None)
    assert await _quote_status(tls_gateway.port, untrusted) == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_needs_a_client_certificate_from_its_ca(
    mtls_gateway: app.Gateway, certs: DevCertificates, tmp_path: Path
) -> None:
    with_cert = channel_credentials(certs.ca_cert, certs.client_cert, certs.client_key)
    assert await _quote_status(mtls_gateway.port, with_cert) == grpc.StatusCode.OK
    without_cert = channel_credentials(certs.ca_cert, None, None)
    assert await _quote_status(mtls_gateway.port, without_cert) == grpc.StatusCode.UNAVAILABLE
    other = make_dev_certificates(tmp_path / "other", now=dt.datetime.now(tz=dt.UTC))
    foreign = channel_credentials(certs.ca_cert, other.client_cert, other.client_key)
    assert await _quote_status(mtls_gateway.port, foreign) == grpc.StatusCode.UNAVAILABLE


def _reflection_client(port: int, ca_cert: bytes) -> tuple[list[str], str, int]:
    """A generic client: it knows nothing of our protos, only what reflection tells it."""
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_cert)
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(database.get_services())
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName("financial.marketdata.v2.MarketDataService")
        method = service.methods_by_name["GetQuote"]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(
            "/financial.marketdata.v2.MarketDataService/GetQuote",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        response = call(
            request_class(symbol="AAPL"),
            timeout=5,
            metadata=(("authorization", f"Bearer {TOKEN}"),),
        )
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
        return services, response.latest.symbol, health.status


async def test_a_reflection_client_lists_services_and_calls_get_quote(
    tls_gateway: app.Gateway, certs: DevCertificates
) -> None:
    services, symbol, health = await asyncio.to_thread(
        _reflection_client, tls_gateway.port, certs.ca_cert.read_bytes()
    )
    assert "financial.marketdata.v2.MarketDataService" in services
    assert "grpc.health.v1.Health" in services
    assert symbol == "AAPL"
    assert health == health_pb2.HealthCheckResponse.SERVING


def test_insecure_mode_only_listens_on_loopback() -> None:
    GatewaySettings(insecure=True, address="127.0.0.1")
    GatewaySettings(insecure=True, address="::1")
    with pytest.raises(ValueError, match="loopback only"):
        GatewaySettings(insecure=True, address="0.0.0.0")


def test_tls_without_certificates_or_tokens_is_refused(certs: DevCertificates) -> None:
    with pytest.raises(ValueError, match="GATEWAY_TLS_CERT_FILE"):
        GatewaySettings()
    with pytest.raises(ValueError, match="GATEWAY_AUTH_TOKENS"):
        GatewaySettings(tls_cert_file=certs.server_cert, tls_key_file=certs.server_key)
