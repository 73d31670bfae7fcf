"""Reading and writing payment rows: the one place that knows the table layout.

Every write to an attempt or a refund goes through a row locked in the caller's transaction
(``lock_attempt`` / ``lock_refund``) and bumps ``version`` with a compare-and-set, so a write
based on a stale read fails instead of overwriting.
"""

from __future__ import annotations

import functools

import re
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.payments.errors import InvalidPaymentRequest, PaymentConflict, PaymentNotFound
from gateway.payments.model import (
    Attempt,
    Overpayment,
    OverpaymentReason,
    OverpaymentStatus,
    Refund,
    RefundStatus,
)
from gateway.payments.schema import ACTIVE_STATUSES, attempts, overpayments, receipts, refunds
from gateway.payments.state import AttemptStatus
from invoices.notice_number import make_notice_number
from invoices.schema import invoices
from ledger.clock import to_utc
from ledger.db import execute
from ledger.keyset import decode_cursor, encode_cursor

_PUBLIC_ID = re.compile(r"(pa|rf)_[0-9a-f]{24}")
MAX_PAGE = 500


def new_public_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def check_public_id(value: object, prefix: str) -> str:
    if not isinstance(value, str) or not _PUBLIC_ID.fullmatch(value) or not value.startswith(prefix + "_"):
        raise PaymentNotFound("no payment with this id")
    return value


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else to_utc(moment)


# Money refunded (succeeded) and in flight (pending) per attempt.
_refunded = (
    sa.select(sa.func.coalesce(sa.func.sum(refunds.c.amount), 0))
    .where(refunds.c.attempt_id == attempts.c.id, refunds.c.status == RefundStatus.SUCCEEDED.value)
    .scalar_subquery()
)
_pending = (
    sa.select(sa.func.coalesce(sa.func.sum(refunds.c.amount), 0))
    .where(refunds.c.attempt_id == attempts.c.id, refunds.c.status == RefundStatus.PENDING.value)
    .scalar_subquery()
)


_receipt_number = (
    sa.select(receipts.c.receipt_number).where(receipts.c.attempt_id == attempts.c.id).scalar_subquery()
)


# Built once: a Select is immutable, each use adds its own WHERE.
_ATTEMPTS = sa.select(
    attempts,
    invoices.c.public_id.label("invoice_public_id"),
    invoices.c.fiscal_year.label("invoice_fiscal_year"),
    invoices.c.sequence.label("invoice_sequence"),
    _refunded.label("refunded"),
    _pending.label("refund_pending"),
    _receipt_number.label("receipt_number"),
).join(invoices, invoices.c.id == attempts.c.invoice_id)


def to_attempt(row: sa.Row[Any]) -> Attempt:
    return Attempt(
        id=row.id,
        public_id=row.public_id,
        invoice_id=row.invoice_id,
        invoice_public_id=row.invoice_public_id,
        notice_number=make_notice_number(row.invoice_fiscal_year, row.invoice_sequence),
        principal=row.principal,
        late_fee=row.late_fee,
        amount=row.amount,
        currency=row.currency,
        status=AttemptStatus(row.status),
        provider=row.provider,
        provider_payment_id=row.provider_payment_id,
        client_secret=row.client_secret,
        idempotency_key=row.idempotency_key,
        next_action_url=row.next_action_url,
        failure_code=row.failure_code,
        failure_message=row.failure_message,
        amount_received=row.amount_received,
        principal_applied=row.principal_applied,
        late_fee_applied=row.late_fee_applied,
        overpaid=row.overpaid,
        ledger_entry_id=row.ledger_entry_id,
        created_at=to_utc(row.created_at),
        expires_at=to_utc(row.expires_at),
        updated_at=to_utc(row.updated_at),
        succeeded_at=_aware(row.succeeded_at),
        version=row.version,
        refunded=int(row.refunded),
        refund_pending=int(row.refund_pending),
        receipt_number=row.receipt_number,
    )


def load_attempt(conn: Connection, *, public_id: str | None = None, id: int | None = None) -> Attempt:
    query = _ATTEMPTS
    if public_id is not None:
        query = query.where(attempts.c.public_id == check_public_id(public_id, "pa"))
    else:
        query = query.where(attempts.c.id == id)
    row = conn.execute(query).first()
    if row is None:
        raise PaymentNotFound("no payment with this id")
    return to_attempt(row)


_LOCK_ATTEMPT = sa.select(attempts.c.id).where(attempts.c.id == sa.bindparam("id")).with_for_update()
_ATTEMPT_BY_ID = _ATTEMPTS.where(attempts.c.id == sa.bindparam("id"))


def lock_attempt(conn: Connection, attempt_id: int) -> Attempt:
    """Lock the attempt's row for the rest of the transaction, then read it whole (after the
    lock, so what is read is the latest committed state)."""
    conn.execute(_LOCK_ATTEMPT, {"id": attempt_id})
    row = conn.execute(_ATTEMPT_BY_ID, {"id": attempt_id}).first()
    if row is None:
        raise PaymentNotFound("no payment with this id")
    return to_attempt(row)


