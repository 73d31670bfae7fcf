"""Signed payment tokens: the opaque part of the URL printed as a QR code on each invoice.

A token names one invoice (through the caller's opaque reference, e.g. the invoice's random public
id) and its *generation*; it carries no personal data. Staff revoke one invoice's printed code by
bumping its generation: the old token still verifies, and the caller refuses it because its
generation is not the current one.

Binary layout, version 1 (then base64url without padding)::

    offset  size    field
    0       1       version             0x01
    1       1       key id length L     1..8
    2       L       key id              ASCII [A-Za-z0-9_-]
    2+L     2       generation          unsigned, big-endian, 0..65535
    4+L     N       ref                 1..16 bytes, the rest of the body (no length byte)
    4+L+N   64      Ed25519 signature   over SIGNING_CONTEXT + bytes[0 : 4+L+N]

With a 2-character key id and a 16-byte ref a token is 86 bytes, 115 characters.

The signature covers the version and key id too, so neither can be swapped. The signing context
(not transmitted) keeps these signatures from being valid for any other message the same key might
sign.

Error tree (every refusal has a stable ``code``)::

    TokenError
    ├── MalformedTokenError           token.malformed
    ├── UnsupportedTokenVersionError  token.unsupported_version
    ├── UnknownKeyError               token.unknown_key
    ├── BadSignatureError             token.bad_signature
    └── KeyConfigError                token.bad_config     (configuration, never from verify)

Key ring configuration, for environment variables::

    NOFU_QR_SIGNING_KEYS="k2:<b64 seed>,k1:<b64 seed>"   first entry signs, all verify
    NOFU_QR_VERIFY_KEYS="k0:<b64 public key>"            retired keys: verify only

A key absent from both lists is removed: its tokens are refused with ``token.unknown_key``.

Manual-entry fallback: ``confirmation_code`` derives 6 characters from the token's signature (see
its docstring for the brute-force margin).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "CONFIRMATION_ALPHABET",
    "BadSignatureError",
    "KeyConfigError",
    "KeyRing",
    "MalformedTokenError",
    "TokenClaims",
    "TokenError",
    "UnknownKeyError",
    "UnsupportedTokenVersionError",
    "confirmation_code",
    "generate_key",
    "normalize_confirmation_code",
    "verify_only_entry",
    "verify_with_jwks",
]

VERSION = 1
SIGNING_CONTEXT = b"nofu/payment-token/v1\x00"
SIGNATURE_SIZE = 64
MAX_REF_SIZE = 16
MAX_GENERATION = 0xFFFF
MAX_KEY_ID_SIZE = 8
# Longest possible v1 token is 1+1+8+2+16+64 = 92 bytes = 123 characters; anything much longer is
# refused before decoding so hostile input costs nothing.
_MAX_TOKEN_CHARS = 128
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,8}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")

# 32 symbols, no 0/O/1/I: each symbol carries 5 bits, and nothing reads as something else.
CONFIRMATION_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CONFIRMATION_LENGTH = 6
_CONFIRMATION_CONTEXT = b"nofu/confirmation-code/v1\x00"


class TokenError(Exception):
    """A payment token was refused; ``code`` is stable and safe to show or log."""

    code: ClassVar[str] = "token.invalid"


class MalformedTokenError(TokenError):
    """Not base64url, truncated, or fields out of range."""

    code = "token.malformed"


class UnsupportedTokenVersionError(TokenError):
    """The version byte names a layout this code does not know."""

    code = "token.unsupported_version"


class UnknownKeyError(TokenError):
    """The key id is not in the key ring (never issued, or removed: revoked)."""

    code = "token.unknown_key"


class BadSignatureError(TokenError):
    """The signature does not match the content: altered or forged."""

    code = "token.bad_signature"


class KeyConfigError(TokenError):
    """The key configuration (environment string or JWKS) is unusable."""

    code = "token.bad_config"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token says.

    Attributes:
        key_id: the key that signed it.
        ref: the caller's opaque invoice reference (1..16 bytes).
        generation: compare with the invoice's current generation; a lower one was revoked.
        signature: the Ed25519 signature, kept so ``confirmation_code`` can be derived from claims.
    """

    key_id: str
    ref: bytes
    generation: int
    signature: bytes = field(repr=False)


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode_strict(text: str) -> bytes:
    """Decode unpadded base64url; refuse anything that does not re-encode to the same text.

    Python's decoder ignores stray characters and non-zero trailing bits; accepting those would
    let many strings stand for one token.
    """
    if len(text) > _MAX_TOKEN_CHARS or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise MalformedTokenError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedTokenError("not unpadded base64url") from exc
    if _b64url_encode(data) != text:
        raise MalformedTokenError("non-canonical base64url")
    return data


def _decode_key_material(text: str, what: str) -> bytes:
    """Accept base64 or base64url, padded or not: env values are typed by people."""
    cleaned = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    if not _B64URL.fullmatch(cleaned) or len(cleaned) % 4 == 1:
        raise KeyConfigError(f"{what} is not base64")
    raw = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    if len(raw) != 32:
        raise KeyConfigError(f"{what} must be 32 bytes, got {len(raw)}")
    return raw


