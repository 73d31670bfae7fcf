"""From the token in ``/p/{token}`` to the invoice it names, or a refusal.

The token is the only key to an invoice on the resident routes: nothing here looks an invoice up
by a number a person could guess. Refusal codes (stable; every one is answered 404 with no
invoice data):

    token.malformed / token.unsupported_version / token.unknown_key / token.bad_signature
                                from ``KeyRing.verify``: truncated, altered, forged, removed key
    token.unknown_invoice       a genuine signature naming no invoice here
    token.revoked               genuine, but staff issued a newer code (generation bumped)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.payments.schema import attempts
from invoices.model import Invoice
from invoices.records import to_invoice
from invoices.schema import invoices
from invoices.tokens import KeyRing, TokenClaims, TokenError

VERIFIED_CACHE_SIZE: Final = 4096
PUBLIC_ID_BYTES: Final = 12  # invoices.public_id: 24 lower-case hex characters

# Built once: a statement built per request spends longer on SQLAlchemy's cache key than SQLite
# spends on the indexed read (the query of ``invoices.queries.get_invoice_by_public_id``, plus
# whether any payment attempt exists, so a never-attempted invoice needs no second query).
_BY_PUBLIC_ID: Final = sa.select(
    invoices, sa.exists().where(attempts.c.invoice_id == invoices.c.id).label("has_attempts")
).where(invoices.c.public_id == sa.bindparam("public_id"))


class VerifiedTokens:
    """A bounded LRU of tokens that verified under one key ring, and their claims.

    Invariant: ``verify`` returns exactly what ``keyring.verify`` would. Ed25519 verification is
    deterministic for a given token and key ring, so only successes are kept (a flood of forged
    tokens cannot evict genuine ones, and every forgery is checked in full). A different key ring
    object (keys rotated or retired) never sees entries verified under another one.
    """

    def __init__(self, size: int = VERIFIED_CACHE_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[KeyRing, TokenClaims]] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, keyring: KeyRing, token: str) -> TokenClaims:
        with self._lock:
            entry = self._entries.get(token)
            if entry is not None and entry[0] is keyring:
                self._entries.move_to_end(token)
                return entry[1]
        claims = keyring.verify(token)  # raises TokenError: nothing cached
        with self._lock:
            self._entries[token] = (keyring, claims)
            self._entries.move_to_end(token)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return claims


VERIFIED: Final = VerifiedTokens()


class TokenRefused(Exception):
    """``code`` names the reason (for logs and tests); ``message_key`` the resident's text."""

    def __init__(self, code: str, message_key: str) -> None:
        super().__init__(code)
        self.code = code
        self.message_key = message_key


def invoice_for_token(conn: Connection, keyring: KeyRing, token: str) -> Invoice:
    """The invoice a genuine, current token names.

    Invariant: returns only for a token signed by a listed key whose generation is the
    invoice's current one.
    """
    return token_invoice(conn, keyring, token)[0]


def token_invoice(conn: Connection, keyring: KeyRing, token: str) -> tuple[Invoice, bool]:
    """``invoice_for_token``, and whether any payment attempt for it exists in ``conn``'s snapshot.

    Invariant: the same refusals as ``invoice_for_token``; the flag is read in the same statement
    as the invoice, so it is consistent with it.
    """
    try:
        claims = VERIFIED.verify(keyring, token)
    except TokenError as refused:
        raise TokenRefused(refused.code, "refused.invalid") from None
    row = None
    if len(claims.ref) == PUBLIC_ID_BYTES:
        row = conn.execute(_BY_PUBLIC_ID, {"public_id": claims.ref.hex()}).first()
    if row is None:
        raise TokenRefused("token.unknown_invoice", "refused.invalid")
    invoice = to_invoice(row)
    if claims.generation != invoice.token_generation:
        # A genuine token: saying "revoked" tells its holder nothing they could not know.
        raise TokenRefused("token.revoked", "refused.revoked")
    return invoice, bool(row.has_attempts)
