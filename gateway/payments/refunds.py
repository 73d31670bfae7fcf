"""Refunds (還付) by treasury staff: reserve, ask the provider, book.

Order of work, which is what makes two clerks unable to refund twice:
1. ``reserve`` (one transaction): lock the attempt, compute what is still refundable (received
   minus refunds succeeded or pending), compare it with the amount the clerk saw
   (compare-and-set: a stale value → ``RefundableMismatch``, HTTP 412), allocate the amount,
   insert a ``pending`` refund with its own idempotency key, audit ``refund.request``. The
   second clerk, serialised behind the lock, sees the smaller refundable amount and gets 412.
2. the provider call, outside any transaction, with the refund's idempotency key (safe to repeat:
   ``resume`` does so for refunds left pending by a network failure).
3. ``complete`` (one transaction) books it, or ``fail`` releases the reserved amount.

Allocation of an amount, fixed at reservation: first the attempt's 過誤納金 (Dr 2100 / Cr 1200,
the overpayments row counts it refunded), then principal (``record_refund``: the receivable is
re-opened, Dr 1100:CODE / Cr 1200, and the invoice is open again), then the late fee (Dr 4300 /
Cr 1200). Card processing fees are not refunded by the provider and stay an expense.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Connection

from gateway.audit import Actor
from gateway.audit import record as audit
from gateway.payments import records
from gateway.payments.errors import InvalidPaymentRequest, NotRefundable, RefundableMismatch
from gateway.payments.model import Attempt, OverpaymentStatus, Refund, RefundStatus
from gateway.payments.schema import overpayments, refunds
from gateway.payments.settlement import CLEARING_ACCOUNT, posting_day
from invoices.model import InvoiceContext
from invoices.payments import record_refund
from invoices.records import OVERPAYMENTS_ACCOUNT
from ledger import EntryRequest, Line, post

log = logging.getLogger("nofu.payments")

MAX_REASON = 500


def check_request(amount: object, expected_refundable: object, reason: object) -> tuple[int, int, str]:
    """Refuse a malformed refund request before anything is read."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidPaymentRequest("payment.invalid_amount", "amount must be a whole number of yen", field="amount")
    if amount < 1:
        raise InvalidPaymentRequest("payment.invalid_amount", "amount must be at least ¥1", field="amount")
    if isinstance(expected_refundable, bool) or not isinstance(expected_refundable, int) or expected_refundable < 0:
        raise InvalidPaymentRequest(
            "payment.invalid_amount",
            "expected_refundable must be the refundable amount (yen) you were shown",
            field="expected_refundable",
        )
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidPaymentRequest("payment.invalid_reason", "a reason is required", field="reason")
    if len(reason.strip()) > MAX_REASON:
        raise InvalidPaymentRequest("payment.invalid_reason", f"reason is longer than {MAX_REASON} characters", field="reason")
    return amount, expected_refundable, reason.strip()


def reserve(
    conn: Connection,
    attempt_public_id: str,
    *,
    amount: int,
    expected_refundable: int,
    reason: str,
    actor: Actor,
    now: datetime,
) -> Refund:
    """Step 1 (see the module docstring). Invariant: Σ non-failed refunds ≤ amount received."""
    found = records.load_attempt(conn, public_id=attempt_public_id)
    attempt = records.lock_attempt(conn, found.id)
    totals = records.refund_totals(conn, attempt.id)
    refundable = attempt.amount_received - int(totals.amount)
    if expected_refundable != refundable:
        raise RefundableMismatch(
            f"the refundable amount is ¥{refundable:,}, not ¥{expected_refundable:,}: "
            "someone refunded meanwhile; reload and check",
            refundable=refundable,
            expected_refundable=expected_refundable,
        )
    if refundable == 0:
        raise NotRefundable(
            "nothing to refund: no money was received" if not attempt.amount_received else "already refunded in full",
            refundable=0,
        )
    if amount > refundable:
        raise InvalidPaymentRequest(
            "payment.invalid_amount", f"amount is above the refundable ¥{refundable:,}", field="amount", refundable=refundable
        )
    over = min(amount, attempt.overpaid - int(totals.overpayment))
    principal = min(amount - over, attempt.principal_applied - int(totals.principal))
    late_fee = amount - over - principal
    assert 0 <= late_fee <= attempt.late_fee_applied - int(totals.late_fee)
    public_id = records.new_public_id("rf")
    result = conn.execute(
        refunds.insert().values(
            public_id=public_id, attempt_id=attempt.id, amount=amount, overpayment_part=over,
            principal_part=principal, late_fee_part=late_fee, status=RefundStatus.PENDING.value,
            idempotency_key=f"nofu-{public_id}", actor_id=actor.id, actor_name=actor.name, reason=reason,
            created_at=now, updated_at=now, version=1,
        )  # fmt: skip
    )
    refund = records.load_refund(conn, int(result.inserted_primary_key[0]))  # type: ignore[index]
    audit(
        conn,
        actor,
        "refund.request",
        f"payment:{attempt.public_id}",
        {"refund": public_id, "amount": amount, "refundable_before": refundable, "reason": reason,
         "overpayment_part": over, "principal_part": principal, "late_fee_part": late_fee},  # fmt: skip
        now=now,
    )
    return refund