def _check_key_id(key_id: str) -> str:
    if not _KEY_ID.fullmatch(key_id):
        raise KeyConfigError(f"key id {key_id!r} must be 1-8 characters of [A-Za-z0-9_-]")
    return key_id


def _parse_entries(config: str, what: str) -> list[tuple[str, bytes]]:
    entries: list[tuple[str, bytes]] = []
    for item in config.split(","):
        item = item.strip()
        if not item:
            continue
        key_id, sep, material = item.partition(":")
        if not sep:
            raise KeyConfigError(f"{what} entry must be '<key id>:<base64>'")
        entries.append((_check_key_id(key_id.strip()), _decode_key_material(material, what)))
    return entries


def _body(key_id: str, ref: bytes, generation: int) -> bytes:
    kid = key_id.encode("ascii")
    return bytes([VERSION, len(kid)]) + kid + generation.to_bytes(2, "big") + ref


def _verify(token: str, lookup: Callable[[str], Ed25519PublicKey | None]) -> TokenClaims:
    """Parse and check a token; only ``TokenError`` escapes, whatever the input."""
    if not isinstance(token, str):
        raise MalformedTokenError("token must be text")
    raw = _b64url_decode_strict(token)
    if not raw:
        raise MalformedTokenError("empty token")
    if raw[0] != VERSION:
        raise UnsupportedTokenVersionError(f"token version {raw[0]} is not supported")
    if len(raw) < 2 + 1 + 2 + 1 + SIGNATURE_SIZE:
        raise MalformedTokenError("token is truncated")
    kid_len = raw[1]
    body_len = len(raw) - SIGNATURE_SIZE
    ref_start = 2 + kid_len + 2
    if not 1 <= kid_len <= MAX_KEY_ID_SIZE or not 1 <= body_len - ref_start <= MAX_REF_SIZE:
        raise MalformedTokenError("token fields out of range")
    key_id = raw[2 : 2 + kid_len].decode("ascii", errors="replace")
    if not _KEY_ID.fullmatch(key_id):
        raise MalformedTokenError("bad key id")
    body, signature = raw[:body_len], raw[body_len:]
    public_key = lookup(key_id)
    if public_key is None:
        raise UnknownKeyError(f"unknown or revoked key {key_id!r}")
    try:
        public_key.verify(signature, SIGNING_CONTEXT + body)
    except InvalidSignature as exc:
        raise BadSignatureError("signature does not match") from exc
    return TokenClaims(
        key_id=key_id,
        ref=body[ref_start:],
        generation=int.from_bytes(body[2 + kid_len : ref_start], "big"),
        signature=signature,
    )


def generate_key(key_id: str) -> str:
    """A new signing-key entry ``"<key id>:<b64url seed>"``; put it first in the config to sign."""
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    return f"{_check_key_id(key_id)}:{_b64url_encode(seed)}"


