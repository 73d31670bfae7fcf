"""Reading and writing invoice rows: the one place that knows the table layout, the ledger
postings an invoice makes, and how personal data is sealed into a row."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from invoices.catalog import CatalogEntry
from invoices.errors import InvalidInvoice, InvoiceCancelled, InvoiceNotFound, StaleVersion
from invoices.model import Invoice, IssueRequest, Status, pii_aad
from invoices.notice_number import NoticeNumberError, parse_notice_number
from invoices.pii import PiiCipher, PiiError
from invoices.schema import changes, invoices
from ledger import EntryRequest, Line

OVERPAYMENTS_ACCOUNT = "2100"
PII_FIELDS = ("payer_name", "payer_address", "payer_contact")
# All issuing (single or bulk) serialises on this PostgreSQL advisory lock, taken first, so that
# idempotency-key, external-ref and notice-number checks cannot race. It costs no throughput:
# every issue posts to the ledger, whose chain-head lock serialises writers anyway. SQLite's
# BEGIN IMMEDIATE already gives one writer at a time.
_ISSUE_LOCK_KEY = int.from_bytes(hashlib.sha256(b"nofu:invoices:issue").digest()[:8], "big") >> 1


def lock_issuing(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ISSUE_LOCK_KEY)))


def check_actor(actor: object) -> str:
    if not isinstance(actor, str) or not actor.strip():
        raise InvalidInvoice("invoice.missing_actor", "actor (who does this) is required", field="actor")
    if len(actor) > 200:
        raise InvalidInvoice("invoice.value_too_long", "actor is longer than 200 characters", field="actor")
    return actor.strip()


def check_reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInvoice("invoice.missing_reason", "a reason is required", field="reason")
    if len(reason) > 500:
        raise InvalidInvoice("invoice.value_too_long", "reason is longer than 500 characters", field="reason")
    return reason.strip()


def to_invoice(row: sa.Row[Any]) -> Invoice:
    return Invoice(
        id=row.id,
        public_id=row.public_id,
        notice_number=row.notice_number,
        fiscal_year=row.fiscal_year,
        sequence=row.sequence,
        external_ref=row.external_ref,
        payer_ref=row.payer_ref,
        tax_code=row.tax_code,
        installment=row.installment,
        issue_date=row.issue_date,
        due_date=row.due_date,
        amount=row.amount,
        amount_paid=row.amount_paid,
        status=Status(row.status),
        token_generation=row.token_generation,
        version=row.version,
        issue_entry_id=row.issue_entry_id,
        import_id=row.import_id,
        pii_key_id=row.pii_key_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        payer_name_blob=row.payer_name,
        payer_address_blob=row.payer_address,
        payer_contact_blob=row.payer_contact,
    )


def notice_digits(number: str) -> str:
    """The 13 stored digits of a notice number typed in any accepted spelling."""
    try:
        return parse_notice_number(number).digits
    except NoticeNumberError as exc:
        raise InvalidInvoice(
            "invoice.invalid_notice_number",
            f"not a valid notice number ({exc.code})",
            field="notice_number",
            reason=exc.code,
        ) from None


def load(conn: Connection, number: str, *, lock: bool = False) -> Invoice:
    """The invoice with this notice number; with ``lock``, its row is locked for update."""
    digits = notice_digits(number)
    query = sa.select(invoices).where(invoices.c.notice_number == digits)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise InvoiceNotFound("no invoice with this notice number", notice_number=digits)
    return to_invoice(row)


def load_for_change(conn: Connection, number: str, expected_version: int | None) -> Invoice:
    """Lock a live invoice for a change; refuse cancelled ones and stale versions."""
    invoice = load(conn, number, lock=True)
    if expected_version is not None and expected_version != invoice.version:
        raise StaleVersion(
            f"the invoice is at version {invoice.version}, not {expected_version}",
            version=invoice.version,
        )
    if invoice.status is Status.CANCELLED:
        raise InvoiceCancelled("the invoice is cancelled", notice_number=invoice.notice_number)
    return invoice


def seal_payer(cipher: PiiCipher, public_id: str, request: IssueRequest) -> dict[str, str | None]:
    """The encrypted payer columns of a new row."""
    values: dict[str, str | None] = {}
    for field_name in PII_FIELDS:
        plain = getattr(request, field_name)
        values[field_name] = None if plain is None else cipher.encrypt(plain, pii_aad(public_id, field_name))
    values["pii_key_id"] = cipher.active_key_id
    return values


def same_payer(cipher: PiiCipher, row: sa.Row[Any] | Invoice, request: IssueRequest) -> bool:
    """Whether a stored row holds exactly the request's payer data (decrypts to compare)."""
    public_id = row.public_id
    for field_name in PII_FIELDS:
        blob = getattr(row, field_name if isinstance(row, sa.Row) else f"{field_name}_blob")
        plain = getattr(request, field_name)
        if (blob is None) != (plain is None):
            return False
        if blob is not None:
            try:
                if cipher.decrypt(blob, pii_aad(public_id, field_name)) != plain:
                    return False
            except PiiError:
                return False
    return True


