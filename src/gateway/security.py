"""Who is calling, and over what: per-call tokens and TLS / mutual TLS credentials.

Tokens arrive as ``authorization: Bearer <token>`` metadata on every call. The table maps the
SHA-256 of each token (the plaintext is not kept once parsed) to an account and its
permissions. A missing or unknown token is UNAUTHENTICATED; a known token without the method's
permission is PERMISSION_DENIED. Health checks and server reflection need no token.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import grpc

from financial.marketdata.v2 import services_pb2
from gateway.errors import ConfigError

# From the descriptor: importing services_pb2 also registers the service with the default
# descriptor pool, which server reflection answers from.
SERVICE: str = services_pb2.DESCRIPTOR.services_by_name["MarketDataService"].full_name
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
AUTHORIZATION = "authorization"
BEARER = "bearer "


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


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    permissions: frozenset[Permission]


DEV_ACCOUNT = Account("dev", frozenset(Permission))
# The authenticated caller of the current RPC (set by the interceptor, read by handlers).
CURRENT_ACCOUNT: ContextVar[Account | None] = ContextVar("gateway_account", default=None)


class AuthFailure(StrEnum):
    MISSING = "missing"
    INVALID = "invalid"
    FORBIDDEN = "forbidden"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    """Token -> account. With ``required=False`` (insecure development mode with no tokens
    configured) every caller is ``DEV_ACCOUNT``."""

    def __init__(self, accounts: Mapping[bytes, Account], *, required: bool = True) -> None:
        self._accounts = dict(accounts)
        self.required = required

    @classmethod
    def parse(cls, text: str, *, required: bool = True) -> TokenTable:
        """Parse ``GATEWAY_AUTH_TOKENS``; raises ConfigError naming the problem (not the token)."""
        if not text.strip():
            return cls({}, required=required)
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"GATEWAY_AUTH_TOKENS is not JSON: {exc.msg}") from exc
        if not isinstance(raw, dict):
            raise ConfigError("GATEWAY_AUTH_TOKENS must be a JSON object of token -> account")
        accounts: dict[bytes, Account] = {}
        for index, (token, entry) in enumerate(raw.items()):
            where = f"GATEWAY_AUTH_TOKENS entry {index + 1}"
            if not isinstance(token, str) or len(token) < 16:
                raise ConfigError(f"{where}: tokens must be at least 16 characters")
            if not isinstance(entry, dict) or not isinstance(entry.get("account"), str):
                raise ConfigError(f'{where}: expected {{"account": "...", "permissions": [...]}}')
            names = entry.get("permissions", [Permission.MARKET_DATA.value])
            try:
                permissions = frozenset(Permission(name) for name in names)
            except (TypeError, ValueError) as exc:
                known = ", ".join(p.value for p in Permission)
                raise ConfigError(f"{where}: unknown permission in {names!r} ({known})") from exc
            accounts[_digest(token)] = Account(entry["account"], permissions)
        return cls(accounts, required=required)

    def authenticate(
        self, method: str, metadata: Mapping[str, str | bytes]
    ) -> Account | AuthFailure | None:
        """The caller's account; an AuthFailure; or None for a method that needs no token."""
        if method.startswith(OPEN_SERVICES):
            return None
        if not self.required:
            return DEV_ACCOUNT
        value = metadata.get(AUTHORIZATION)
        if not isinstance(value, str) or not value.lower().startswith(BEARER):
            return AuthFailure.MISSING
        account = self._accounts.get(_digest(value[len(BEARER) :].strip()))
        if account is None:
            return AuthFailure.INVALID
        needed = METHOD_PERMISSIONS.get(method)
        if needed is not None and needed not in account.permissions:
            return AuthFailure.FORBIDDEN
        return account

    def __len__(self) -> int:
        return len(self._accounts)


class Authenticator(Protocol):
    def authenticate(
        self, method: str, metadata: Mapping[str, str | bytes]
    ) -> Account | AuthFailure | None: ...


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


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}") from exc


def server_credentials(
    cert_file: Path, key_file: Path, client_ca_file: Path | None
) -> grpc.ServerCredentials:
    """TLS from PEM files; with ``client_ca_file``, mutual TLS (client certificates required)."""
    pair = (_read(key_file, "TLS key"), _read(cert_file, "TLS certificate"))
    if client_ca_file is None:
        return grpc.ssl_server_credentials([pair])
    return grpc.ssl_server_credentials(
        [pair], root_certificates=_read(client_ca_file, "client CA"), require_client_auth=True
    )


def channel_credentials(
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None
) -> grpc.ChannelCredentials:
    if (cert_file is None) != (key_file is None):
        raise ConfigError("a client certificate needs its key, and a key its certificate")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file, "CA") if ca_file is not None else None,
        private_key=_read(key_file, "client key") if key_file is not None else None,
        certificate_chain=_read(cert_file, "client certificate") if cert_file is not None else None,
    )
