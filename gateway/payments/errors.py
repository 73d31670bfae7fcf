"""Errors of the payment service; each carries a stable ``code`` (``gateway/problems.py`` maps
them to HTTP statuses). Messages name no personal data.

    PaymentError                     payment.error
    ├── InvalidPaymentRequest        payment.<specific>          400
    │       payment.invalid_amount, payment.invalid_reason, payment.invalid_method,
    │       payment.invalid_filter, payment.invalid_cursor, payment.test_methods_disabled
    ├── PaymentNotFound              payment.not_found           404
    ├── ReceiptNotFound              payment.receipt_not_found   404 (also for a wrong code)
    ├── PaymentConflict              409
    │   ├── InvoiceNotPayable        payment.invoice_paid | payment.invoice_cancelled |
    │   │                            payment.code_revoked | payment.amount_too_small
    │   ├── IllegalTransition        payment.illegal_transition
    │   ├── AttemptNotActive         payment.attempt_not_active
    │   └── NotRefundable            payment.not_refundable      nothing received, or all refunded
    ├── RefundableMismatch           payment.refundable_mismatch 412: the amount the clerk saw is stale
    ├── ProviderMismatch             payment.provider_mismatch   502: the provider's object does
    │                                                            not match the attempt (nothing moved)
    ├── UnknownProviderPayment       payment.unknown_provider_payment  404
    └── ProviderNotConfigured        payment.provider_not_configured   503
Provider failures themselves are ``gateway.providers.ProviderError`` (``provider.*``).
"""

from __future__ import annotations

from typing import Any, ClassVar


class PaymentError(Exception):
    code: ClassVar[str] = "payment.error"

    def __init__(self, message: str, /, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = {k: v for k, v in detail.items() if v is not None}


class InvalidPaymentRequest(PaymentError):
    code = "payment.invalid"

    def __init__(self, code: str, message: str, /, **detail: Any) -> None:
        super().__init__(message, **detail)
        self.code = code  # type: ignore[misc]


class PaymentNotFound(PaymentError):
    code = "payment.not_found"


class ReceiptNotFound(PaymentError):
    code = "payment.receipt_not_found"


class PaymentConflict(PaymentError):
    code = "payment.conflict"


class InvoiceNotPayable(PaymentConflict):
    code = "payment.invoice_not_payable"

    def __init__(self, code: str, message: str, /, **detail: Any) -> None:
        super().__init__(message, **detail)
        self.code = code  # type: ignore[misc]


class IllegalTransition(PaymentConflict):
    code = "payment.illegal_transition"


class AttemptNotActive(PaymentConflict):
    code = "payment.attempt_not_active"


class NotRefundable(PaymentConflict):
    code = "payment.not_refundable"


class RefundableMismatch(PaymentError):
    code = "payment.refundable_mismatch"


class ProviderMismatch(PaymentError):
    code = "payment.provider_mismatch"


class UnknownProviderPayment(PaymentError):
    code = "payment.unknown_provider_payment"


class ProviderNotConfigured(PaymentError):
    code = "payment.provider_not_configured"
