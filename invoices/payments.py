"""The hook the payment work (収納・消込) calls when principal is received for an invoice.

Until that work lands, tests use it to put invoices into the paid and overpaid states. It books
only the principal: Dr clearing (1200 by default) for the money, Cr 1100:CODE for what settles the
receivable, Cr 2100 (過誤納金) for anything beyond it. A late fee (延滞金) collected with the
payment is the caller's to post (Cr 4300).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from invoices.errors import InvalidInvoice
from invoices.model import Invoice, InvoiceContext, status_for
from invoices.records import OVERPAYMENTS_ACCOUNT, change_entry, check_actor, load, load_for_change, record_change
from invoices.schema import changes
from invoices.validation import check_amount
from ledger import Line, post
from ledger.clock import utc_now

log = logging.getLogger("nofu.invoices")

DEFAULT_CLEARING_ACCOUNT = "1200"


def record_payment(
    conn: Connection,
    ctx: InvoiceContext,
    number: str,
    amount: int,
    *,
    reference: str,
    actor: str,
    clearing_account: str = DEFAULT_CLEARING_ACCOUNT,
) -> Invoice:
    """Record ``amount`` yen of principal received for the invoice, once per ``reference``.

    Invariants: the same ``reference`` (e.g. the provider's payment id) is applied at most once
    (a repeat returns the invoice unchanged); a cancelled invoice refuses payments (the caller
    books such money as 過誤納金 without an invoice); the status follows the money.
    """
    error = check_amount(amount)
    if error is not None:
        raise error
    actor = check_actor(actor)
    if not isinstance(reference, str) or not 1 <= len(reference.strip()) <= 200:
        raise InvalidInvoice("invoice.missing_value", "reference is required (≤ 200 characters)", field="reference")
    reference = reference.strip()
    invoice = load_for_change(conn, number, None)
    seen = conn.execute(
        sa.select(changes.c.id).where(
            changes.c.invoice_id == invoice.id,
            changes.c.kind == "payment",
            changes.c.reference == reference,
        )
    ).first()
    if seen is not None:
        return load(conn, number)
    entry = ctx.catalog.get(invoice.tax_code)
    to_receivable = min(amount, max(invoice.amount - invoice.amount_paid, 0))
    excess = amount - to_receivable
    lines = [Line.debit(clearing_account, amount)]
    if to_receivable:
        lines.append(Line.credit(entry.receivable_account, to_receivable))
    if excess:
        lines.append(Line.credit(OVERPAYMENTS_ACCOUNT, excess))
    now = utc_now()
    posted = post(
        conn,
        change_entry(invoice, "payment", f"収納 {entry.name_ja} ¥{amount:,}", lines, ctx.today()),
        now=now,
    )
    paid = invoice.amount_paid + amount
    updated = record_change(
        conn,
        invoice,
        kind="payment",
        actor=actor,
        reference=reference,
        now=now,
        amount_after=invoice.amount,
        paid_after=paid,
        status_after=status_for(invoice.amount, paid),
        ledger_entry_id=posted.id,
    )
    log.info("payment recorded", extra={"notice_number": updated.display_number, "actor": actor})
    return updated
