"""Who is calling the gateway: its permissions, its token table and its TLS credentials, built
on ``marketinfra.grpc_security`` (shared with TickWriterService).

Tokens arrive as ``authorization: Bearer <token>`` metadata on every call; ``GATEWAY_AUTH_TOKENS``
maps them to an account and its permissions. A missing or unknown token is UNAUTHENTICATED; a
known token without the method's permission is PERMISSION_DENIED. Health checks and server
reflection need no token.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path

import grpc

from financial.marketdata.v2 import services_pb2
from gateway.errors import ConfigError
from marketinfra import grpc_security
from marketinfra.errors import SecurityConfigError
from marketinfra.grpc_security import OPEN_SERVICES, Account, Authenticator, AuthFailure

__all__ = [
    "CURRENT_ACCOUNT",
    "DEV_ACCOUNT",
    "METHOD_PERMISSIONS",
    "OPEN_SERVICES",
    "RELAYED_ACCOUNT",
    "SERVICE",
    "Account",
    "AuthFailure",
    "Authenticator",
    "Permission",
    "RelayedCallers",
    "TokenTable",
    "channel_credentials",
    "parse_tokens",
    "server_credentials",
]

# From the descriptor: importing services_pb2 also registers the service with the default
# descriptor pool, which server reflection answers from.
SERVICE: str = services_pb2.DESCRIPTOR.services_by_name["MarketDataService"].full_name


class Permission(StrEnum):
    MARKET_DATA = "market_data"
    TRADING = "trading"


METHOD_PERMISSIONS: Mapping[str, Permission] = {
    f"/{SERVICE}/StreamPrices": Permission.MARKET_DATA,
    f"/{SERVICE}/StreamPriceBatches": Permission.MARKET_DATA,
    f"/{SERVICE}/GetQuote": Permission.MARKET_DATA,
    f"/{SERVICE}/SubmitOrders": Permission.TRADING,
    f"/{SERVICE}/LiveTrading": Permission.TRADING,
}

DEV_ACCOUNT = Account("dev", frozenset(Permission))
# The authenticated caller of the current RPC (set by the interceptor, read by handlers).
CURRENT_ACCOUNT: ContextVar[Account | None] = ContextVar("gateway_account", default=None)


TokenTable = grpc_security.TokenTable


def parse_tokens(text: str, *, required: bool = True) -> TokenTable:
    """``GATEWAY_AUTH_TOKENS``: token -> account. With ``required=False`` (insecure development
    mode with no tokens configured) every caller is ``DEV_ACCOUNT``. Raises ConfigError naming
    the problem (never the token)."""
    try:
        return TokenTable.parse(
            text,
            setting="GATEWAY_AUTH_TOKENS",
            permissions=[permission.value for permission in Permission],
            default_permissions=[Permission.MARKET_DATA.value],
            method_permissions=METHOD_PERMISSIONS,
            required=required,
            anonymous=DEV_ACCOUNT,
        )
    except SecurityConfigError as exc:
        raise ConfigError(str(exc)) from exc


# Set by a relaying worker on the calls it forwards to the trading owner (internal socket only).
RELAYED_ACCOUNT = "x-mdgw-relayed-account"


class RelayedCallers:
    """For the trading owner's internal Unix socket, which only the gateway's own workers can
    reach (a directory of mode 0700): the relaying worker authenticated the caller, and names
    the account in ``x-mdgw-relayed-account``."""

    def authenticate(
        self, method: str, metadata: Mapping[str, str | bytes]
    ) -> Account | AuthFailure | None:
        if method.startswith(OPEN_SERVICES):
            return None
        account = metadata.get(RELAYED_ACCOUNT)
        if not isinstance(account, str) or not account:
            return AuthFailure.MISSING
        return Account(account, frozenset({Permission.TRADING}))


def server_credentials(
    cert_file: Path, key_file: Path, client_ca_file: Path | None
) -> grpc.ServerCredentials:
    """TLS from PEM files; with ``client_ca_file``, mutual TLS. Raises ConfigError."""
    try:
        return grpc_security.server_credentials(cert_file, key_file, client_ca_file)
    except SecurityConfigError as exc:
        raise ConfigError(str(exc)) from exc


def channel_credentials(
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None
) -> grpc.ChannelCredentials:
    """The client side (trust ``ca_file``; present a certificate for mutual TLS)."""
    try:
        return grpc_security.channel_credentials(ca_file, cert_file, key_file)
    except SecurityConfigError as exc:
        raise ConfigError(str(exc)) from exc
