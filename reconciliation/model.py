"""What a reconciliation works with: the provider's records as nofu stores them, bank lines,
breaks and their states, and the rules of a run (accounts, fee rate, tolerance windows).

Money is integer yen; amounts keep the provider's sign (a refund is negative). Dates are JST
business dates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from enum import StrEnum

from ledger.clock import JST, to_utc


class BreakCategory(StrEnum):
    """What kind of difference a break is (the treasury's vocabulary)."""

    MISSING_IN_LEDGER = "missing_in_ledger"  # the provider took money our books do not show
    MISSING_AT_PROVIDER = "missing_at_provider"  # our books show money the provider never took
    AMOUNT_MISMATCH = "amount_mismatch"  # both sides know it, with different amounts
    DUPLICATE = "duplicate"  # the provider reports the same payment or refund twice
    FEE_VARIANCE = "fee_variance"  # the provider's fee differs from the contracted rate
    PAYOUT_IN_TRANSIT = "payout_in_transit"  # paid out, not (yet) at the bank
    PAYOUT_FAILED = "payout_failed"  # the bank returned a payout; its money is back at the provider
    UNEXPLAINED_RESIDUAL = "unexplained_residual"  # money on the clearing account or bank nobody claims


CATEGORY_NAMES_JA = {
    BreakCategory.MISSING_IN_LEDGER: "帳簿未計上",
    BreakCategory.MISSING_AT_PROVIDER: "決済事業者側なし",
    BreakCategory.AMOUNT_MISMATCH: "金額不一致",
    BreakCategory.DUPLICATE: "重複",
    BreakCategory.FEE_VARIANCE: "手数料差異",
    BreakCategory.PAYOUT_IN_TRANSIT: "入金未着",
    BreakCategory.PAYOUT_FAILED: "入金失敗",
    BreakCategory.UNEXPLAINED_RESIDUAL: "原因不明差額",
}


class BreakStatus(StrEnum):
    """Where a break stands in the exceptions queue.

    ``open`` and ``escalated`` block the day's sign-off; ``resolved`` (by staff, with a reason),
    ``healed`` (the run fixed it through the webhook inbox) and ``cleared`` (a later run no longer
    finds it, e.g. the late bank line arrived) do not.
    """

    OPEN = "open"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    HEALED = "healed"
    CLEARED = "cleared"

    @property
    def blocks_signoff(self) -> bool:
        return self in (BreakStatus.OPEN, BreakStatus.ESCALATED)


OPEN_STATUSES = (BreakStatus.OPEN.value, BreakStatus.ESCALATED.value)
# Roundings the expected fee can be computed with, in Python and in SQL alike.
FEE_ROUNDINGS = (ROUND_HALF_UP, ROUND_DOWN, ROUND_UP)


@dataclass(frozen=True)
class ReconciliationConfig:
    """The rules of a run.

    Attributes:
        clearing_account: money held by the provider (決済代行預け金).
        bank_account: the designated bank account (指定金融機関預金).
        fee_account: provider fees (決済手数料).
        fee_rate: the contracted card fee as a fraction (Stripe Japan 3.6 %).
        fee_rounding: how ``amount × fee_rate`` becomes whole yen (the expected fee).
        bank_days_before, bank_days_after: a bank deposit matches a payout when its amount is
            equal and its value date lies in [arrival − before, arrival + after] (calendar days);
            the same date is preferred, then the nearest.
        cross_day_window: a provider record and a ledger item with the same key still match when
            their business dates are this many days apart (a payment booked on the next open
            day because its own day was closed; a refund settled after midnight).
        max_heals: at most this many missing payments are fed through the webhook inbox per run.
        bank_account_number: the designated account ("BBBB-SSS-NNNNNNN", e.g. "0597-123-0001234");
            a 全銀 statement of another account is refused. Empty: not checked.
        payout_markers: a deposit whose description contains one of these (any case) comes from
            the provider; one that matches no payout is an ``unexplained_residual``.
    """

    clearing_account: str = "1200"
    bank_account: str = "1300"
    fee_account: str = "5100"
    fee_rate: Decimal = Decimal("0.036")
    fee_rounding: str = ROUND_HALF_UP
    bank_days_before: int = 1
    bank_days_after: int = 3
    cross_day_window: int = 3
    max_heals: int = 500
    bank_account_number: str = ""
    payout_markers: tuple[str, ...] = ("STRIPE", "ｽﾄﾗｲﾌﾟ")

    def __post_init__(self) -> None:
        if self.fee_rounding not in FEE_ROUNDINGS:
            raise ValueError(f"fee_rounding must be one of {', '.join(FEE_ROUNDINGS)}")
        if not Decimal(0) <= self.fee_rate < Decimal(1):
            raise ValueError("fee_rate must be a fraction in [0, 1)")
        for name in ("bank_days_before", "bank_days_after", "cross_day_window", "max_heals"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def expected_fee(self, amount: int) -> int:
        """The fee the contract implies for a charge of ``amount`` yen (0 ≤ fee ≤ amount)."""
        if amount <= 0:
            return 0
        fee = int((Decimal(amount) * self.fee_rate).quantize(Decimal(1), rounding=self.fee_rounding))
        return min(max(fee, 0), amount)


@dataclass(frozen=True)
class ProviderTransaction:
    """One balance transaction of the provider (a charge, refund, fee, payout …).

    Attributes:
        id: ``txn_…``.
        type: ``charge``, ``refund``, ``payout``, ``payout_failure``, ``adjustment`` …
        amount, fee, net: gross, fee and net yen (``net = amount − fee``); refunds are negative.
        created: when it happened (aware).
        available_on: the date the money becomes available for payout.
        source: the object it comes from (``ch_…``, ``re_…``, ``po_…``).
        match_ref: the key our books know it by: the PaymentIntent (``pi_…``) of a charge, the
            refund (``re_…``) of a refund, else the source.
        payment_ref: the PaymentIntent a charge or refund belongs to.
        notice_number, attempt_ref: what nofu put in the payment's metadata.
        payout_id: the payout that swept it, when known.
    """

    id: str
    type: str
    amount: int
    fee: int
    net: int
    created: datetime
    available_on: date | None = None
    reporting_category: str | None = None
    source: str | None = None
    match_ref: str | None = None
    payment_ref: str | None = None
    notice_number: str | None = None
    attempt_ref: str | None = None
    payout_id: str | None = None
    currency: str = "jpy"

    @property
    def business_date(self) -> date:
        return to_utc(self.created).astimezone(JST).date()

    @property
    def hour(self) -> int:
        """The JST hour it happened in (0–23)."""
        return to_utc(self.created).astimezone(JST).hour


@dataclass(frozen=True)
class ProviderPayout:
    """A payout from the provider to the designated bank account.

    Attributes:
        status: ``pending``, ``in_transit``, ``paid``, ``failed`` (also after paid) or ``canceled``.
        arrival_date: when the provider expects it at the bank.
        balance_transaction: the payout's own (negative) balance transaction.
    """

    id: str
    amount: int
    status: str
    created: datetime
    arrival_date: date
    balance_transaction: str | None = None
    failure_code: str | None = None
    currency: str = "jpy"


@dataclass(frozen=True)
class BankLine:
    """One line of the designated account's statement.

    Attributes:
        value_date: 勘定日, the day the bank booked it.
        amount: yen, deposits positive, withdrawals negative.
        description: 振込依頼人名 / 摘要 as the bank printed it.
        reference: the bank's 照会番号, when the format has one.
        line_key: what makes the line unique within its account (re-importing it changes nothing).
        account: the account it belongs to ("bank-branch-number"; "" when the format does not say).
    """

    account: str
    value_date: date
    amount: int
    description: str
    line_key: str
    reference: str | None = None


@dataclass(frozen=True)
class BankStatement:
    """A parsed statement: its format (``csv`` or ``zengin``), lines and the file's SHA-256."""

    format: str
    lines: tuple[BankLine, ...]
    sha256: str

    @property
    def accounts(self) -> tuple[str, ...]:
        return tuple(sorted({line.account for line in self.lines}))


@dataclass(frozen=True)
class HealResult:
    """What the webhook inbox made of a payment fed to it: ``healed`` when the ledger now has it."""

    match_ref: str
    healed: bool
    note: str


@dataclass(frozen=True)
class Break:
    """One difference the reconciliation found, and where staff stand with it."""

    id: int
    business_date: date
    key: str
    category: BreakCategory
    status: BreakStatus
    amount: int
    provider_amount: int | None
    ledger_amount: int | None
    provider_txn_id: str | None
    match_ref: str | None
    ledger_entry_id: int | None
    payout_id: str | None
    bank_line_id: int | None
    tax_code: str | None
    notice_number: str | None
    detail: str
    detected: bool
    assignee: str | None
    resolution: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class BreakNote:
    """One action on a break: a comment, an assignment, a resolution …"""

    id: int
    break_id: int
    kind: str
    actor_id: str
    actor_name: str
    body: str
    created_at: datetime


@dataclass(frozen=True)
class RunOutcome:
    """What :func:`reconciliation.run.reconcile_day` did and found.

    ``report_sha256`` digests the findings (totals and breaks, not who acted on them), so two runs
    over the same data have the same digest.
    """

    business_date: date
    run_number: int
    summary: dict[str, object]
    report_sha256: str
    healed: tuple[HealResult, ...] = field(default=())
    pulled_transactions: int = 0
    pulled_payouts: int = 0
    posted_payouts: tuple[str, ...] = field(default=())