def actor_of(refund: Refund) -> Actor:
    return Actor(id=refund.actor_id, name=refund.actor_name)


def complete(
    conn: Connection,
    ctx: InvoiceContext,
    refund_id: int,
    provider_refund_id: str,
    *,
    now: datetime,
    actor: Actor | None = None,
) -> Refund:
    """Step 3: book a refund the provider confirmed; idempotent. The audit row names ``actor``
    (the clerk's request, when it finishes at once) or the clerk who requested it."""
    refund = records.lock_refund(conn, refund_id)
    if refund.status is RefundStatus.SUCCEEDED:
        return refund
    if refund.status is RefundStatus.FAILED:
        # The provider refunded after we had released the amount: book it anyway, loudly.
        log.error("provider confirmed a refund we had marked failed", extra={"refund": refund.public_id})
    attempt: Attempt = records.lock_attempt(conn, refund.attempt_id)
    day = posting_day(conn, now)
    ledger_entry_id = invoice_entry_id = None
    if refund.overpayment_part:
        posted = post(
            conn,
            EntryRequest(
                effective_date=day,
                description=f"過誤納金還付 ¥{refund.overpayment_part:,} {attempt.notice_number}",
                source_ref=f"payment:{attempt.public_id}",
                idempotency_key=f"refund:{refund.public_id}:overpayment",
                lines=(
                    Line.debit(OVERPAYMENTS_ACCOUNT, refund.overpayment_part),
                    Line.credit(CLEARING_ACCOUNT, refund.overpayment_part),
                ),
            ),
            now=now,
        )
        ledger_entry_id = posted.id
        over = records.overpayment_of(conn, attempt.id, lock=True)
        assert over is not None
        refunded = over.refunded_amount + refund.overpayment_part
        conn.execute(
            overpayments.update()
            .where(overpayments.c.id == over.id)
            .values(
                refunded_amount=refunded,
                status=(OverpaymentStatus.REFUNDED if refunded == over.amount else OverpaymentStatus.OPEN).value,
                updated_at=now,
            )
        )
    if refund.principal_part or refund.late_fee_part:
        _, invoice_entry_id = record_refund(
            conn, ctx, attempt.notice_number, refund.principal_part, late_fee=refund.late_fee_part,
            reference=f"refund:{refund.public_id}", actor=refund.actor_id, effective_date=day,
        )  # fmt: skip
    done = records.update_refund(
        conn, refund, now=now, status=RefundStatus.SUCCEEDED.value, provider_refund_id=provider_refund_id,
        ledger_entry_id=ledger_entry_id, invoice_entry_id=invoice_entry_id, completed_at=now,
        failure_code=None, failure_message=None,
    )  # fmt: skip
    audit(
        conn,
        actor or actor_of(refund),
        "refund.complete",
        f"payment:{attempt.public_id}",
        {"refund": refund.public_id, "amount": refund.amount, "provider_refund_id": provider_refund_id},
        now=now,
    )
    return done


def fail(
    conn: Connection, refund_id: int, code: str, message: str, *, now: datetime, actor: Actor | None = None
) -> Refund:
    """The provider refused: release the reserved amount (it is refundable again)."""
    refund = records.lock_refund(conn, refund_id)
    if refund.status is not RefundStatus.PENDING:
        return refund
    failed = records.update_refund(
        conn, refund, now=now, status=RefundStatus.FAILED.value, failure_code=code[:64],
        failure_message=message[:500], completed_at=now,
    )  # fmt: skip
    audit(
        conn,
        actor or actor_of(refund),
        "refund.fail",
        f"payment:{refund.attempt_public_id}",
        {"refund": refund.public_id, "amount": refund.amount, "code": code},
        now=now,
    )
    return failed


def remember_provider_id(conn: Connection, refund_id: int, provider_refund_id: str, *, now: datetime) -> Refund:
    refund = records.lock_refund(conn, refund_id)
    if refund.provider_refund_id == provider_refund_id:
        return refund
    return records.update_refund(conn, refund, now=now, provider_refund_id=provider_refund_id)
