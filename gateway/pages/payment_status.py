"""The payment side of an invoice as the resident pages show it.

Placeholder until the payment service (``gateway.payments``) lands: nothing is payable online
and no attempt or receipt exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from gateway.services import Services
from invoices.model import Invoice


@dataclass(frozen=True)
class PaymentStatus:
    """Attributes:
    live_attempt_id: an attempt that is neither finished nor expired, to join.
    paid_at: the provider's success time of the payment that settled the invoice.
    receipt_number: its receipt.
    can_pay: online payment is available for this invoice now.
    """

    live_attempt_id: str | None = None
    paid_at: datetime | None = None
    receipt_number: str | None = None
    can_pay: bool = False


def payment_status(services: Services, conn: Connection, invoice: Invoice) -> PaymentStatus:
    return PaymentStatus()
