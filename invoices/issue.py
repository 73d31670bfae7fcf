"""Issuing invoices (調定): the invoice row, its history row and its ledger entry
(Dr 1100:CODE / Cr 4100:CODE or 4200:CODE) are written in the caller's transaction, together.

Replays are answered, not repeated: the same idempotency key with the same request, or the same
external_ref (or assigned notice number) with the same content, returns the invoice already
issued; with other content it is a conflict. "Same" compares the non-personal fields by digest
and the payer data by decrypting the stored row.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from invoices import numbers
from invoices.bulk import insert_rows, next_ids
from invoices.errors import (
    DuplicateNoticeNumber,
    ExternalRefConflict,
    IdempotencyConflict,
    InvalidInvoice,
)
from invoices.model import Invoice, InvoiceContext, IssueRequest, issue_digest
from invoices.notice_number import damm_check_digit
from invoices.records import (
    check_actor,
    issue_change_rows,
    issue_entry,
    lock_issuing,
    same_payer,
    seal_payer,
    to_invoice,
)
from invoices.schema import changes, idempotency_keys, invoices
from invoices.validation import validated
from ledger import EntryRequest, Line, post, post_many
from ledger.clock import utc_now

log = logging.getLogger("nofu.invoices")


@dataclass(frozen=True)
class Issued:
    """The outcome of :func:`issue_invoice`: ``created`` is False for a replay."""

    invoice: Invoice
    created: bool


@dataclass(frozen=True)
class NewInvoice:
    """A validated, normalised request with its notice number decided."""

    request: IssueRequest
    digest: str
    fiscal_year: int
    sequence: int


@dataclass(frozen=True)
class Written:
    id: int
    public_id: str
    notice_number: str  # display form
    token_generation: int = 0


def write_invoices(
    conn: Connection,
    ctx: InvoiceContext,
    items: Sequence[NewInvoice],
    *,
    actor: str,
    today: date,
    now: datetime,
    import_id: int | None = None,
    batch_entry: tuple[str, str] | None = None,
) -> list[Written]:
    """Insert new invoices with their 調定 ledger postings and history rows.

    Each invoice gets its own entry, unless ``batch_entry`` (idempotency key, description) is
    given: then the batch posts ONE entry with a receivable and a revenue line per tax code, each
    the sum of that code's invoices, and every invoice of the batch names it as its issue entry.

    The caller has taken the issuing lock and checked that the numbers and external refs are
    free; the database's unique constraints stay the last word.
    """
    if not items:
        return []
    prepared = []
    for item in items:
        # make_notice_number, without re-checking the parts (validated and allocated in range).
        payload = f"{item.fiscal_year:04d}{item.sequence:08d}"
        display = f"{payload[:4]}-{payload[4:]}-{damm_check_digit(payload)}"
        prepared.append((item, display, os.urandom(12).hex()))
    if batch_entry is None:
        requests = [
            issue_entry(
                ctx.catalog.get(item.request.tax_code),
                display,
                item.fiscal_year,
                item.request.installment,
                item.request.amount,
                today,
            )
            for item, display, _ in prepared
        ]
        posted = post_many(conn, requests, now=now)
        for (_, display, _), entry_posted in zip(prepared, posted, strict=True):
            if entry_posted.replayed:
                # The ledger already has this notice number's issue entry: the number was used.
                raise DuplicateNoticeNumber("this notice number was issued before", notice_number=display)
        entry_ids = [p.id for p in posted]
    else:
        key, description = batch_entry
        request = batch_issue_entry(ctx, [item.request for item in items], key, description, today)
        batch = post(conn, request, now=now)
        if batch.replayed:
            raise AssertionError(f"batch entry {key} was posted before")
        entry_ids = [batch.id] * len(items)
    rows = []
    for (item, display, public_id), entry_id in zip(prepared, entry_ids, strict=True):
        req = item.request
        rows.append(
            {
                "public_id": public_id,
                "notice_number": display.replace("-", ""),
                "fiscal_year": item.fiscal_year,
                "sequence": item.sequence,
                "external_ref": req.external_ref,
                "payer_ref": req.payer_ref,
                **seal_payer(ctx.pii, public_id, req),
                "tax_code": req.tax_code,
                "installment": req.installment,
                "issue_date": req.issue_date or today,
                "due_date": req.due_date,
                "amount": req.amount,
                "amount_paid": 0,
                "status": "open",
                "token_generation": 0,
                "version": 1,
                "issue_digest": item.digest,
                "issue_entry_id": entry_id,
                "import_id": import_id,
                "created_at": now,
                "updated_at": now,
            }
        )
    ids = next_ids(conn, invoices, len(rows))
    for invoice_id, row in zip(ids, rows, strict=True):
        row["id"] = invoice_id
    insert_rows(conn, invoices, rows)
    insert_rows(
        conn,
        changes,
        issue_change_rows(
            [
                (invoice_id, item.request.amount, entry_id)
                for invoice_id, (item, _, _), entry_id in zip(ids, prepared, entry_ids, strict=True)
            ],
            actor=actor,
            now=now,
        ),
    )
    return [
        Written(invoice_id, public_id, display)
        for invoice_id, (_, display, public_id) in zip(ids, prepared, strict=True)
    ]


def batch_issue_entry(
    ctx: InvoiceContext, requests: Sequence[IssueRequest], key: str, description: str, today: date
) -> EntryRequest:
    """One 調定 entry for many invoices: per tax code, Dr 1100:CODE / Cr revenue for the sum."""
    totals: dict[str, int] = {}
    for req in requests:
        totals[req.tax_code] = totals.get(req.tax_code, 0) + req.amount
    lines: list[Line] = []
    for code in sorted(totals):
        entry = ctx.catalog.get(code)
        lines += [
            Line.debit(entry.receivable_account, totals[code]),
            Line.credit(entry.revenue_account, totals[code]),
        ]
    return EntryRequest(
        effective_date=today,
        description=description,
        source_ref=key.rsplit(":", 2)[0],
        idempotency_key=key,
        lines=tuple(lines),
    )


def _same(row: sa.Row[Any], request: IssueRequest, digest: str, ctx: InvoiceContext) -> bool:
    return row.issue_digest == digest and same_payer(ctx.pii, row, request)


def _check_key(key: str | None) -> None:
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 255 or not key.isprintable()):
        raise InvalidInvoice(
            "invoice.invalid_idempotency_key",
            "an idempotency key is 1-255 printable characters",
            field="idempotency_key",
        )


def issue_invoice(
    conn: Connection,
    ctx: InvoiceContext,
    request: IssueRequest,
    *,
    actor: str,
    idempotency_key: str | None = None,
) -> Issued:
    """Issue one invoice and post its 調定 entry, in the caller's transaction.

    Invariants: the invoice and its ledger entry commit together or not at all; the same
    ``idempotency_key`` always answers with the one invoice it created, and refuses another
    request; an ``external_ref`` or an assigned notice number names at most one invoice.
    """
    actor = check_actor(actor)
    _check_key(idempotency_key)
    today = ctx.today()
    req, number = validated(request, ctx.catalog, today)
    digest = issue_digest(req, number.digits if number else None)
    lock_issuing(conn)

    if idempotency_key is not None:
        row = conn.execute(
            sa.select(invoices)
            .join(idempotency_keys, idempotency_keys.c.invoice_id == invoices.c.id)
            .where(idempotency_keys.c.key == idempotency_key)
        ).first()
        if row is not None:
            if not _same(row, req, digest, ctx):
                raise IdempotencyConflict(
                    "this idempotency key was used for another request", notice_number=row.notice_number
                )
            return Issued(to_invoice(row), created=False)

    replay = _existing(conn, ctx, req, digest, number.digits if number else None)
    if replay is not None:
        _remember_key(conn, idempotency_key, replay.id)
        return Issued(replay, created=False)

    if number is not None:
        numbers.note_assigned(conn, number.fiscal_year, number.sequence)
        sequence = number.sequence
    else:
        sequence = numbers.allocate(conn, req.fiscal_year)
    now = utc_now()
    (written,) = write_invoices(
        conn,
        ctx,
        [NewInvoice(req, digest, req.fiscal_year, sequence)],
        actor=actor,
        today=today,
        now=now,
    )
    _remember_key(conn, idempotency_key, written.id)
    log.info("invoice issued", extra={"notice_number": written.notice_number, "actor": actor})
    row = conn.execute(sa.select(invoices).where(invoices.c.id == written.id)).one()
    return Issued(to_invoice(row), created=True)


def _existing(
    conn: Connection, ctx: InvoiceContext, req: IssueRequest, digest: str, digits: str | None
) -> Invoice | None:
    """The invoice this request repeats, or None if it is new; a clash with other content raises."""
    if req.external_ref is not None:
        row = conn.execute(sa.select(invoices).where(invoices.c.external_ref == req.external_ref)).first()
        if row is not None:
            if not _same(row, req, digest, ctx):
                raise ExternalRefConflict(
                    "an invoice with this external_ref exists with other content",
                    notice_number=row.notice_number,
                )
            return to_invoice(row)
    if digits is not None:
        row = conn.execute(sa.select(invoices).where(invoices.c.notice_number == digits)).first()
        if row is not None:
            if row.external_ref != req.external_ref or not _same(row, req, digest, ctx):
                raise DuplicateNoticeNumber("an invoice with this notice number exists", notice_number=digits)
            return to_invoice(row)
    return None


def _remember_key(conn: Connection, key: str | None, invoice_id: int) -> None:
    if key is not None:
        conn.execute(idempotency_keys.insert().values(key=key, invoice_id=invoice_id, created_at=utc_now()))
