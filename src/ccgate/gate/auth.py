"""Key authentication: the client's credential, looked up in the in-process key directory."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ccgate.errors import GatewayError
from ccgate.gate.keys import KeyDirectory, KeyRecord
from ccgate.store.repo import now_ms


def credential(headers: Mapping[str, str]) -> str | None:
    """The client's key, from `x-api-key` or `Authorization: Bearer`."""
    if key := headers.get("x-api-key"):
        return key
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return None


class Authenticator:
    """Turns a request's headers into the key they carry, or a 401 that says why."""

    def __init__(self, hash_key: Callable[[str], str]) -> None:
        self._hash_key = hash_key
        self.directory = KeyDirectory({})  # swapped whole on each configuration reload

    def authenticate(self, headers: Mapping[str, str]) -> KeyRecord:
        key = credential(headers)
        if key is None:
            raise GatewayError(401, "x-api-key header is required")
        key_hash = self._hash_key(key)
        record = self.directory.lookup(key_hash)
        if record is None:
            if self.directory.was_revoked(key_hash):
                raise GatewayError(401, "this API key was revoked")
            raise GatewayError(401, "invalid x-api-key")
        if record.expires_ms is not None and record.expires_ms <= now_ms():
            raise GatewayError(401, "this API key has expired")
        if record.user_disabled:
            raise GatewayError(401, "this API key's user is disabled")
        return record
