"""The hooks the payment work (収納・消込・還付) calls when money for an invoice arrives or leaves.

``record_payment`` books principal received (and the 延滞金 collected with it) in one entry:
Dr clearing (1200 by default) for the money, Cr 1100:CODE for what settles the receivable,
Cr 2100 (過誤納金) for principal beyond it, Cr 4300 for the late fee.

``record_refund`` is its mirror for money paid back (還付) against an invoice: Cr clearing, and on
the debit side exactly what the invoice's books need when ``amount_paid`` goes down again —
Dr 2100 for the part that was 過誤納金 on this invoice, Dr 1100:CODE for the part that re-opens
the receivable, Dr 4300 for a refunded late fee. The invoice re-opens when principal is owed
again. (The history row's kind is ``payment`` with ``paid_after < paid_before`` and reason
``refund``: the schema of ``invoice_changes`` has no separate refund kind.)

Both are idempotent per ``reference`` and post with an explicit effective date when given: for
cashless payments the day that counts is the provider's success time in JST.

``record_payment_locked`` is ``record_payment`` for a caller that has already locked and read the
invoice in its transaction (``lock_invoice``; the settlement of a provider payment): it neither
locks nor reads the invoice again and returns the invoice as written, with the ledger entry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from invoices.errors import InvalidInvoice, InvoiceCancelled, InvoiceNotFound
from invoices.model import Invoice, InvoiceContext, Status, status_for
from invoices.records import (
    OVERPAYMENTS_ACCOUNT,
    change_entry,
    check_actor,
    load,
    load_for_change,
    record_change,
    to_invoice,
)
from invoices.schema import MAX_INVOICE_AMOUNT, changes, invoices
from invoices.validation import check_amount
from ledger import Line, post
from ledger.clock import utc_now
from ledger.db import execute

log = logging.getLogger("nofu.invoices")

DEFAULT_CLEARING_ACCOUNT = "1200"
LATE_FEE_ACCOUNT = "4300"
REFUND_REASON = "refund"


def _check_reference(reference: object) -> str:
    if not isinstance(reference, str) or not 1 <= len(reference.strip()) <= 200:
        raise InvalidInvoice(
            "invoice.missing_value", "reference is required (≤ 200 characters)", field="reference"
        )
    return reference.strip()


def _check_late_fee(late_fee: object) -> int:
    if isinstance(late_fee, bool) or not isinstance(late_fee, int):
        raise InvalidInvoice(
            "invoice.amount_not_integer", "late_fee must be a whole number of yen", field="late_fee"
        )
    if late_fee < 0:
        raise InvalidInvoice("invoice.amount_negative", "late_fee must not be negative", field="late_fee")
    if late_fee > MAX_INVOICE_AMOUNT:
        raise InvalidInvoice("invoice.amount_too_large", "late_fee is too large", field="late_fee")
    return late_fee


def _check_date(effective_date: object) -> None:
    if effective_date is not None and (
        not isinstance(effective_date, date) or isinstance(effective_date, datetime)
    ):
        raise InvalidInvoice("invoice.invalid_date", "effective_date must be a date", field="effective_date")


# Built once: the payment path runs them for every settled provider payment.
_APPLIED = sa.select(changes.c.ledger_entry_id).where(
    changes.c.invoice_id == sa.bindparam("invoice_id"),
    changes.c.kind == "payment",
    changes.c.reference == sa.bindparam("reference"),
)
# A payment's two writes (see ``records.record_change``): the invoice's next version and its
# history row.
_WRITE_PAID = (
    invoices.update()
    .where(invoices.c.id == sa.bindparam("invoice_id"))
    .values(
        amount_paid=sa.bindparam("paid"),
        status=sa.bindparam("status"),
        version=sa.bindparam("version"),
        updated_at=sa.bindparam("now"),
    )
)
_INSERT_CHANGE = changes.insert()


def _applied_row(conn: Connection, invoice: Invoice, reference: str) -> Any:
    """The history row of a payment already recorded under ``reference`` (its ledger entry id)."""
    return execute(conn, _APPLIED, {"invoice_id": invoice.id, "reference": reference}).first()


def _applied(conn: Connection, invoice: Invoice, reference: str) -> bool:
    return _applied_row(conn, invoice, reference) is not None


_LOCK_BY_PUBLIC_ID = sa.select(invoices).where(invoices.c.public_id == sa.bindparam("public_id")).with_for_update()


def lock_invoice(conn: Connection, public_id: str) -> Invoice:
    """The invoice a payment token names, its row locked for update (cancelled ones included:
    the caller decides what a payment for a cancelled invoice becomes)."""
    row = execute(conn, _LOCK_BY_PUBLIC_ID, {"public_id": public_id}).first()
    if row is None:
        raise InvoiceNotFound("no invoice with this public id")
    return to_invoice(row)


def record_payment(
    conn: Connection,
    ctx: InvoiceContext,
    number: str,
    amount: int,
    *,
    reference: str,
    actor: str,
    clearing_account: str = DEFAULT_CLEARING_ACCOUNT,
    late_fee: int = 0,
    effective_date: date | None = None,
) -> Invoice:
    """Record ``amount`` yen of principal (plus ``late_fee`` yen of 延滞金) received for the
    invoice, once per ``reference``, in one ledger entry dated ``effective_date`` (default: today).

    Invariants: the same ``reference`` (e.g. the provider's payment id) is applied at most once
    (a repeat returns the invoice unchanged); a cancelled invoice refuses payments (the caller
    books such money as 過誤納金 without an invoice); the status follows the principal.
    """
    late_fee, actor, reference = _check_payment(amount, late_fee, effective_date, actor, reference)
    invoice = load_for_change(conn, number, None)
    done = _record(conn, ctx, invoice, amount, reference, actor, clearing_account, late_fee, effective_date)
    return invoice if done.repeated else load(conn, number)


@dataclass(frozen=True)
class PaymentRecorded:
    """What ``record_payment_locked`` did.

    Attributes:
        invoice: the invoice as written (unchanged for a repeated reference); ``updated_at`` is
            the time written, as given (not read back).
        entry_id: the ledger entry that booked this reference's money (the earlier one on a repeat).
        repeated: the reference had already been applied; nothing was written.
    """

    invoice: Invoice
    entry_id: int
    repeated: bool


def record_payment_locked(
    conn: Connection,
    ctx: InvoiceContext,
    invoice: Invoice,
    amount: int,
    *,
    reference: str,
    actor: str,
    clearing_account: str = DEFAULT_CLEARING_ACCOUNT,
    late_fee: int = 0,
    effective_date: date | None = None,
) -> PaymentRecorded:
    """``record_payment`` for an ``invoice`` the caller has locked and read in this transaction
    (``lock_invoice``): the same checks, entry, history row and idempotency per ``reference``,
    without locking or reading the invoice row again.

    The caller's row lock is what makes ``invoice`` current: an invoice read without it, or in
    another transaction, would book against stale figures.
    """
    late_fee, actor, reference = _check_payment(amount, late_fee, effective_date, actor, reference)
    if invoice.status is Status.CANCELLED:
        raise InvoiceCancelled("the invoice is cancelled", notice_number=invoice.notice_number)
    return _record(conn, ctx, invoice, amount, reference, actor, clearing_account, late_fee, effective_date)


def _check_payment(
    amount: object, late_fee: object, effective_date: object, actor: object, reference: object
) -> tuple[int, str, str]:
    error = check_amount(amount)
    if error is not None:
        raise error
    checked_fee = _check_late_fee(late_fee)
    _check_date(effective_date)
    return checked_fee, check_actor(actor), _check_reference(reference)


def _record(
    conn: Connection,
    ctx: InvoiceContext,
    invoice: Invoice,
    amount: int,
    reference: str,
    actor: str,
    clearing_account: str,
    late_fee: int,
    effective_date: date | None,
) -> PaymentRecorded:
    """The payment on a locked, live invoice; checked arguments."""
    applied = _applied_row(conn, invoice, reference)
    if applied is not None:
        return PaymentRecorded(invoice, int(applied.ledger_entry_id), repeated=True)
    entry = ctx.catalog.get(invoice.tax_code)
    to_receivable = min(amount, max(invoice.amount - invoice.amount_paid, 0))
    excess = amount - to_receivable
    lines = [Line.debit(clearing_account, amount + late_fee)]
    if to_receivable:
        lines.append(Line.credit(entry.receivable_account, to_receivable))
    if excess:
        lines.append(Line.credit(OVERPAYMENTS_ACCOUNT, excess))
    if late_fee:
        lines.append(Line.credit(LATE_FEE_ACCOUNT, late_fee))
    label = f"収納 {entry.name_ja} ¥{amount:,}" + (f" 延滞金 ¥{late_fee:,}" if late_fee else "")
    now = utc_now()
    paid = invoice.amount_paid + amount
    status = status_for(invoice.amount, paid)
    version = invoice.version + 1
    # The invoice row (locked by the caller) is written before the posting: the posting takes the
    # ledger's chain head, which every writer of the books queues on until this commit, so what
    # does not need the entry's id is not done while holding it.
    execute(
        conn,
        _WRITE_PAID, {"invoice_id": invoice.id, "paid": paid, "status": status.value, "version": version, "now": now}
    )
    posted = post(conn, change_entry(invoice, "payment", label, lines, effective_date or ctx.today()), now=now)
    execute(
        conn,
        _INSERT_CHANGE,
        {
            "invoice_id": invoice.id, "version": version, "kind": "payment", "actor": actor, "reason": None,
            "reference": reference, "amount_before": invoice.amount, "amount_after": invoice.amount,
            "paid_before": invoice.amount_paid, "paid_after": paid, "status_before": invoice.status.value,
            "status_after": status.value, "ledger_entry_id": posted.id, "overpayment_entry_id": None,
            "created_at": now,
        },
    )  # fmt: skip
    log.info("payment recorded", extra={"notice_number": invoice.display_number, "actor": actor})
    updated = replace(invoice, amount_paid=paid, status=status, version=version, updated_at=now)
    return PaymentRecorded(updated, posted.id, repeated=False)


def record_refund(
    conn: Connection,
    ctx: InvoiceContext,
    number: str,
    principal: int,
    *,
    reference: str,
    actor: str,
    late_fee: int = 0,
    clearing_account: str = DEFAULT_CLEARING_ACCOUNT,
    effective_date: date | None = None,
) -> tuple[Invoice, int]:
    """Record ``principal`` (plus ``late_fee``) yen paid back to the payer of this invoice, once
    per ``reference``; returns the invoice and the ledger entry id.

    Invariant (the books per live invoice that ``invoices.amend`` keeps): after the refund,
    1100:CODE holds max(amount − paid, 0) and 2100 holds max(paid − amount, 0) for this invoice;
    ``principal`` cannot exceed what was paid.
    """
    if isinstance(principal, bool) or not isinstance(principal, int) or principal < 0:
        raise InvalidInvoice(
            "invoice.amount_not_integer", "principal must be a whole number of yen ≥ 0", field="principal"
        )
    late_fee = _check_late_fee(late_fee)
    if principal + late_fee == 0:
        raise InvalidInvoice("invoice.amount_zero", "nothing to refund", field="principal")
    _check_date(effective_date)
    actor = check_actor(actor)
    reference = _check_reference(reference)
    invoice = load_for_change(conn, number, None)
    if _applied(conn, invoice, reference):
        row = conn.execute(
            sa.select(changes.c.ledger_entry_id).where(
                changes.c.invoice_id == invoice.id,
                changes.c.kind == "payment",
                changes.c.reference == reference,
            )
        ).one()
        return load(conn, number), int(row.ledger_entry_id)
    if principal > invoice.amount_paid:
        raise InvalidInvoice(
            "invoice.refund_exceeds_paid",
            f"cannot refund ¥{principal:,} of principal: ¥{invoice.amount_paid:,} was paid",
            field="principal",
        )
    entry = ctx.catalog.get(invoice.tax_code)
    amount, paid_before = invoice.amount, invoice.amount_paid
    paid_after = paid_before - principal
    from_overpaid = max(paid_before - amount, 0) - max(paid_after - amount, 0)
    to_receivable = max(amount - paid_after, 0) - max(amount - paid_before, 0)
    lines = []
    if from_overpaid:
        lines.append(Line.debit(OVERPAYMENTS_ACCOUNT, from_overpaid))
    if to_receivable:
        lines.append(Line.debit(entry.receivable_account, to_receivable))
    if late_fee:
        lines.append(Line.debit(LATE_FEE_ACCOUNT, late_fee))
    lines.append(Line.credit(clearing_account, principal + late_fee))
    label = f"還付 {entry.name_ja} ¥{principal:,}" + (f" 延滞金 ¥{late_fee:,}" if late_fee else "")
    now = utc_now()
    posted = post(conn, change_entry(invoice, "refund", label, lines, effective_date or ctx.today()), now=now)
    updated = record_change(
        conn,
        invoice,
        kind="payment",
        actor=actor,
        reason=REFUND_REASON,
        reference=reference,
        now=now,
        amount_after=amount,
        paid_after=paid_after,
        status_after=status_for(amount, paid_after),
        ledger_entry_id=posted.id,
    )
    log.info("refund recorded", extra={"notice_number": updated.display_number, "actor": actor})
    return updated, posted.id
