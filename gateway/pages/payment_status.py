"""The payment side of an invoice as the resident pages show it, read from the payment service
inside the page's read transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from gateway.payments import Attempt, AttemptStatus, PaymentNotFound
from gateway.services import Services
from invoices.model import Invoice


@dataclass(frozen=True)
class PaymentStatus:
    """Attributes:
    live_attempt_id: the attempt in progress (not finished, not past its time), to join.
    live_until: when that attempt expires (then the page no longer shows it).
    paid_at: the provider's success time of the payment that settled the invoice.
    receipt_attempt_id: the attempt whose receipt proves it.
    last_failure: the latest attempt, when it failed (its message is shown once more).
    can_pay: a payment provider is configured.
    """

    live_attempt_id: str | None = None
    live_until: datetime | None = None
    paid_at: datetime | None = None
    receipt_attempt_id: str | None = None
    last_failure: Attempt | None = None
    can_pay: bool = False


def payment_status(services: Services, conn: Connection, invoice: Invoice, *, attempted: bool = True) -> PaymentStatus:
    """The payment side of ``invoice`` in ``conn``'s transaction.

    ``attempted=False`` says the caller read, in this same transaction, that no attempt exists
    for the invoice: then nothing is live, failed or settled, which is what the service would
    find, so it is not asked again.
    """
    payments = services.payments
    if not attempted:
        return PaymentStatus(can_pay=payments.provider is not None)
    found = payments.invoice_payments(conn, invoice.id)
    latest = found.latest
    return PaymentStatus(
        live_attempt_id=None if found.live_attempt is None else found.live_attempt.public_id,
        live_until=None if found.live_attempt is None else found.live_attempt.expires_at,
        paid_at=None if found.receipt is None else found.receipt.paid_at,
        receipt_attempt_id=None if found.receipt is None or found.settled is None else found.settled.public_id,
        last_failure=latest if latest is not None and latest.status is AttemptStatus.FAILED else None,
        can_pay=payments.provider is not None,
    )


def attempt_of_invoice(services: Services, invoice: Invoice, attempt_id: str) -> Attempt:
    """The attempt with this public id if it pays ``invoice``; ``PaymentNotFound`` otherwise
    (also for a malformed id), so one token never opens another invoice's attempt."""
    attempt = services.payments.get_attempt(attempt_id)  # a malformed id: PaymentNotFound too
    if attempt.invoice_public_id != invoice.public_id:
        raise PaymentNotFound("no such payment attempt")
    return attempt
