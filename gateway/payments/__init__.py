"""Payments of invoices: attempts (one active per invoice), settlement, refunds, receipts.

What other parts call (all on ``services.payments``, a :class:`PaymentService`)::

    attempt = payments.start_or_join(invoice.public_id, generation=claims.generation)
    attempt = payments.confirm_with_test_method(attempt.public_id, "pm_card_visa", return_url=...)
    attempt = payments.refresh(attempt.public_id)                 # after a redirect
    attempt = payments.apply_provider_outcome(ProviderPayment.from_stripe(event.data.object))
    receipt = payments.get_receipt(number, code)                  # public verification
    payments.invoice_payments(conn, invoice.id)                   # for the resident page
    payments.refund(attempt_id, amount=…, expected_refundable=…, reason=…, actor=staff.actor)
    payments.expire_stale()                                       # the periodic sweep

Modules: ``state`` (the state machine), ``schema`` (tables), ``records`` (rows), ``settlement``
(the money-moving transaction), ``refunds``, ``receipts`` (numbers and verification codes),
``service``, ``sweeper``. Errors: ``errors`` (``payment.*``) and ``gateway.providers.errors``
(``provider.*``). Design notes: docs/payments.md.
"""

from __future__ import annotations

from gateway.payments.errors import (
    AttemptNotActive,
    IllegalTransition,
    InvalidPaymentRequest,
    InvoiceNotPayable,
    NotRefundable,
    PaymentConflict,
    PaymentError,
    PaymentNotFound,
    ProviderMismatch,
    ProviderNotConfigured,
    ReceiptNotFound,
    RefundableMismatch,
    UnknownProviderPayment,
)
from gateway.payments.model import (
    Attempt,
    InvoicePayments,
    Overpayment,
    OverpaymentReason,
    OverpaymentStatus,
    Receipt,
    Refund,
    RefundStatus,
)
from gateway.payments.receipts import ReceiptKeys, format_code, normalize_code
from gateway.payments.service import ATTEMPT_TTL, MIN_CHARGE, SANDBOX_METHODS, TEST_METHODS, PaymentService, SweepReport
from gateway.payments.state import AttemptStatus, Event, transition
from gateway.payments.sweeper import PaymentSweeper

__all__ = [
    "ATTEMPT_TTL",
    "MIN_CHARGE",
    "SANDBOX_METHODS",
    "TEST_METHODS",
    "Attempt",
    "AttemptNotActive",
    "AttemptStatus",
    "Event",
    "IllegalTransition",
    "InvalidPaymentRequest",
    "InvoiceNotPayable",
    "InvoicePayments",
    "NotRefundable",
    "Overpayment",
    "OverpaymentReason",
    "OverpaymentStatus",
    "PaymentConflict",
    "PaymentError",
    "PaymentNotFound",
    "PaymentService",
    "PaymentSweeper",
    "ProviderMismatch",
    "ProviderNotConfigured",
    "Receipt",
    "ReceiptKeys",
    "ReceiptNotFound",
    "Refund",
    "RefundStatus",
    "RefundableMismatch",
    "SweepReport",
    "UnknownProviderPayment",
    "format_code",
    "normalize_code",
    "transition",
]
