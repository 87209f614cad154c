"""Settings and channel/server options: what the gateway and its client ask gRPC for."""

from __future__ import annotations

import json

from gateway.app import server_options, token_table
from gateway.client import SERVICE_CONFIG, channel_options
from gateway.config import ClientSettings, GatewaySettings
from marketinfra.grpc_security import is_loopback


def test_server_options_carry_keepalive_connection_age_and_message_limits() -> None:
    options = dict(server_options(GatewaySettings(insecure=True)))
    assert options["grpc.max_connection_age_ms"] == 1_800_000
    assert options["grpc.max_connection_age_grace_ms"] == 300_000
    assert options["grpc.keepalive_time_ms"] == 60_000
    assert options["grpc.http2.min_recv_ping_interval_without_data_ms"] == 10_000
    assert options["grpc.max_receive_message_length"] == 1024 * 1024
    assert options["grpc.so_reuseport"] == 0


def test_client_balances_round_robin_and_retries_only_unavailable() -> None:
    options = dict(channel_options("gateway.mdgw.local"))
    config = json.loads(str(options["grpc.service_config"]))
    assert config == SERVICE_CONFIG
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    [method] = config["methodConfig"]
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert options["grpc.ssl_target_name_override"] == "gateway.mdgw.local"


def test_insecure_mode_without_tokens_turns_authentication_off() -> None:
    assert not token_table(GatewaySettings(insecure=True)).required
    tokens = json.dumps({"t" * 20: {"account": "a"}})
    assert token_table(GatewaySettings(insecure=True, auth_tokens=tokens)).required


def test_loopback_detection() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "10.0.0.1", "gateway", "::"]))


def test_client_settings_default_to_the_local_gateway() -> None:
    settings = ClientSettings()
    assert settings.target == "127.0.0.1:50051"
    assert settings.timeout_s > 0
    assert settings.stream_timeout_s > settings.timeout_s