# Lock the attempt row and read what settling needs, in one statement. Only the attempt's row is
# locked (whoever changes the invoice locks it). Its refund sums and receipt are not read: they
# are zero and None for as long as its money is not recorded, the only case this serves.
_LOCK_UNSETTLED = (
    sa.select(
        attempts,
        invoices.c.public_id.label("invoice_public_id"),
        invoices.c.fiscal_year.label("invoice_fiscal_year"),
        invoices.c.sequence.label("invoice_sequence"),
        sa.literal(0).label("refunded"),
        sa.literal(0).label("refund_pending"),
        sa.null().label("receipt_number"),
    )
    .join(invoices, invoices.c.id == attempts.c.invoice_id)
    .where(attempts.c.id == sa.bindparam("id"))
    .with_for_update(of=attempts)
)


def lock_unsettled(conn: Connection, attempt_id: int) -> Attempt | None:
    """Lock the attempt for the rest of the transaction and read it whole, in one statement —
    or None, the lock held all the same, when its money is already recorded."""
    row = execute(conn, _LOCK_UNSETTLED, {"id": attempt_id}).first()
    if row is None:
        raise PaymentNotFound("no payment with this id")
    return None if row.amount_received else to_attempt(row)


def find_by_provider_id(conn: Connection, provider_payment_id: str) -> Attempt | None:
    row = conn.execute(_ATTEMPTS.where(attempts.c.provider_payment_id == provider_payment_id)).first()
    return None if row is None else to_attempt(row)


def active_attempt(conn: Connection, invoice_id: int) -> Attempt | None:
    row = conn.execute(
        _ATTEMPTS.where(attempts.c.invoice_id == invoice_id, attempts.c.status.in_(ACTIVE_STATUSES))
    ).first()
    return None if row is None else to_attempt(row)


def attempts_of_invoice(conn: Connection, invoice_id: int) -> list[Attempt]:
    rows = conn.execute(_ATTEMPTS.where(attempts.c.invoice_id == invoice_id).order_by(attempts.c.id))
    return [to_attempt(row) for row in rows]


def stale_attempts(conn: Connection, now: datetime, limit: int = 100) -> list[Attempt]:
    rows = conn.execute(
        _ATTEMPTS
        .where(attempts.c.status.in_(ACTIVE_STATUSES), attempts.c.expires_at <= to_utc(now))
        .order_by(attempts.c.expires_at, attempts.c.id)
        .limit(limit)
    )
    return [to_attempt(row) for row in rows]


@functools.cache
def _write_statement(columns: frozenset[str]) -> sa.Update:
    """The compare-and-set update of these columns, built once per set of columns (bind names
    are prefixed: Core reserves column names in SET clauses)."""
    return (
        attempts.update()
        .where(attempts.c.id == sa.bindparam("w_id"), attempts.c.version == sa.bindparam("w_version"))
        .values(
            version=sa.bindparam("w_version") + 1,
            updated_at=sa.bindparam("w_updated_at"),
            **{name: sa.bindparam(f"w_{name}") for name in columns},
        )
    )


def write_attempt(conn: Connection, attempt: Attempt, *, now: datetime, **values: Any) -> None:
    """Write ``values`` to an attempt read in this transaction (compare-and-set on version:
    the row is at ``attempt.version + 1`` afterwards)."""
    params = {f"w_{name}": value for name, value in values.items()}
    params.update(w_id=attempt.id, w_version=attempt.version, w_updated_at=now)
    result = execute(conn, _write_statement(frozenset(values)), params)
    if result.rowcount != 1:
        raise PaymentConflict("the payment changed meanwhile; try again", attempt=attempt.public_id)


def update_attempt(conn: Connection, attempt: Attempt, *, now: datetime, **values: Any) -> Attempt:
    """``write_attempt``, then the attempt as written."""
    write_attempt(conn, attempt, now=now, **values)
    return load_attempt(conn, id=attempt.id)


# --- refunds ------------------------------------------------------------------------------


# Built once: a Select is immutable, each use adds its own WHERE.
_REFUNDS = sa.select(refunds, attempts.c.public_id.label("attempt_public_id")).join(
    attempts, attempts.c.id == refunds.c.attempt_id
)


def to_refund(row: sa.Row[Any]) -> Refund:
    return Refund(
        id=row.id,
        public_id=row.public_id,
        attempt_id=row.attempt_id,
        attempt_public_id=row.attempt_public_id,
        amount=row.amount,
        overpayment_part=row.overpayment_part,
        principal_part=row.principal_part,
        late_fee_part=row.late_fee_part,
        status=RefundStatus(row.status),
        provider_refund_id=row.provider_refund_id,
        idempotency_key=row.idempotency_key,
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        reason=row.reason,
        ledger_entry_id=row.ledger_entry_id,
        invoice_entry_id=row.invoice_entry_id,
        failure_code=row.failure_code,
        failure_message=row.failure_message,
        created_at=to_utc(row.created_at),
        updated_at=to_utc(row.updated_at),
        completed_at=_aware(row.completed_at),
        version=row.version,
    )


