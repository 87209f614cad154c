"""Who calls a gRPC service, and over what: shared by every service that serves gRPC (the
gateway, TickWriterService), so both check callers the same way.

- Tokens arrive as ``authorization: Bearer <token>`` metadata on every call. A ``TokenTable``
  maps the SHA-256 of each token (the plaintext is not kept once parsed) to an account and its
  permissions; each method needs one permission. A missing or unknown token is
  UNAUTHENTICATED, a known token without the method's permission PERMISSION_DENIED
  (``REFUSALS``: the same texts everywhere). Health checks and server reflection need none.
- TLS from PEM files, mutual TLS with a client CA (``server_credentials``), and the client
  side (``channel_credentials``). Plaintext is for loopback only (``is_loopback``): each
  service's settings refuse it on any other address.
- ``lenient``: a request deserializer that turns bytes that are not the request message into
  None, so the handler answers INVALID_ARGUMENT instead of gRPC's own UNKNOWN or INTERNAL.

Errors: a token table or TLS file that cannot be used is ``SecurityConfigError`` (one line,
never the token itself).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from marketinfra.errors import SecurityConfigError

OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
AUTHORIZATION = "authorization"
BEARER = "bearer "
MIN_TOKEN_CHARS = 16
# Account ids name partitions and keys downstream (event_store "ACCOUNT/ORDER_ID"): short, plain.
ACCOUNT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MessageT = TypeVar("MessageT", bound=Message)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    permissions: frozenset[str]


class AuthFailure(StrEnum):
    MISSING = "missing"
    INVALID = "invalid"
    FORBIDDEN = "forbidden"


REFUSALS: Mapping[AuthFailure, tuple[grpc.StatusCode, str]] = {
    AuthFailure.MISSING: (grpc.StatusCode.UNAUTHENTICATED, "missing bearer token"),
    AuthFailure.INVALID: (grpc.StatusCode.UNAUTHENTICATED, "invalid token"),
    AuthFailure.FORBIDDEN: (grpc.StatusCode.PERMISSION_DENIED, "not permitted for this account"),
}


class Authenticator(Protocol):
    def authenticate(
        self, method: str, metadata: Mapping[str, str | bytes]
    ) -> Account | AuthFailure | None: ...


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    """Token -> account, for one service's methods. With ``required=False`` (plaintext
    development mode with no tokens configured) every caller is ``anonymous``."""

    def __init__(
        self,
        accounts: Mapping[bytes, Account],
        method_permissions: Mapping[str, str],
        *,
        required: bool = True,
        anonymous: Account | None = None,
    ) -> None:
        self._accounts = dict(accounts)
        self._method_permissions = dict(method_permissions)
        self.required = required
        self._anonymous = anonymous or Account("dev", frozenset(method_permissions.values()))

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        setting: str,
        permissions: Collection[str],
        default_permissions: Collection[str],
        method_permissions: Mapping[str, str],
        required: bool = True,
        anonymous: Account | None = None,
    ) -> TokenTable:
        """Parse a JSON object ``{"<token>": {"account": "...", "permissions": [...]}}`` read
        from the variable ``setting``; raises SecurityConfigError naming the problem (never
        the token)."""
        table = cls({}, method_permissions, required=required, anonymous=anonymous)
        if not text.strip():
            return table
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SecurityConfigError(f"{setting} is not JSON: {exc.msg}") from exc
        if not isinstance(raw, dict):
            raise SecurityConfigError(f"{setting} must be a JSON object of token -> account")
        known = ", ".join(permissions)
        for index, (token, entry) in enumerate(raw.items()):
            where = f"{setting} entry {index + 1}"
            if not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS:
                raise SecurityConfigError(
                    f"{where}: tokens must be at least {MIN_TOKEN_CHARS} characters"
                )
            if not isinstance(entry, dict) or not isinstance(entry.get("account"), str):
                raise SecurityConfigError(
                    f'{where}: expected {{"account": "...", "permissions": [...]}}'
                )
            if not ACCOUNT_ID.match(entry["account"]):
                raise SecurityConfigError(
                    f"{where}: an account id is 1 to 64 letters, digits, '.', '_' or '-'"
                )
            names: Any = entry.get("permissions", list(default_permissions))
            if not isinstance(names, list) or not all(name in permissions for name in names):
                raise SecurityConfigError(f"{where}: unknown permission in {names!r} ({known})")
            table._accounts[_digest(token)] = Account(entry["account"], frozenset(names))
        return table

    def authenticate(
        self, method: str, metadata: Mapping[str, str | bytes]
    ) -> Account | AuthFailure | None:
        """The caller's account; an AuthFailure; or None for a method that needs no token."""
        if method.startswith(OPEN_SERVICES):
            return None
        if not self.required:
            return self._anonymous
        value = metadata.get(AUTHORIZATION)
        if not isinstance(value, str) or not value.lower().startswith(BEARER):
            return AuthFailure.MISSING
        account = self._accounts.get(_digest(value[len(BEARER) :].strip()))
        if account is None:
            return AuthFailure.INVALID
        needed = self._method_permissions.get(method)
        if needed is not None and needed not in account.permissions:
            return AuthFailure.FORBIDDEN
        return account

    def __len__(self) -> int:
        return len(self._accounts)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SecurityConfigError(f"cannot read the {what} {path}: {exc.strerror}") from exc


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
        raise SecurityConfigError("a client certificate needs its key, and a key its certificate")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file, "CA") if ca_file is not None else None,
        private_key=_read(key_file, "client key") if key_file is not None else None,
        certificate_chain=_read(cert_file, "client certificate") if cert_file is not None else None,
    )


def lenient(message_type: type[MessageT]) -> Callable[[bytes], MessageT | None]:
    """A request deserializer that turns undecodable bytes into None (the handler answers
    INVALID_ARGUMENT) instead of gRPC's UNKNOWN naming a Python exception."""

    def deserialize(data: bytes) -> MessageT | None:
        try:
            return message_type.FromString(data)
        except DecodeError:
            return None

    return deserialize
