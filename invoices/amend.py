"""Changing an issued invoice: amend (更正), cancel (取消), revoke its printed payment code.

Every change locks the invoice row, posts its own ledger entries (never edits old ones), moves the
invoice to its next version and appends one history row, all in the caller's transaction.

The books per live invoice, which every change keeps:
    receivable (1100:CODE) share = max(amount − paid, 0)
    overpayment (2100) share     = max(paid − amount, 0)
    revenue (4100/4200:CODE)     = amount
An amendment from A to N moves each by the difference, as up to two entries: the receivable part
(Dr 1100 / Cr revenue when it grows, Dr revenue / Cr 1100 when it shrinks) and, when the new
amount crosses what was already paid, the 過誤納金 part (Dr revenue / Cr 2100 when a reduction goes
below the paid amount, Dr 2100 / Cr revenue when an increase uses up an overpayment).
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Connection

from invoices.errors import InvalidInvoice, InvoiceConflict, NotCancellable
from invoices.model import Invoice, InvoiceContext, Status, status_for
from invoices.records import (
    OVERPAYMENTS_ACCOUNT,
    change_entry,
    check_actor,
    check_reason,
    load_for_change,
    record_change,
)
from invoices.schema import MAX_TOKEN_GENERATION
from invoices.validation import check_amount
from ledger import EntryRequest, Line, post_many
from ledger.clock import utc_now

log = logging.getLogger("nofu.invoices")


def amend_invoice(
    conn: Connection,
    ctx: InvoiceContext,
    number: str,
    new_amount: int,
    *,
    reason: str,
    actor: str,
    expected_version: int | None = None,
) -> Invoice:
    """更正: set the principal to ``new_amount`` (1..99,999,999), posting the difference.

    Works on open, paid and overpaid invoices; a cancelled one is refused. A reduction below the
    amount already paid turns the difference into 過誤納金 (status overpaid).
    """
    error = check_amount(new_amount, "new_amount")
    if error is not None:
        raise error
    reason = check_reason(reason)
    actor = check_actor(actor)
    invoice = load_for_change(conn, number, expected_version)
    old, new, paid = invoice.amount, new_amount, invoice.amount_paid
    if new == old:
        raise InvalidInvoice(
            "invoice.amount_unchanged", "new_amount equals the current amount", field="new_amount"
        )
    entry = ctx.catalog.get(invoice.tax_code)
    receivable, revenue = entry.receivable_account, entry.revenue_account
    delta_receivable = max(new - paid, 0) - max(old - paid, 0)
    delta_overpaid = max(paid - new, 0) - max(paid - old, 0)
    today = ctx.today()
    label = f"更正 {entry.name_ja} ¥{old:,}→¥{new:,}"

    def entry(suffix: str, text: str, debit: str, credit: str, amount: int) -> EntryRequest:
        return change_entry(
            invoice, suffix, text, (Line.debit(debit, amount), Line.credit(credit, amount)), today
        )

    requests = []
    if delta_receivable > 0:
        requests.append(entry("receivable", label, receivable, revenue, delta_receivable))
    elif delta_receivable < 0:
        requests.append(entry("receivable", label, revenue, receivable, -delta_receivable))
    if delta_overpaid > 0:
        requests.append(
            entry("overpayment", f"{label} 過誤納金", revenue, OVERPAYMENTS_ACCOUNT, delta_overpaid)
        )
    elif delta_overpaid < 0:
        requests.append(
            entry("overpayment", f"{label} 過誤納金充当", OVERPAYMENTS_ACCOUNT, revenue, -delta_overpaid)
        )
    now = utc_now()
    posted = post_many(conn, requests, now=now)
    by_suffix = {r.idempotency_key.rsplit(":", 1)[1]: p.id for r, p in zip(requests, posted, strict=True)}
    amended = record_change(
        conn,
        invoice,
        kind="amend",
        actor=actor,
        reason=reason,
        now=now,
        amount_after=new,
        paid_after=paid,
        status_after=status_for(new, paid),
        ledger_entry_id=by_suffix.get("receivable"),
        overpayment_entry_id=by_suffix.get("overpayment"),
    )
    log.info(
        "invoice amended",
        extra={"notice_number": amended.display_number, "actor": actor, "version": amended.version},
    )
    return amended


def cancel_invoice(
    conn: Connection,
    ctx: InvoiceContext,
    number: str,
    *,
    reason: str,
    actor: str,
    expected_version: int | None = None,
) -> Invoice:
    """取消: the invoice is no longer owed. Only an invoice with nothing paid can be cancelled
    (a paid one can only be amended); posts Dr revenue / Cr receivable for the whole amount and
    leaves the invoice cancelled with amount 0 (the history keeps the old amount)."""
    reason = check_reason(reason)
    actor = check_actor(actor)
    invoice = load_for_change(conn, number, expected_version)
    if invoice.amount_paid > 0:
        raise NotCancellable(
            "money was received for this invoice: amend it instead of cancelling",
            status=invoice.status.value,
        )
    entry = ctx.catalog.get(invoice.tax_code)
    now = utc_now()
    (posted,) = post_many(
        conn,
        [
            change_entry(
                invoice,
                "cancel",
                f"調定取消 {entry.name_ja} ¥{invoice.amount:,}",
                (
                    Line.debit(entry.revenue_account, invoice.amount),
                    Line.credit(entry.receivable_account, invoice.amount),
                ),
                ctx.today(),
            )
        ],
        now=now,
    )
    cancelled = record_change(
        conn,
        invoice,
        kind="cancel",
        actor=actor,
        reason=reason,
        now=now,
        amount_after=0,
        paid_after=0,
        status_after=Status.CANCELLED,
        ledger_entry_id=posted.id,
    )
    log.info("invoice cancelled", extra={"notice_number": cancelled.display_number, "actor": actor})
    return cancelled


def revoke_payment_code(
    conn: Connection,
    number: str,
    *,
    reason: str,
    actor: str,
    expected_version: int | None = None,
) -> Invoice:
    """Revoke the printed payment code (QR and confirmation code) by bumping the token
    generation; a reprinted notice carries the new one. No ledger effect."""
    reason = check_reason(reason)
    actor = check_actor(actor)
    invoice = load_for_change(conn, number, expected_version)
    if invoice.token_generation >= MAX_TOKEN_GENERATION:
        raise InvoiceConflict("this invoice's payment code cannot be revoked again")
    revoked = record_change(
        conn,
        invoice,
        kind="revoke_code",
        actor=actor,
        reason=reason,
        now=utc_now(),
        amount_after=invoice.amount,
        paid_after=invoice.amount_paid,
        status_after=invoice.status,
        token_generation=invoice.token_generation + 1,
    )
    log.info("payment code revoked", extra={"notice_number": revoked.display_number, "actor": actor})
    return revoked
