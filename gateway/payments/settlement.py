"""Settlement: the one unit of work that records money a provider confirmed (収納).

In ONE transaction: the attempt is locked and moved to succeeded, the invoice is locked, the
money is booked, a receipt is written and the audit log says so — the caller's transaction,
which for a webhook event is the event's own (its outcome commits with the money). Where the
money goes:

- invoice open: principal up to what is still owed → ``record_payment_locked`` (Dr 1200 / Cr 1100:CODE,
  the late fee Cr 4300, in one entry); anything beyond (the invoice was amended downwards while
  the resident paid) → 過誤納金;
- invoice already paid (another channel, another attempt) or cancelled: the whole amount is
  過誤納金: Dr 1200 / Cr 2100 and an ``overpayments`` row for staff to refund.

The effective date is the provider's success time in JST (the payment date that counts), moved to
the first open business day if that day is already closed. Idempotent: an attempt that has
received its money is returned unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date, datetime, timedelta

from sqlalchemy.engine import Connection

from gateway.audit import Actor
from gateway.audit import record as audit
from gateway.payments import records
from gateway.payments.model import Attempt, OverpaymentReason, OverpaymentStatus
from gateway.payments.receipts import ReceiptFields, ReceiptKeys, new_receipt_number
from gateway.payments.schema import overpayments, receipts
from gateway.payments.state import Event, transition
from gateway.providers.model import ProviderPayment
from invoices.model import InvoiceContext, Status
from invoices.payments import lock_invoice, record_payment_locked
from invoices.records import OVERPAYMENTS_ACCOUNT
from ledger import EntryRequest, Line, business_date, closed_through, post
from ledger.db import execute

log = logging.getLogger("nofu.payments")

SYSTEM = Actor(id="system:payments", name="nofu payments")
CLEARING_ACCOUNT = "1200"


def posting_day(conn: Connection, moment: datetime) -> date:
    """The JST business day of ``moment``, or the first day after the last closed one."""
    day = business_date(moment)
    closed = closed_through(conn)
    if closed is not None and day <= closed:
        log.warning("posting for %s moved to %s: the day is closed", day, closed + timedelta(days=1))
        return closed + timedelta(days=1)
    return day


def payment_reference(attempt: Attempt) -> str:
    """The reference ``record_payment_locked`` dedupes on: the provider's payment id."""
    return f"stripe:{attempt.provider_payment_id}"


# Built once (see ledger/posting.py).
_INSERT_RECEIPT = receipts.insert()


def settle(
    conn: Connection,
    ctx: InvoiceContext,
    keys: ReceiptKeys,
    attempt_id: int,
    payment: ProviderPayment,
    *,
    now: datetime,
) -> Attempt:
    """Record the money of a succeeded ``payment`` for the attempt (see the module docstring).

    The caller has checked that ``payment`` is this attempt's intent, succeeded, for its amount.
    """
    return settle_locked(conn, ctx, keys, records.lock_attempt(conn, attempt_id), payment, now=now)


