"""Pulling the provider's statement for a business day into ``recon_provider_txns`` and
``recon_payouts``.

Invariant: pulling is idempotent. A provider transaction is immutable, so it is inserted once
(``ON CONFLICT DO NOTHING``) and never rewritten; the only thing learnt later is which payout
swept it, written once. A payout's status can move on (paid → failed) and is updated.
Rows go in batches; nothing holds a whole day in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import islice
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from ledger.clock import JST, to_utc
from ledger.db import run_transaction
from reconciliation.model import ProviderPayout, ProviderTransaction
from reconciliation.schema import payouts, provider_txns
from reconciliation.sources import StatementSource

BATCH = 1000


@dataclass(frozen=True)
class PullResult:
    """How much the provider reported and how much of it was new to us."""

    transactions: int
    new_transactions: int
    payouts: int
    new_payouts: int


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a JST business day, as aware UTC instants."""
    start = datetime.combine(day, time(0), JST)
    return to_utc(start), to_utc(start + timedelta(days=1))


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def transaction_row(txn: ProviderTransaction, now: datetime) -> dict[str, Any]:
    return {
        "id": txn.id,
        "type": txn.type,
        "reporting_category": txn.reporting_category,
        "amount": txn.amount,
        "fee": txn.fee,
        "net": txn.net,
        "currency": txn.currency,
        "created_at": to_utc(txn.created),
        "business_date": txn.business_date,
        "created_hour": txn.hour,
        "available_on": txn.available_on,
        "source_id": txn.source,
        "match_ref": txn.match_ref,
        "payment_ref": txn.payment_ref,
        "notice_number": txn.notice_number,
        "attempt_ref": txn.attempt_ref,
        "payout_id": txn.payout_id,
        "pulled_at": now,
    }


def _batches(items: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def store_transactions(
    conn: Connection, batch: list[ProviderTransaction], *, now: datetime, payout_id: str | None = None
) -> int:
    """Insert the transactions we do not have yet; learn ``payout_id`` for those we have.
    Returns how many were new."""
    if not batch:
        return 0
    ids = [t.id for t in batch]
    known = set(conn.scalars(sa.select(provider_txns.c.id).where(provider_txns.c.id.in_(ids))))
    fresh = [transaction_row(t, now) for t in batch if t.id not in known]
    if payout_id is not None:
        for row in fresh:
            row["payout_id"] = row["payout_id"] or payout_id
    if fresh:
        conn.execute(_insert(conn, provider_txns).on_conflict_do_nothing(index_elements=["id"]), fresh)
    if payout_id is not None and known:
        conn.execute(
            provider_txns.update()
            .where(provider_txns.c.id.in_(sorted(known)), provider_txns.c.payout_id.is_(None))
            .values(payout_id=payout_id)
        )
    return len(fresh)


def store_payout(conn: Connection, payout: ProviderPayout, *, now: datetime) -> bool:
    """Insert a payout, or bring its status up to date. Returns True when it was new."""
    existing = conn.execute(
        sa.select(payouts.c.status, payouts.c.failure_code).where(payouts.c.id == payout.id)
    ).first()
    if existing is None:
        conn.execute(
            _insert(conn, payouts).on_conflict_do_nothing(index_elements=["id"]),
            {
                "id": payout.id,
                "amount": payout.amount,
                "currency": payout.currency,
                "status": payout.status,
                "created_at": to_utc(payout.created),
                "arrival_date": payout.arrival_date,
                "balance_txn_id": payout.balance_transaction,
                "failure_code": payout.failure_code,
                "pulled_at": now,
            },
        )
        return True
    if (existing.status, existing.failure_code) != (payout.status, payout.failure_code):
        conn.execute(
            payouts.update()
            .where(payouts.c.id == payout.id)
            .values(status=payout.status, failure_code=payout.failure_code)
        )
    return False


def pull_day(engine: Engine, source: StatementSource, day: date, *, now: datetime) -> PullResult:
    """Pull the day's balance transactions and the payouts due at the bank that day (with every
    transaction each payout swept, whatever day it was created)."""
    start, end = day_bounds(day)
    seen = new = 0

    def store(batch: list[ProviderTransaction], payout_id: str | None = None) -> int:
        return run_transaction(engine, lambda conn: store_transactions(conn, batch, now=now, payout_id=payout_id))

    for batch in _batches(source.balance_transactions(start, end)):
        seen += len(batch)
        new += store(batch)
    payout_seen = payout_new = 0
    for payout in list(source.payouts(day, day)):
        payout_seen += 1
        payout_new += run_transaction(engine, lambda conn, p=payout: store_payout(conn, p, now=now))  # type: ignore[misc]
        for batch in _batches(source.payout_transactions(payout.id)):
            seen += len(batch)
            new += store(batch, payout.id)
    return PullResult(seen, new, payout_seen, payout_new)
