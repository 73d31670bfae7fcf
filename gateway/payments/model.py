"""Payment values as stored: attempts, refunds, overpayments (過誤納金), receipts. Immutable."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gateway.payments.state import ACTIVE, AttemptStatus
from gateway.providers.errors import message_for
from ledger.clock import JST


class RefundStatus(StrEnum):
    PENDING = "pending"  # reserved in our database; the provider has not confirmed it yet
    SUCCEEDED = "succeeded"  # the provider refunded it and the ledger shows it
    FAILED = "failed"  # the provider refused it; the reserved amount is refundable again


class OverpaymentStatus(StrEnum):
    OPEN = "open"
    REFUNDED = "refunded"


class OverpaymentReason(StrEnum):
    ALREADY_PAID = "already_paid"  # another channel or attempt had settled the invoice
    INVOICE_CANCELLED = "invoice_cancelled"  # the invoice was cancelled meanwhile
    EXCESS = "excess"  # more principal arrived than was still owed (amended downwards meanwhile)


@dataclass(frozen=True)
class Attempt:
    """One try at paying an invoice: one PaymentIntent at the provider.

    Attributes:
        public_id: ``pa_`` + 24 hex; what URLs, the provider's metadata and staff use.
        invoice_public_id, notice_number: the invoice it pays (``notice_number`` is the display
            form ``YYYY-SSSSSSSS-C``).
        principal, late_fee, amount: what is charged, fixed when the attempt started.
        provider_payment_id, client_secret: the PaymentIntent (None until it is created).
        next_action_url: where to send the browser when the provider requires an action.
        failure_code: why it failed (``card_declined``, ``insufficient_funds`` …).
        amount_received: 0, or ``amount`` once the provider confirmed the money.
        principal_applied, late_fee_applied, overpaid: where the money went.
        refunded: the sum of refunds that succeeded; ``refund_pending`` those still in flight.
        receipt_number: set once the money is recorded.
    """

    id: int
    public_id: str
    invoice_id: int
    invoice_public_id: str
    notice_number: str
    principal: int
    late_fee: int
    amount: int
    currency: str
    status: AttemptStatus
    provider: str
    provider_payment_id: str | None
    client_secret: str | None = field(repr=False)
    idempotency_key: str = field(repr=False)
    next_action_url: str | None
    failure_code: str | None
    failure_message: str | None
    amount_received: int
    principal_applied: int
    late_fee_applied: int
    overpaid: int
    ledger_entry_id: int | None
    created_at: datetime
    expires_at: datetime
    updated_at: datetime
    succeeded_at: datetime | None
    version: int
    refunded: int = 0
    refund_pending: int = 0
    receipt_number: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def refundable(self) -> int:
        """What may still be refunded: received minus refunds succeeded or in flight."""
        return self.amount_received - self.refunded - self.refund_pending

    @property
    def succeeded_at_jst(self) -> datetime | None:
        return None if self.succeeded_at is None else self.succeeded_at.astimezone(JST)

    def failure_text(self, lang: str = "ja") -> str | None:
        """What to tell the resident about a failure, in ``ja`` or ``en``."""
        return None if self.failure_code is None else message_for(self.failure_code, lang)


@dataclass(frozen=True)
class Refund:
    """Money paid back on an attempt (還付). ``overpayment_part`` + ``principal_part`` +
    ``late_fee_part`` = ``amount``."""

    id: int
    public_id: str
    attempt_id: int
    attempt_public_id: str
    amount: int
    overpayment_part: int
    principal_part: int
    late_fee_part: int
    status: RefundStatus
    provider_refund_id: str | None
    idempotency_key: str = field(repr=False)
    actor_id: str
    actor_name: str
    reason: str
    ledger_entry_id: int | None
    invoice_entry_id: int | None
    failure_code: str | None
    failure_message: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    version: int


@dataclass(frozen=True)
class Overpayment:
    """過誤納金 received through an attempt, for staff to refund (還付)."""

    id: int
    attempt_id: int
    attempt_public_id: str
    invoice_id: int
    notice_number: str
    reason: OverpaymentReason
    amount: int
    refunded_amount: int
    status: OverpaymentStatus
    ledger_entry_id: int
    created_at: datetime
    updated_at: datetime

    @property
    def open_amount(self) -> int:
        return self.amount - self.refunded_amount


@dataclass(frozen=True)
class Receipt:
    """支払完了証明: proof that the provider confirmed a payment.

    Attributes:
        receipt_number: ``R``YYYYMMDD``-``XXXXXXXX`` (JST date of payment, random part).
        kind: ``payment`` (settled the invoice) or ``overpayment`` (received, to be refunded).
        paid_at: the provider's success time (UTC; ``paid_at_jst`` for display).
        amount: what was received; principal / late_fee: what it settled.
        provider_reference: the provider's payment id (``pi_…``).
        verification_code: what the resident shows to prove the receipt is genuine.
    """

    receipt_number: str
    kind: str
    attempt_public_id: str
    invoice_public_id: str
    notice_number: str
    tax_code: str
    fiscal_year: int
    installment: int | None
    paid_at: datetime
    amount: int
    principal: int
    late_fee: int
    provider_reference: str
    key_id: str
    verification_code: str
    created_at: datetime

    @property
    def paid_at_jst(self) -> datetime:
        return self.paid_at.astimezone(JST)


@dataclass(frozen=True)
class InvoicePayments:
    """What the resident pages need about an invoice's payments.

    Attributes:
        live_attempt: the active attempt to join, if any.
        latest: the most recent attempt (to show a decline message), if any.
        settled: the attempt whose money settled the invoice, if any.
        receipt: that attempt's receipt.
    """

    live_attempt: Attempt | None
    latest: Attempt | None
    settled: Attempt | None
    receipt: Receipt | None
