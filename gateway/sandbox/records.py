"""The sandbox's internal state: one mutable record per Stripe object.

Records hold only what the sandbox models; `shapes.py` renders them into Stripe's full
object shape. They are mutated only under the sandbox lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class CardDetails:
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    funding: str
    country: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """What confirming with a test payment method does.

    Attributes:
        kind: "succeed", "decline" (402 card error) or "redirect" (PayPay-style approval).
        code / decline_code / message / param: the card error Stripe returns on decline.
    """

    kind: str
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None
    param: str | None = None


@dataclass(slots=True)
class PaymentMethodRecord:
    id: str
    created: int
    seq: int
    type: str
    outcome: TestOutcome
    card: CardDetails | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class PaymentIntentRecord:
    id: str
    created: int
    seq: int
    amount: int
    currency: str
    client_secret: str
    status: str
    payment_method_types: list[str]
    automatic_payment_methods: dict[str, Any] | None
    capture_method: str
    metadata: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    payment_method: str | None = None
    return_url: str | None = None
    next_action: dict[str, Any] | None = None
    last_payment_error: dict[str, Any] | None = None
    latest_charge: str | None = None
    amount_received: int = 0
    canceled_at: int | None = None
    cancellation_reason: str | None = None
    receipt_email: str | None = None
    statement_descriptor: str | None = None
    statement_descriptor_suffix: str | None = None


@dataclass(slots=True)
class ChargeRecord:
    id: str
    created: int
    seq: int
    amount: int
    currency: str
    status: str
    payment_intent: str
    payment_method: str
    payment_method_type: str
    card: CardDetails | None
    outcome: dict[str, Any]
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    balance_transaction: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    amount_refunded: int = 0
    refunds: list[str] = field(default_factory=list)
    receipt_email: str | None = None
    statement_descriptor_suffix: str | None = None

    @property
    def paid(self) -> bool:
        return self.status == "succeeded"

    @property
    def refundable(self) -> int:
        return self.amount - self.amount_refunded if self.paid else 0


@dataclass(slots=True)
class RefundRecord:
    id: str
    created: int
    seq: int
    amount: int
    currency: str
    charge: str
    payment_intent: str
    payment_method_type: str
    status: str
    reason: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    balance_transaction: str | None = None


@dataclass(slots=True)
class BalanceTransactionRecord:
    """A movement of the account balance.

    Invariant: net == amount - fee. `payout` is the automatic payout that swept this
    transaction (or, for the payout's own transaction, the payout itself).
    """

    id: str
    created: int
    seq: int
    amount: int
    fee: int
    net: int
    type: str
    reporting_category: str
    source: str
    available_on: int
    currency: str = "jpy"
    description: str | None = None
    payout: str | None = None


@dataclass(slots=True)
class PayoutRecord:
    id: str
    created: int
    seq: int
    amount: int
    arrival_date: int
    status: str
    balance_transaction: str
    currency: str = "jpy"
    destination: str = "ba_nofuSandboxBankAccount00"
    failure_balance_transaction: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    reconciliation_status: str = "in_progress"
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class EventRecord:
    """An Event; `data_object` is the snapshot taken when the change happened."""

    id: str
    created: int
    seq: int
    type: str
    data_object: dict[str, Any]
    previous_attributes: dict[str, Any] | None
    request_id: str | None
    idempotency_key: str | None
    pending_webhooks: int = 0
    delivered: bool = False


Record = (
    PaymentMethodRecord
    | PaymentIntentRecord
    | ChargeRecord
    | RefundRecord
    | BalanceTransactionRecord
    | PayoutRecord
    | EventRecord
)
