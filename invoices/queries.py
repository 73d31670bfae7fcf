"""Reading invoices: by notice number, by public id (what a payment token names), and lists with
filters and keyset pagination (stable under concurrent inserts; no OFFSET scans)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from invoices.errors import InvalidInvoice, InvoiceNotFound
from invoices.model import Invoice, Status
from invoices.records import load, to_invoice
from invoices.schema import changes, invoices
from ledger.keyset import decode_cursor, encode_cursor

MAX_PAGE = 500
DEFAULT_PAGE = 50
_PUBLIC_ID = re.compile(r"[0-9a-f]{24}")


def get_invoice(conn: Connection, number: str) -> Invoice:
    """The invoice with this notice number (any accepted spelling: full-width, dashes …)."""
    return load(conn, number)


def get_invoice_by_public_id(conn: Connection, public_id: str) -> Invoice:
    """The invoice a payment token's ref names (24 lower-case hex characters)."""
    if not isinstance(public_id, str) or not _PUBLIC_ID.fullmatch(public_id):
        raise InvoiceNotFound("no invoice with this public id")
    row = conn.execute(sa.select(invoices).where(invoices.c.public_id == public_id)).first()
    if row is None:
        raise InvoiceNotFound("no invoice with this public id")
    return to_invoice(row)


@dataclass(frozen=True)
class InvoicePage:
    """One page of a list, in issue order (ascending id); ``next_cursor`` is None on the last."""

    items: tuple[Invoice, ...]
    next_cursor: str | None


def _decode_cursor(cursor: str) -> int:
    last_id = decode_cursor(cursor)
    if last_id is None:
        raise InvalidInvoice(
            "invoice.invalid_cursor", "the cursor is not one this service gave out", field="cursor"
        )
    return last_id


def list_invoices(
    conn: Connection,
    *,
    status: Status | str | None = None,
    tax_code: str | None = None,
    fiscal_year: int | None = None,
    due_from: date | None = None,
    due_to: date | None = None,
    payer_ref: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE,
) -> InvoicePage:
    """Invoices matching every filter given (due range inclusive), ``limit`` (1..500) at a time."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInvoice("invoice.invalid_filter", f"limit must be 1..{MAX_PAGE}", field="limit")
    query = sa.select(invoices)
    if status is not None:
        try:
            query = query.where(invoices.c.status == Status(status).value)
        except ValueError:
            raise InvalidInvoice("invoice.invalid_filter", "unknown status", field="status") from None
    if tax_code is not None:
        query = query.where(invoices.c.tax_code == tax_code)
    if fiscal_year is not None:
        query = query.where(invoices.c.fiscal_year == fiscal_year)
    for name, value in (("due_from", due_from), ("due_to", due_to)):
        if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
            raise InvalidInvoice("invoice.invalid_filter", f"{name} must be a date", field=name)
    if due_from is not None:
        query = query.where(invoices.c.due_date >= due_from)
    if due_to is not None:
        query = query.where(invoices.c.due_date <= due_to)
    if payer_ref is not None:
        query = query.where(invoices.c.payer_ref == payer_ref)
    if cursor is not None:
        query = query.where(invoices.c.id > _decode_cursor(cursor))
    rows = conn.execute(query.order_by(invoices.c.id).limit(limit + 1)).all()
    items = tuple(to_invoice(row) for row in rows[:limit])
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return InvoicePage(items, next_cursor)


@dataclass(frozen=True)
class Change:
    """One line of an invoice's history."""

    version: int
    kind: str
    actor: str
    reason: str | None
    reference: str | None
    amount_before: int | None
    amount_after: int
    paid_before: int | None
    paid_after: int
    status_before: str | None
    status_after: str
    ledger_entry_id: int | None
    overpayment_entry_id: int | None
    created_at: datetime


def invoice_history(conn: Connection, number: str) -> tuple[Change, ...]:
    """Every change of the invoice, oldest first."""
    invoice = load(conn, number)
    rows = conn.execute(
        sa.select(changes).where(changes.c.invoice_id == invoice.id).order_by(changes.c.version)
    ).all()
    return tuple(
        Change(
            version=r.version,
            kind=r.kind,
            actor=r.actor,
            reason=r.reason,
            reference=r.reference,
            amount_before=r.amount_before,
            amount_after=r.amount_after,
            paid_before=r.paid_before,
            paid_after=r.paid_after,
            status_before=r.status_before,
            status_after=r.status_after,
            ledger_entry_id=r.ledger_entry_id,
            overpayment_entry_id=r.overpayment_entry_id,
            created_at=r.created_at,
        )
        for r in rows
    )