def issue_entry(
    entry: CatalogEntry,
    display: str,
    fiscal_year: int,
    installment: int | None,
    amount: int,
    effective_date: date,
) -> EntryRequest:
    """調定: Dr receivable / Cr revenue for the principal."""
    period = f" 第{installment}期" if installment is not None else ""
    return EntryRequest(
        effective_date=effective_date,
        description=f"調定 {entry.name_ja} {fiscal_year}年度{period} {display}",
        source_ref=f"invoice:{display}",
        idempotency_key=f"invoice:{display}:issue",
        lines=(Line.debit(entry.receivable_account, amount), Line.credit(entry.revenue_account, amount)),
    )


def change_entry(
    invoice: Invoice, suffix: str, description: str, lines: Iterable[Line], effective_date: date
) -> EntryRequest:
    """An entry for the change that takes ``invoice`` to its next version."""
    display = invoice.display_number
    return EntryRequest(
        effective_date=effective_date,
        description=f"{description} {display}",
        source_ref=f"invoice:{display}",
        idempotency_key=f"invoice:{display}:v{invoice.version + 1}:{suffix}",
        lines=tuple(lines),
    )


def record_change(
    conn: Connection,
    invoice: Invoice,
    *,
    kind: str,
    actor: str,
    now: datetime,
    amount_after: int,
    paid_after: int,
    status_after: Status,
    reason: str | None = None,
    reference: str | None = None,
    ledger_entry_id: int | None = None,
    overpayment_entry_id: int | None = None,
    token_generation: int | None = None,
) -> Invoice:
    """Move a locked invoice to its next version and append the change to its history."""
    values: dict[str, object] = {
        "amount": amount_after,
        "amount_paid": paid_after,
        "status": status_after.value,
        "version": invoice.version + 1,
        "updated_at": now,
    }
    if token_generation is not None:
        values["token_generation"] = token_generation
    conn.execute(invoices.update().where(invoices.c.id == invoice.id).values(**values))
    conn.execute(
        changes.insert().values(
            invoice_id=invoice.id,
            version=invoice.version + 1,
            kind=kind,
            actor=actor,
            reason=reason,
            reference=reference,
            amount_before=invoice.amount,
            amount_after=amount_after,
            paid_before=invoice.amount_paid,
            paid_after=paid_after,
            status_before=invoice.status.value,
            status_after=status_after.value,
            ledger_entry_id=ledger_entry_id,
            overpayment_entry_id=overpayment_entry_id,
            created_at=now,
        )
    )
    row = conn.execute(sa.select(invoices).where(invoices.c.id == invoice.id)).one()
    return to_invoice(row)


def issue_change_rows(
    items: Sequence[tuple[int, int, int]], *, actor: str, now: datetime
) -> list[dict[str, object]]:
    """History rows for freshly issued invoices: (invoice id, amount, ledger entry id) each."""
    return [
        {
            "invoice_id": invoice_id,
            "version": 1,
            "kind": "issue",
            "actor": actor,
            "reason": None,
            "reference": None,
            "amount_before": None,
            "amount_after": amount,
            "paid_before": None,
            "paid_after": 0,
            "status_before": None,
            "status_after": Status.OPEN.value,
            "ledger_entry_id": entry_id,
            "overpayment_entry_id": None,
            "created_at": now,
        }
        for invoice_id, amount, entry_id in items
    ]