def settle_locked(
    conn: Connection,
    ctx: InvoiceContext,
    keys: ReceiptKeys,
    attempt: Attempt,
    payment: ProviderPayment,
    *,
    now: datetime,
) -> Attempt:
    """``settle`` for an attempt the caller has locked and read in this transaction
    (``records.lock_attempt``); returns it as it is after the commit.

    The ledger's chain head is locked by the posting and held until the commit, and every
    writer of the books queues on it; so everything that does not need the entry (receipt,
    audit) is written before the posting, and only the attempt's own row after it.
    """
    if attempt.amount_received:
        return attempt
    if payment.status != "succeeded" or payment.id != attempt.provider_payment_id:
        raise AssertionError("settle() needs the attempt's own succeeded PaymentIntent")
    invoice = lock_invoice(conn, attempt.invoice_public_id)
    paid_at = payment.succeeded_at or now
    day = posting_day(conn, paid_at)

    principal = late_fee = 0
    reason: OverpaymentReason | None = None
    if invoice.status is Status.OPEN:
        principal = min(attempt.principal, invoice.outstanding)
        late_fee = attempt.late_fee
        if attempt.amount - principal - late_fee:
            reason = OverpaymentReason.EXCESS
    elif invoice.status is Status.CANCELLED:
        reason = OverpaymentReason.INVOICE_CANCELLED
    else:
        reason = OverpaymentReason.ALREADY_PAID
    overpaid = attempt.amount - principal - late_fee

    kind = "payment" if principal else "overpayment"
    number = new_receipt_number(paid_at)
    fields = ReceiptFields(number, kind, attempt.notice_number, paid_at, attempt.amount, principal, late_fee, payment.id)
    keys.code(fields)  # fails here, not later, when the active key is unusable
    execute(
        conn,
        _INSERT_RECEIPT,
        {
            "receipt_number": number, "attempt_id": attempt.id, "invoice_id": invoice.id, "kind": kind,
            "paid_at": paid_at, "amount": attempt.amount, "principal": principal, "late_fee": late_fee,
            "provider_reference": payment.id, "key_id": keys.active, "created_at": now,
        },
    )  # fmt: skip
    audit(
        conn,
        SYSTEM,
        "payment.succeed",
        f"payment:{attempt.public_id}",
        {
            "notice_number": attempt.notice_number,
            "amount": attempt.amount,
            "principal": principal,
            "late_fee": late_fee,
            "overpaid": overpaid,
            "overpayment_reason": None if reason is None else reason.value,
            "provider_payment_id": payment.id,
            "receipt_number": number,
        },
        now=now,
    )
    entry_id: int | None = None
    if principal:
        entry_id = record_payment_locked(
            conn, ctx, invoice, principal, reference=payment_reference(attempt),
            actor=SYSTEM.id, late_fee=late_fee, effective_date=day,
        ).entry_id  # fmt: skip
    if overpaid:
        assert reason is not None
        posted = post(
            conn,
            EntryRequest(
                effective_date=day,
                description=f"過誤納金 ({reason.value}) ¥{overpaid:,} {attempt.notice_number}",
                source_ref=f"payment:{attempt.public_id}",
                idempotency_key=f"payment:{attempt.public_id}:overpayment",
                lines=(Line.debit(CLEARING_ACCOUNT, overpaid), Line.credit(OVERPAYMENTS_ACCOUNT, overpaid)),
            ),
            now=now,
        )
        conn.execute(
            overpayments.insert().values(
                attempt_id=attempt.id, invoice_id=invoice.id, reason=reason.value, amount=overpaid,
                refunded_amount=0, status=OverpaymentStatus.OPEN.value, ledger_entry_id=posted.id,
                created_at=now, updated_at=now,
            )  # fmt: skip
        )
        entry_id = entry_id or posted.id
        log.warning(
            "payment became 過誤納金",
            extra={"attempt": attempt.public_id, "reason": reason.value, "amount": overpaid},
        )

    recorded: dict[str, object] = {
        "amount_received": attempt.amount,
        "principal_applied": principal,
        "late_fee_applied": late_fee,
        "overpaid": overpaid,
        "succeeded_at": paid_at,
        "ledger_entry_id": entry_id,
    }
    status = attempt.status
    if status.active:
        status = transition(status, Event.SUCCEED, attempt=attempt.public_id)
    else:
        # Cannot happen with a well-behaved provider: an attempt becomes terminal only after its
        # intent was cancelled. The money is real, so it is recorded all the same.
        log.error("money arrived for a %s attempt; recorded, status kept", attempt.status.value,
                  extra={"attempt": attempt.public_id})  # fmt: skip
    records.write_attempt(conn, attempt, now=now, status=status.value, **recorded)
    settled = replace(
        attempt, **recorded, status=status, receipt_number=number, version=attempt.version + 1, updated_at=now
    )  # type: ignore[arg-type]
    log.info("payment settled", extra={"attempt": attempt.public_id, "status": status.value})
    return settled