def verify_only_entry(signing_entry: str) -> str:
    """The ``"<key id>:<b64url public key>"`` entry that retires a signing key to verify-only."""
    entries = _parse_entries(signing_entry, "signing key")
    if len(entries) != 1:
        raise KeyConfigError("expected exactly one signing key entry")
    ((key_id, seed),) = entries
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    return f"{key_id}:{_b64url_encode(public)}"


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Ed25519 keys for payment tokens: one active signer, any number of verifiers.

    Invariant: key ids are unique across signing and verify-only keys, and ``active_key_id`` names
    a signing key.
    """

    active_key_id: str
    signing_keys: Mapping[str, Ed25519PrivateKey]
    verify_only_keys: Mapping[str, Ed25519PublicKey]

    @classmethod
    def from_config(cls, signing: str, verify_only: str = "") -> KeyRing:
        """Build from ``"k2:<seed>,k1:<seed>"`` (first signs) and ``"k0:<public key>,..."``."""
        signers = _parse_entries(signing, "signing key")
        verifiers = _parse_entries(verify_only, "verify-only key")
        if not signers:
            raise KeyConfigError("no signing key configured")
        ids = [kid for kid, _ in signers + verifiers]
        if len(set(ids)) != len(ids):
            raise KeyConfigError("duplicate key id")
        return cls(
            active_key_id=signers[0][0],
            signing_keys={kid: Ed25519PrivateKey.from_private_bytes(s) for kid, s in signers},
            verify_only_keys={kid: Ed25519PublicKey.from_public_bytes(p) for kid, p in verifiers},
        )

    def _public_key(self, key_id: str) -> Ed25519PublicKey | None:
        signer = self.signing_keys.get(key_id)
        if signer is not None:
            return signer.public_key()
        return self.verify_only_keys.get(key_id)

    def _sign_with(self, key_id: str, ref: bytes, generation: int) -> bytes:
        if not isinstance(ref, bytes) or not 1 <= len(ref) <= MAX_REF_SIZE:
            raise ValueError(f"ref must be 1..{MAX_REF_SIZE} bytes")
        if not 0 <= generation <= MAX_GENERATION:
            raise ValueError(f"generation must be 0..{MAX_GENERATION}")
        body = _body(key_id, ref, generation)
        return body + self.signing_keys[key_id].sign(SIGNING_CONTEXT + body)

    def sign(self, ref: bytes, generation: int) -> str:
        """Token for (ref, generation) under the active key; deterministic (Ed25519 is)."""
        return _b64url_encode(self._sign_with(self.active_key_id, ref, generation))

    def verify(self, token: str) -> TokenClaims:
        """Claims of a genuine token from a listed key; raises only ``TokenError`` subclasses.

        The caller must still compare ``generation`` with the invoice's current one.
        """
        return _verify(token, self._public_key)

    def check_confirmation_code(self, ref: bytes, generation: int, code: str) -> bool:
        """True when ``code`` is the one printed for (ref, generation) under any signing key.

        Re-signing is possible because Ed25519 signatures are deterministic; codes printed under a
        key that is now verify-only cannot be checked (keep such a key in the signing list, not
        first, until its slips are out of use). The caller rate-limits attempts.
        """
        typed = normalize_confirmation_code(code)
        matched = False
        for key_id in self.signing_keys:
            raw = self._sign_with(key_id, ref, generation)
            expected = _code_from_signature(raw[-SIGNATURE_SIZE:])
            # Constant time, and no early exit, so timing reveals nothing about which key matched.
            matched |= hmac.compare_digest(expected.encode(), typed.encode())
        return matched

    def jwks(self) -> dict[str, Any]:
        """Every key that verifies (signing and verify-only) as an RFC 8037 JWK Set."""
        publics = {kid: k.public_key() for kid, k in self.signing_keys.items()}
        publics.update(self.verify_only_keys)
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": _b64url_encode(pub.public_bytes_raw()),
                    "kid": kid,
                    "use": "sig",
                    "alg": "EdDSA",
                }
                for kid, pub in publics.items()
            ]
        }


def _jwk_public_key(jwk: Mapping[str, Any]) -> Ed25519PublicKey:
    x = jwk.get("x")
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not isinstance(x, str):
        raise KeyConfigError("JWK is not an Ed25519 OKP key")
    try:
        return Ed25519PublicKey.from_public_bytes(_decode_key_material(x, "JWK x"))
    except ValueError as exc:
        raise KeyConfigError("JWK x is not an Ed25519 public key") from exc


def verify_with_jwks(token: str, jwks: Mapping[str, Any]) -> TokenClaims:
    """Verify with published keys only (no private key): what an offline verifier does.

    Keys whose ``use`` is not ``sig`` (when present) or whose ``alg`` is not ``EdDSA`` (when
    present) are ignored. A malformed JWK matching the token's key id raises ``KeyConfigError``.
    """

    def lookup(key_id: str) -> Ed25519PublicKey | None:
        keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(keys, list):
            raise KeyConfigError("JWKS has no 'keys' list")
        for jwk in keys:
            if (
                isinstance(jwk, Mapping)
                and jwk.get("kid") == key_id
                and jwk.get("use", "sig") == "sig"
                and jwk.get("alg", "EdDSA") == "EdDSA"
            ):
                return _jwk_public_key(jwk)
        return None

    return _verify(token, lookup)


def _code_from_signature(signature: bytes) -> str:
    digest = hashlib.sha256(_CONFIRMATION_CONTEXT + signature).digest()
    bits = int.from_bytes(digest[:4], "big") >> (32 - 5 * CONFIRMATION_LENGTH)
    return "".join(
        CONFIRMATION_ALPHABET[(bits >> (5 * i)) & 31] for i in reversed(range(CONFIRMATION_LENGTH))
    )


def confirmation_code(token_or_claims: str | TokenClaims) -> str:
    """6-character code printed beside the QR with the notice number, for manual entry.

    Derived from the token's Ed25519 signature (hashed with a context string), so nobody can
    compute it without the signing key, and it changes when the generation is bumped. A token
    string is parsed but **not** verified here: pass claims from ``verify`` or a token you just
    signed.

    Brute-force margin: 32^6 = 2^30 ≈ 1.07e9 codes. Someone who knows a notice number and guesses
    at random needs ~5.4e8 tries on average; with a limit of, say, 10 wrong tries per notice
    number per day, one notice falls with probability ~9e-9 per day, and guessing across many
    notice numbers needs ~1e9 attempts per hit, so the caller must also rate-limit per client.
    """
    if isinstance(token_or_claims, TokenClaims):
        signature = token_or_claims.signature
    else:
        raw = _b64url_decode_strict(token_or_claims)
        if len(raw) < 1 + SIGNATURE_SIZE:
            raise MalformedTokenError("token is truncated")
        signature = raw[-SIGNATURE_SIZE:]
    return _code_from_signature(signature)


def normalize_confirmation_code(text: str) -> str:
    """What a resident typed, as comparable to ``confirmation_code``: upper case, no separators.

    Full-width characters (typed with a Japanese IME) are folded to ASCII.
    """
    folded = unicodedata.normalize("NFKC", text).upper()
    return "".join(ch for ch in folded if ch not in " -\u30fc\t")