def load_refund(conn: Connection, refund_id: int) -> Refund:
    row = conn.execute(_REFUNDS.where(refunds.c.id == refund_id)).first()
    if row is None:
        raise PaymentNotFound("no refund with this id")
    return to_refund(row)


def lock_refund(conn: Connection, refund_id: int) -> Refund:
    conn.execute(sa.select(refunds.c.id).where(refunds.c.id == refund_id).with_for_update())
    return load_refund(conn, refund_id)


def refunds_of(conn: Connection, attempt_id: int) -> list[Refund]:
    rows = conn.execute(_REFUNDS.where(refunds.c.attempt_id == attempt_id).order_by(refunds.c.id))
    return [to_refund(row) for row in rows]


def pending_refunds(conn: Connection, created_before: datetime, limit: int = 100) -> list[Refund]:
    rows = conn.execute(
        _REFUNDS
        .where(refunds.c.status == RefundStatus.PENDING.value, refunds.c.created_at <= to_utc(created_before))
        .order_by(refunds.c.id)
        .limit(limit)
    )
    return [to_refund(row) for row in rows]


def update_refund(conn: Connection, refund: Refund, *, now: datetime, **values: Any) -> Refund:
    result = conn.execute(
        refunds.update()
        .where(refunds.c.id == refund.id, refunds.c.version == refund.version)
        .values(version=refund.version + 1, updated_at=now, **values)
    )
    if result.rowcount != 1:
        raise PaymentConflict("the refund changed meanwhile; try again", refund=refund.public_id)
    return load_refund(conn, refund.id)


def refund_totals(conn: Connection, attempt_id: int) -> Any:
    """Sums over the attempt's refunds that are not failed: amount and each part."""
    live = refunds.c.status != RefundStatus.FAILED.value
    return conn.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(refunds.c.amount), 0).label("amount"),
            sa.func.coalesce(sa.func.sum(refunds.c.overpayment_part), 0).label("overpayment"),
            sa.func.coalesce(sa.func.sum(refunds.c.principal_part), 0).label("principal"),
            sa.func.coalesce(sa.func.sum(refunds.c.late_fee_part), 0).label("late_fee"),
        ).where(refunds.c.attempt_id == attempt_id, live)
    ).one()


# --- overpayments -------------------------------------------------------------------------


# Built once: a Select is immutable, each use adds its own WHERE.
_OVERPAYMENTS = (
    sa.select(
        overpayments,
        attempts.c.public_id.label("attempt_public_id"),
        invoices.c.fiscal_year.label("invoice_fiscal_year"),
        invoices.c.sequence.label("invoice_sequence"),
    )
    .join(attempts, attempts.c.id == overpayments.c.attempt_id)
    .join(invoices, invoices.c.id == overpayments.c.invoice_id)
)


def to_overpayment(row: sa.Row[Any]) -> Overpayment:
    return Overpayment(
        id=row.id,
        attempt_id=row.attempt_id,
        attempt_public_id=row.attempt_public_id,
        invoice_id=row.invoice_id,
        notice_number=make_notice_number(row.invoice_fiscal_year, row.invoice_sequence),
        reason=OverpaymentReason(row.reason),
        amount=row.amount,
        refunded_amount=row.refunded_amount,
        status=OverpaymentStatus(row.status),
        ledger_entry_id=row.ledger_entry_id,
        created_at=to_utc(row.created_at),
        updated_at=to_utc(row.updated_at),
    )


def overpayment_of(conn: Connection, attempt_id: int, *, lock: bool = False) -> Overpayment | None:
    if lock:
        conn.execute(sa.select(overpayments.c.id).where(overpayments.c.attempt_id == attempt_id).with_for_update())
    row = conn.execute(_OVERPAYMENTS.where(overpayments.c.attempt_id == attempt_id)).first()
    return None if row is None else to_overpayment(row)


def _decode_cursor(cursor: str) -> int:
    last_id = decode_cursor(cursor)
    if last_id is None:
        raise InvalidPaymentRequest("payment.invalid_cursor", "the cursor is not one this service gave out")
    return last_id


def list_overpayments(
    conn: Connection, *, status: str | None = None, cursor: str | None = None, limit: int = 50
) -> tuple[list[Overpayment], str | None]:
    """Overpayments, oldest first, ``limit`` (1..500) at a time; the cursor continues the list."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidPaymentRequest("payment.invalid_filter", f"limit must be 1..{MAX_PAGE}", field="limit")
    query = _OVERPAYMENTS
    if status is not None:
        try:
            query = query.where(overpayments.c.status == OverpaymentStatus(status).value)
        except ValueError:
            raise InvalidPaymentRequest("payment.invalid_filter", "status is open or refunded", field="status") from None
    if cursor is not None:
        query = query.where(overpayments.c.id > _decode_cursor(cursor))
    rows: Sequence[sa.Row[Any]] = conn.execute(query.order_by(overpayments.c.id).limit(limit + 1)).all()
    items = [to_overpayment(row) for row in rows[:limit]]
    return items, (encode_cursor(items[-1].id) if len(rows) > limit else None)
