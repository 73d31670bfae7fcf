"""Building the payment service from the settings (called by ``gateway.services``)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine

from gateway.keys import with_dev_keys
from gateway.payments.receipts import ReceiptKeyError, ReceiptKeys
from gateway.payments.service import PaymentService
from gateway.providers import build_provider
from gateway.settings import Settings, SettingsError
from invoices.model import InvoiceContext


def receipt_keys(settings: Settings) -> ReceiptKeys:
    """``NOFU_RECEIPT_KEYS``, or keys derived from the PII keys (see ``receipts``)."""
    try:
        if settings.receipt_keys:
            return ReceiptKeys.from_config(settings.receipt_keys)
        return ReceiptKeys.derived(with_dev_keys(settings).pii_keys)
    except ReceiptKeyError as exc:
        raise SettingsError(f"NOFU_RECEIPT_KEYS: {exc}") from None


def build_payments(settings: Settings, engine: Engine, ctx: InvoiceContext) -> PaymentService:
    return PaymentService(
        engine,
        ctx,
        build_provider(settings),
        receipt_keys(settings),
        attempt_ttl=timedelta(minutes=settings.attempt_minutes),
    )
