"""Personal data (payer names, addresses, contacts) encrypted at rest with AES-256-GCM.

Keys come from the environment, first entry active, older ones kept for decryption::

    NOFU_PII_KEYS="k2:<b64 32 bytes>,k1:<b64 32 bytes>"

Stored blob (ASCII, fits a text column)::

    v1.<key id>.<base64url(nonce[12] || ciphertext || tag[16])>

The GCM associated data is ``b"v1.<key id>." + aad``: the caller's ``aad`` binds the value to its
row and field (e.g. ``b"invoice:8f3a...:payer_name"``), so a ciphertext copied to another row or
field does not decrypt; the header is bound too, so it cannot be relabelled.

Nonces are 96 random bits per encryption. With random nonces NIST SP 800-38D limits one key to
2^32 encryptions; rotate well before that (a municipality writes far fewer).

Error tree::

    PiiError
    ├── PiiConfigError      pii.bad_config
    ├── PiiUnknownKeyError  pii.unknown_key
    └── PiiDecryptError     pii.decrypt_failed   (malformed blob, tampering, wrong aad)
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "PiiCipher",
    "PiiConfigError",
    "PiiDecryptError",
    "PiiError",
    "PiiUnknownKeyError",
    "Redacted",
    "generate_key",
]

_FORMAT = "v1"
_NONCE_SIZE = 12
_TAG_SIZE = 16
_KEY_SIZE = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class PiiError(Exception):
    """Personal data could not be protected or recovered; ``code`` is stable, message has no PII."""

    code: ClassVar[str] = "pii.error"


class PiiConfigError(PiiError):
    """``NOFU_PII_KEYS`` is missing, malformed, or has a key of the wrong size."""

    code = "pii.bad_config"


class PiiUnknownKeyError(PiiError):
    """The blob names a key that is not configured (removed, or from another environment)."""

    code = "pii.unknown_key"


class PiiDecryptError(PiiError):
    """The blob is malformed, was altered, or belongs to another row or field (aad)."""

    code = "pii.decrypt_failed"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def generate_key(key_id: str) -> str:
    """A new ``"<key id>:<b64url 32 bytes>"`` entry; prepend it to ``NOFU_PII_KEYS`` to activate."""
    if not _KEY_ID.fullmatch(key_id):
        raise PiiConfigError("key id must be 1-16 characters of [A-Za-z0-9_-]")
    return f"{key_id}:{_b64url(os.urandom(_KEY_SIZE))}"


def _decode_key(text: str) -> bytes:
    cleaned = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    if not _B64URL.fullmatch(cleaned) or len(cleaned) % 4 == 1:
        raise PiiConfigError("key is not base64")
    key = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    if len(key) != _KEY_SIZE:
        raise PiiConfigError(f"key must be {_KEY_SIZE} bytes, got {len(key)}")
    return key


@dataclass(frozen=True, slots=True)
class PiiCipher:
    """AES-GCM with key rotation. Invariant: ``active_key_id`` is one of ``keys``."""

    active_key_id: str
    keys: Mapping[str, AESGCM]

    @classmethod
    def from_config(cls, config: str) -> PiiCipher:
        """Build from ``"k2:<b64>,k1:<b64>"``; the first entry encrypts."""
        keys: dict[str, AESGCM] = {}
        order: list[str] = []
        for item in config.split(","):
            item = item.strip()
            if not item:
                continue
            key_id, sep, material = item.partition(":")
            key_id = key_id.strip()
            if not sep or not _KEY_ID.fullmatch(key_id):
                raise PiiConfigError(
                    "entry must be '<key id>:<base64 key>', id [A-Za-z0-9_-]{1,16}"
                )
            if key_id in keys:
                raise PiiConfigError("duplicate key id")
            keys[key_id] = AESGCM(_decode_key(material))
            order.append(key_id)
        if not order:
            raise PiiConfigError("no PII key configured")
        return cls(active_key_id=order[0], keys=keys)

    def encrypt(self, plaintext: str, aad: bytes) -> str:
        """Blob under the active key; a fresh nonce each call, so equal inputs differ."""
        header = f"{_FORMAT}.{self.active_key_id}."
        nonce = os.urandom(_NONCE_SIZE)
        sealed = self.keys[self.active_key_id].encrypt(
            nonce, plaintext.encode("utf-8"), header.encode("ascii") + aad
        )
        return header + _b64url(nonce + sealed)

    def _split(self, blob: str) -> tuple[str, str, bytes]:
        """(header, key id, nonce+ciphertext) of a well-formed blob."""
        if not isinstance(blob, str):
            raise PiiDecryptError("blob must be text")
        parts = blob.split(".")
        if len(parts) != 3 or parts[0] != _FORMAT or not _KEY_ID.fullmatch(parts[1]):
            raise PiiDecryptError("malformed blob")
        body = parts[2]
        if not _B64URL.fullmatch(body) or len(body) % 4 == 1:
            raise PiiDecryptError("malformed blob")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError) as exc:
            raise PiiDecryptError("malformed blob") from exc
        if len(raw) < _NONCE_SIZE + _TAG_SIZE:
            raise PiiDecryptError("blob is truncated")
        return f"{parts[0]}.{parts[1]}.", parts[1], raw

    def decrypt(self, blob: str, aad: bytes) -> str:
        """Plaintext of a blob sealed for this ``aad`` under any configured key."""
        header, key_id, raw = self._split(blob)
        key = self.keys.get(key_id)
        if key is None:
            raise PiiUnknownKeyError(f"PII key {key_id!r} is not configured")
        try:
            plain = key.decrypt(raw[:_NONCE_SIZE], raw[_NONCE_SIZE:], header.encode("ascii") + aad)
        except InvalidTag as exc:
            raise PiiDecryptError("authentication failed (tampered, or wrong row/field)") from exc
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError as exc:  # only reachable with a forged-but-authentic blob
            raise PiiDecryptError("plaintext is not UTF-8") from exc

    def needs_reencrypt(self, blob: str) -> bool:
        """True when the blob is not under the active key (reads the header only)."""
        return self._split(blob)[1] != self.active_key_id

    def reencrypt(self, blob: str, aad: bytes) -> str:
        """The same plaintext under the active key; a blob already there is returned unchanged."""
        if not self.needs_reencrypt(blob):
            self.decrypt(blob, aad)  # still authenticate: a rotation job must not bless tampering
            return blob
        return self.encrypt(self.decrypt(blob, aad), aad)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Redacted(Generic[T]):
    """A value that prints as ``***`` in logs, reprs, f-strings and tracebacks.

    Use ``.reveal()`` where the real value is needed (rendering the payer's own page).
    """

    _value: T

    def reveal(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"
