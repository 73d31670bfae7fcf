"""Manual entry: find an invoice from the notice number and confirmation code printed on it.

Only both together find an invoice; every way of failing that could tell an attacker something
(no such number, wrong code) answers the same ``entry.no_match``. Guessing is bounded twice:
the route is rate-limited per client (``gateway.pages.limits``), and each notice number accepts
at most ``FAILURES_PER_NUMBER`` wrong codes per day from everyone together, after which even the
right code is refused for that number (``entry.locked``) until the day window passes. With 32^6
codes, 10 tries a day give a guesser about 1 chance in 10^8 per number per day. The cost is that
someone who knows a notice number can block its manual entry for a day; the QR still works.

Refusal codes (stable, shown in the page's ``<meta name="nofu-code">``):

    entry.missing_fields        a field is empty
    entry.invalid_notice_number not 13 digits, or the check digit does not match (says nothing
                                about whether such an invoice exists)
    entry.no_match              no invoice has this number with this code
    entry.locked                too many wrong codes for this number today
"""

from __future__ import annotations

from typing import Final

from litestar.stores.base import Store
from sqlalchemy.engine import Connection

from invoices.errors import InvoiceNotFound
from invoices.model import Invoice
from invoices.notice_number import NoticeNumberError, parse_notice_number
from invoices.queries import get_invoice
from invoices.tokens import KeyRing

FAILURES_PER_NUMBER: Final = 10
FAILURE_WINDOW_SECONDS: Final = 24 * 3600
STORE_NAME: Final = "manual_entry_failures"
# Checked against when the number is unknown, so both paths do the same signing work.
_DUMMY_REF: Final = bytes(12)


class EntryRefused(Exception):
    """The entry was refused; ``code`` is stable and ``message_key`` names the resident text."""

    def __init__(self, code: str, message_key: str) -> None:
        super().__init__(code)
        self.code = code
        self.message_key = message_key


def notice_digits_or_refuse(number: str) -> str:
    if not number.strip():
        raise EntryRefused("entry.missing_fields", "entry.missing")
    try:
        return parse_notice_number(number).digits
    except NoticeNumberError:
        raise EntryRefused("entry.invalid_notice_number", "entry.bad_number") from None


def find_by_codes(conn: Connection, keyring: KeyRing, digits: str, code: str) -> Invoice:
    """The invoice whose number is ``digits`` and whose current confirmation code is ``code``.

    Invariant: returns only when both match; a revoked code (older generation) never matches.
    """
    if not code.strip():
        raise EntryRefused("entry.missing_fields", "entry.missing")
    if len(code) > 64:
        raise EntryRefused("entry.no_match", "entry.no_match")
    try:
        invoice: Invoice | None = get_invoice(conn, digits)
    except InvoiceNotFound:
        invoice = None
    if invoice is None:
        keyring.check_confirmation_code(_DUMMY_REF, 0, code)
        raise EntryRefused("entry.no_match", "entry.no_match")
    if not keyring.check_confirmation_code(invoice.token_ref, invoice.token_generation, code):
        raise EntryRefused("entry.no_match", "entry.no_match")
    return invoice


class FailureCounter:
    """Wrong codes per notice number in a sliding day, in a Litestar store.

    The default store is in memory and per process: with several workers each counts on its
    own (configure a shared store such as Redis under ``STORE_NAME`` to count together).
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    async def locked(self, digits: str) -> bool:
        return await self._count(digits) >= FAILURES_PER_NUMBER

    async def record_failure(self, digits: str) -> None:
        count = await self._count(digits)
        await self.store.set(digits, str(count + 1), expires_in=FAILURE_WINDOW_SECONDS)

    async def _count(self, digits: str) -> int:
        raw = await self.store.get(digits)
        return int(raw) if raw else 0
