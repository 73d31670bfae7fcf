"""Invoice values: the request to issue one, the issued invoice, its payer, and the context the
service needs. All immutable; personal data never shows in a repr.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from invoices.catalog import Catalog
from invoices.late_fee import RateTable
from invoices.notice_number import NoticeNumber, make_notice_number
from invoices.pii import PiiCipher
from invoices.tokens import KeyRing, TokenClaims, confirmation_code
from ledger.clock import today_jst


class Status(StrEnum):
    """open: principal outstanding (amount_paid < amount); paid: exactly settled;
    overpaid: more received than owed (the excess is 過誤納金); cancelled: no longer owed.

    There is no 'partially paid': residents pay the whole amount due. An invoice can still be
    open with something paid when it is amended upwards after payment.
    """

    OPEN = "open"
    PAID = "paid"
    OVERPAID = "overpaid"
    CANCELLED = "cancelled"


def status_for(amount: int, amount_paid: int) -> Status:
    """The status of a live (not cancelled) invoice, from its money."""
    if amount_paid < amount:
        return Status.OPEN
    if amount_paid == amount:
        return Status.PAID
    return Status.OVERPAID


@dataclass(frozen=True)
class InvoiceContext:
    """What the service needs besides a connection. Build once at start-up.

    Attributes:
        catalog: the billable taxes and fees.
        pii: encrypts payer data at rest.
        rates: the 延滞金 rate table.
        keyring: signs payment tokens; None where no token is needed.
        today: the current JST business date (replace in tests).
    """

    catalog: Catalog
    pii: PiiCipher = field(repr=False)
    rates: RateTable = field(repr=False)
    keyring: KeyRing | None = field(default=None, repr=False)
    today: Callable[[], date] = today_jst


@dataclass(frozen=True)
class Payer:
    """Decrypted payer data. Its repr shows nothing personal."""

    name: str
    address: str | None
    contact: str | None

    def __repr__(self) -> str:
        return "Payer(***)"

    __str__ = __repr__


@dataclass(frozen=True)
class IssueRequest:
    """One invoice to issue (調定).

    Attributes:
        tax_code: a catalog code.
        fiscal_year: 年度, 2000..2099.
        due_date: 納期限; not before ``issue_date``.
        amount: principal in yen, 1..99,999,999.
        payer_ref: 宛名番号, 1..32 of ``[0-9A-Za-z-]``.
        payer_name, payer_address, payer_contact: personal data, encrypted at rest.
        installment: 期別; required (and in the schedule) for codes with a fixed schedule,
            otherwise optional.
        issue_date: date on the notice; None means the business day it is recorded.
        notice_number: when the tax system assigns it (any accepted spelling); None to allocate.
        external_ref: the tax system's own id for the row: unique, the re-import key.
    """

    tax_code: str
    fiscal_year: int
    due_date: date
    amount: int
    payer_ref: str
    payer_name: str = field(repr=False)
    payer_address: str | None = field(default=None, repr=False)
    payer_contact: str | None = field(default=None, repr=False)
    installment: int | None = None
    issue_date: date | None = None
    notice_number: str | None = None
    external_ref: str | None = None

    def payer(self) -> Payer:
        return Payer(self.payer_name, self.payer_address, self.payer_contact)


def issue_digest(request: IssueRequest, notice_digits: str | None) -> str:
    """SHA-256 over the request's fields that are not personal data, as given (a notice number
    or issue date left to the system counts as absent, so a replay on another day still matches).

    Personal data is compared by decrypting the stored row instead: a plain hash of a name is
    guessable, and there is no separate keyed-hash secret.
    """
    canonical = (
        "v1",
        request.external_ref or "",
        notice_digits or "",
        request.tax_code,
        str(request.fiscal_year),
        "" if request.installment is None else str(request.installment),
        request.issue_date.isoformat() if request.issue_date else "",
        request.due_date.isoformat(),
        str(request.amount),
        request.payer_ref,
    )
    # U+001F cannot occur in any validated field, so the joined text is unambiguous.
    return hashlib.sha256("\x1f".join(canonical).encode()).hexdigest()


def pii_aad(public_id: str, field_name: str) -> bytes:
    """Associated data binding a blob to one invoice and one field."""
    return f"invoice:{public_id}:{field_name}".encode("ascii")


@dataclass(frozen=True)
class Invoice:
    """An issued invoice as stored. Personal data stays encrypted until :meth:`payer` is called.

    Attributes:
        notice_number: 13 digits (see ``display_number`` for ``YYYY-SSSSSSSS-C``).
        public_id: 24 hex characters (12 random bytes): what payment tokens name.
        amount: principal now owed by 調定 (0 once cancelled).
        amount_paid: principal received.
        token_generation: printed payment codes of a lower generation are revoked.
        version: grows by one with every change; pass it back as ``expected_version``.
        issue_entry_id: the ledger entry that recognised the receivable.
    """

    id: int
    public_id: str
    notice_number: str
    fiscal_year: int
    sequence: int
    external_ref: str | None
    payer_ref: str
    tax_code: str
    installment: int | None
    issue_date: date
    due_date: date
    amount: int
    amount_paid: int
    status: Status
    token_generation: int
    version: int
    issue_entry_id: int
    import_id: int | None
    pii_key_id: str
    created_at: datetime
    updated_at: datetime
    payer_name_blob: str = field(repr=False)
    payer_address_blob: str | None = field(repr=False)
    payer_contact_blob: str | None = field(repr=False)

    @property
    def display_number(self) -> str:
        return make_notice_number(self.fiscal_year, self.sequence)

    @property
    def parsed_number(self) -> NoticeNumber:
        return NoticeNumber(self.fiscal_year, self.sequence, int(self.notice_number[-1]))

    @property
    def outstanding(self) -> int:
        """Principal still owed (0 unless open)."""
        return self.amount - self.amount_paid if self.status is Status.OPEN else 0

    @property
    def overpaid_amount(self) -> int:
        """Principal received beyond what is owed (過誤納金), until refunded or applied."""
        return self.amount_paid - self.amount if self.status is Status.OVERPAID else 0

    @property
    def token_ref(self) -> bytes:
        return bytes.fromhex(self.public_id)

    def payer(self, cipher: PiiCipher) -> Payer:
        """Decrypt the payer data (only where it is to be shown)."""
        return Payer(
            name=cipher.decrypt(self.payer_name_blob, pii_aad(self.public_id, "payer_name")),
            address=None
            if self.payer_address_blob is None
            else cipher.decrypt(self.payer_address_blob, pii_aad(self.public_id, "payer_address")),
            contact=None
            if self.payer_contact_blob is None
            else cipher.decrypt(self.payer_contact_blob, pii_aad(self.public_id, "payer_contact")),
        )


@dataclass(frozen=True)
class PaymentCode:
    """What is printed for one invoice: the signed token (in the QR's URL) and the manual-entry
    pair (notice number + confirmation code)."""

    notice_number: str
    token: str
    confirmation_code: str
    generation: int


def payment_code(keyring: KeyRing, public_id: str, notice_number: str, generation: int) -> PaymentCode:
    """The current payment code of an invoice; deterministic (Ed25519 signatures are)."""
    ref = bytes.fromhex(public_id)
    token = keyring.sign(ref, generation)
    # The code derives from the signature: the token's last 64 bytes (no need to re-parse it).
    signature = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))[-64:]
    claims = TokenClaims(key_id=keyring.active_key_id, ref=ref, generation=generation, signature=signature)
    return PaymentCode(
        notice_number=notice_number,
        token=token,
        confirmation_code=confirmation_code(claims),
        generation=generation,
    )


def invoice_payment_code(keyring: KeyRing, invoice: Invoice) -> PaymentCode:
    return payment_code(keyring, invoice.public_id, invoice.display_number, invoice.token_generation)
