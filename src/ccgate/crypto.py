"""Everything derived from the server secret: key hashes and encrypted upstream credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ccgate.ids import random_base62

KEY_RANDOM_CHARS = 40


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


class SecretBox:
    """Hashes client keys (HMAC-SHA256) and encrypts upstream keys (Fernet), each with its own subkey."""

    def __init__(self, secret: bytes) -> None:
        self._hmac_key = _derive(secret, b"ccgate api key hmac")
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret, b"ccgate credential encryption")))

    def hash_key(self, api_key: str) -> str:
        """The stored form of a client key; the key itself is never stored."""
        return hmac.new(self._hmac_key, api_key.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()


def new_api_key(prefix: str) -> str:
    """A fresh client key: the configured prefix and 40 random base62 characters."""
    return prefix + random_base62(KEY_RANDOM_CHARS)


def mask_key(api_key: str, prefix: str) -> str:
    """How a key is shown after creation: prefix, an ellipsis and its last four characters."""
    return f"{prefix}...{api_key[-4:]}"
