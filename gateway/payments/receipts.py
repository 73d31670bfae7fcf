"""Receipt numbers and verification codes (支払完了証明).

The verification code is an HMAC-SHA256, under a receipt key, over every field the receipt
states (number, kind, notice number, JST payment time, amounts, provider reference), cut to 80
bits and written as 16 Crockford base32 characters in groups of four (``7KQ2-M9XD-4TPA-B3WE``).
Anyone holding the receipt and its code can have it checked at ``GET /receipts/{number}?code=``;
changing any field, or guessing a code, fails (2⁻⁸⁰).

Keys: ``NOFU_RECEIPT_KEYS`` = ``kid:<base64url 32 bytes>,…`` (the first signs, all verify). When it
is empty, one key per PII key is derived with HKDF-SHA256 (``kid`` = ``p-<pii kid>``), so a
development set-up needs nothing more and rotating PII keys keeps old receipts verifiable as long
as the old PII key is kept (it must be, to read old personal data).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ledger.clock import JST, to_utc

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_KID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_NUMBER = re.compile(r"R[0-9]{8}-[0-9A-HJKMNP-TV-Z]{8}")


class ReceiptKeyError(ValueError):
    """A malformed receipt key configuration."""


def _crockford(data: bytes, length: int) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    for _ in range(length):
        chars.append(CROCKFORD[number & 31])
        number >>= 5
    return "".join(reversed(chars))


def normalize_code(text: str) -> str:
    """A typed code as its 16 canonical characters: case, spaces, hyphens and the look-alikes
    O→0, I/L→1 forgiven."""
    if not isinstance(text, str):
        return ""
    cleaned = text.strip().upper().replace("-", "").replace(" ", "").replace("O", "0")
    return cleaned.replace("I", "1").replace("L", "1")


def format_code(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def new_receipt_number(paid_at: datetime) -> str:
    """``R`` + JST date of payment + ``-`` + 8 random Crockford characters (40 bits)."""
    day = to_utc(paid_at).astimezone(JST).strftime("%Y%m%d")
    return f"R{day}-{_crockford(secrets.token_bytes(5), 8)}"


def valid_receipt_number(number: object) -> bool:
    return isinstance(number, str) and _NUMBER.fullmatch(number) is not None


@dataclass(frozen=True)
class ReceiptFields:
    """Everything a verification code covers."""

    receipt_number: str
    kind: str
    notice_number: str
    paid_at: datetime
    amount: int
    principal: int
    late_fee: int
    provider_reference: str

    def canonical(self) -> bytes:
        return json.dumps(
            [
                "nofu-receipt-v1",
                self.receipt_number,
                self.kind,
                self.notice_number,
                to_utc(self.paid_at).astimezone(JST).isoformat(timespec="seconds"),
                self.amount,
                self.principal,
                self.late_fee,
                self.provider_reference,
            ],
            ensure_ascii=True,
            separators=(",", ":"),
        ).encode("ascii")


@dataclass(frozen=True)
class ReceiptKeys:
    """HMAC keys by id; ``active`` signs new receipts."""

    active: str
    keys: dict[str, bytes] = field(repr=False)

    @classmethod
    def from_config(cls, config: str) -> ReceiptKeys:
        entries: dict[str, bytes] = {}
        first = None
        for part in (p.strip() for p in config.split(",") if p.strip()):
            kid, sep, material = part.partition(":")
            if not sep or not _KID.fullmatch(kid):
                raise ReceiptKeyError("each receipt key is kid:<base64url 32 bytes> (kid: 1..32 of A-Z a-z 0-9 _ -)")
            try:
                raw = base64.urlsafe_b64decode(material + "=" * (-len(material) % 4))
            except (binascii.Error, ValueError):
                raise ReceiptKeyError(f"receipt key {kid!r} is not base64url") from None
            if len(raw) != 32:
                raise ReceiptKeyError(f"receipt key {kid!r} must be 32 bytes")
            if kid in entries:
                raise ReceiptKeyError(f"receipt key id {kid!r} appears twice")
            entries[kid] = raw
            first = first or kid
        if first is None:
            raise ReceiptKeyError("no receipt key given")
        return cls(first, entries)

    @classmethod
    def derived(cls, pii_config: str) -> ReceiptKeys:
        """One key per PII key (``kid:<b64>`` entries), through HKDF-SHA256."""
        entries: dict[str, bytes] = {}
        first = None
        for part in (p.strip() for p in pii_config.split(",") if p.strip()):
            kid, _, material = part.partition(":")
            hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"nofu receipts", info=b"receipt-hmac-v1")
            entries[f"p-{kid}"] = hkdf.derive(material.encode("ascii"))
            first = first or f"p-{kid}"
        if first is None:
            raise ReceiptKeyError("no PII key to derive receipt keys from")
        return cls(first, entries)

    def code(self, fields: ReceiptFields, key_id: str | None = None) -> str:
        kid = key_id or self.active
        key = self.keys.get(kid)
        if key is None:
            raise ReceiptKeyError(f"receipt key {kid!r} is not configured")
        digest = hmac.new(key, fields.canonical(), hashlib.sha256).digest()
        return _crockford(digest[:10], 16)

    def verify(self, fields: ReceiptFields, key_id: str, code: str) -> bool:
        """True when ``code`` (any spelling ``normalize_code`` forgives) is this receipt's code."""
        if key_id not in self.keys:
            return False
        expected = self.code(fields, key_id)
        return hmac.compare_digest(expected.encode(), normalize_code(code).encode())
