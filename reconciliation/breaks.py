"""Merging a run's findings into the exceptions queue, and reading the queue.

Invariants (what staff can rely on across re-runs):
- one row per (day, key): a re-run updates a break it finds again, never duplicates it;
- a **resolved** break stays resolved, whatever a re-run finds;
- an open or escalated break a re-run no longer finds becomes ``cleared`` (its cause went away:
  the late bank line arrived, a late webhook was applied) — or ``healed`` when this run fed the
  missing payment through the webhook inbox;
- a cleared or healed break found again is re-opened;
- every automatic transition leaves a note (``clear``, ``heal``, ``reopen``) in the break's history.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.clock import to_utc
from ledger.schema import accounts, lines
from reconciliation.errors import BreakNotFound
from reconciliation.model import Break, BreakCategory, BreakNote, BreakStatus
from reconciliation.schema import break_notes, breaks
from reconciliation.staging import tmp_breaks

SYSTEM_ACTOR = ("system:reconciliation", "nofu reconciliation")
CARRIED = ("category", "amount", "provider_amount", "ledger_amount", "provider_txn_id", "match_ref",
           "ledger_entry_id", "payout_id", "bank_line_id", "notice_number", "detail")  # fmt: skip


def _note_for(conn: Connection, where: sa.ColumnElement[bool], kind: str, body: str, now: datetime) -> None:
    conn.execute(
        break_notes.insert().from_select(
            ["break_id", "kind", "actor_id", "actor_name", "body", "created_at"],
            sa.select(
                breaks.c.id, sa.literal(kind), sa.literal(SYSTEM_ACTOR[0]), sa.literal(SYSTEM_ACTOR[1]),
                sa.literal(body), sa.literal(now, sa.DateTime(timezone=True)),
            ).where(where),  # fmt: skip
        )
    )


def merge(conn: Connection, day: date, run_number: int, *, healed_keys: Collection[str], now: datetime) -> None:
    """Merge ``recon_tmp_breaks`` into ``recon_breaks`` for ``day`` (see the module invariants)."""
    of_day = breaks.c.business_date == day
    found = sa.exists().where(tmp_breaks.c.break_key == breaks.c.break_key)
    open_now = breaks.c.status.in_((BreakStatus.OPEN.value, BreakStatus.ESCALATED.value))

    healed = sorted(healed_keys)
    if healed:
        heal_where = sa.and_(of_day, ~found, open_now, breaks.c.break_key.in_(healed))
        _note_for(conn, heal_where, "heal", f"run {run_number}: recorded through the webhook inbox", now)
        conn.execute(
            breaks.update().where(heal_where).values(
                status=BreakStatus.HEALED.value, detected=False, version=breaks.c.version + 1, updated_at=now
            )
        )
    gone = sa.and_(of_day, ~found, open_now)
    _note_for(conn, gone, "clear", f"run {run_number}: no longer found", now)
    conn.execute(
        breaks.update().where(gone).values(
            status=BreakStatus.CLEARED.value, detected=False, version=breaks.c.version + 1, updated_at=now
        )
    )
    conn.execute(breaks.update().where(of_day, ~found, breaks.c.detected.is_(True)).values(detected=False))

    back = sa.and_(of_day, found, breaks.c.status.in_((BreakStatus.CLEARED.value, BreakStatus.HEALED.value)))
    _note_for(conn, back, "reopen", f"run {run_number}: found again", now)
    conn.execute(
        breaks.update().where(back).values(status=BreakStatus.OPEN.value, version=breaks.c.version + 1, updated_at=now)
    )

    conn.execute(
        breaks.update()
        .where(of_day, breaks.c.break_key == tmp_breaks.c.break_key)
        .values(**{column: tmp_breaks.c[column] for column in CARRIED}, detected=True, last_run=run_number)
    )
    # New keys are marked first and inserted from the temporary table: the insert never reads
    # the table it writes (see staging.tmp_pairs for why that matters on PostgreSQL).
    conn.execute(
        tmp_breaks.update()
        .where(sa.exists().where(breaks.c.business_date == day, breaks.c.break_key == tmp_breaks.c.break_key))
        .values(known=1)
    )
    conn.execute(
        breaks.insert().from_select(
            ["business_date", "break_key", *CARRIED, "status", "detected", "first_run", "last_run", "version",
             "created_at", "updated_at"],  # fmt: skip
            sa.select(
                sa.literal(day, sa.Date), tmp_breaks.c.break_key, *(tmp_breaks.c[c] for c in CARRIED),
                sa.literal(BreakStatus.OPEN.value), sa.true(), sa.literal(run_number), sa.literal(run_number),
                sa.literal(1), sa.literal(now, sa.DateTime(timezone=True)), sa.literal(now, sa.DateTime(timezone=True)),
            ).where(tmp_breaks.c.known == 0),  # fmt: skip
        )
    )
    _fill_tax_codes(conn, day)


def _fill_tax_codes(conn: Connection, day: date) -> None:
    """The 税目 of a break whose ledger entry credits or debits a receivable 1100:CODE."""
    code = (
        sa.select(sa.func.min(sa.func.substr(accounts.c.code, 6)))
        .select_from(lines)
        .join(accounts, accounts.c.id == lines.c.account_id)
        .where(lines.c.entry_id == breaks.c.ledger_entry_id, accounts.c.code.like("1100:%"))
        .scalar_subquery()
    )
    conn.execute(
        breaks.update()
        .where(breaks.c.business_date == day, breaks.c.ledger_entry_id.is_not(None), breaks.c.tax_code.is_(None))
        .values(tax_code=code)
    )


def to_break(row: sa.Row[object]) -> Break:
    return Break(
        id=row.id,
        business_date=row.business_date,
        key=row.break_key,
        category=BreakCategory(row.category),
        status=BreakStatus(row.status),
        amount=row.amount,
        provider_amount=row.provider_amount,
        ledger_amount=row.ledger_amount,
        provider_txn_id=row.provider_txn_id,
        match_ref=row.match_ref,
        ledger_entry_id=row.ledger_entry_id,
        payout_id=row.payout_id,
        bank_line_id=row.bank_line_id,
        tax_code=row.tax_code,
        notice_number=row.notice_number,
        detail=row.detail,
        detected=bool(row.detected),
        assignee=row.assignee,
        resolution=row.resolution,
        resolved_by=row.resolved_by,
        resolved_at=to_utc(row.resolved_at) if row.resolved_at is not None else None,
        version=row.version,
        updated_at=to_utc(row.updated_at),
    )


def list_breaks(conn: Connection, day: date, *, limit: int | None = None) -> list[Break]:
    """The day's breaks, open ones first, then by category and key (a stable order for reports)."""
    order = sa.case((breaks.c.status.in_(("open", "escalated")), 0), else_=1)
    query = sa.select(breaks).where(breaks.c.business_date == day).order_by(order, breaks.c.category, breaks.c.break_key)
    if limit is not None:
        query = query.limit(limit)
    return [to_break(row) for row in conn.execute(query)]


def get_break(conn: Connection, day: date, break_id: int, *, lock: bool = False) -> Break:
    query = sa.select(breaks).where(breaks.c.business_date == day, breaks.c.id == break_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise BreakNotFound(f"no break {break_id} on {day.isoformat()}", break_id=break_id, date=day.isoformat())
    return to_break(row)


def notes_of(conn: Connection, break_id: int) -> list[BreakNote]:
    return [
        BreakNote(r.id, r.break_id, r.kind, r.actor_id, r.actor_name, r.body, to_utc(r.created_at))
        for r in conn.execute(sa.select(break_notes).where(break_notes.c.break_id == break_id).order_by(break_notes.c.id))
    ]


def counts_by_status(conn: Connection, day: date) -> dict[str, int]:
    rows = conn.execute(
        sa.select(breaks.c.status, sa.func.count()).where(breaks.c.business_date == day).group_by(breaks.c.status)
    )
    return {status: int(n) for status, n in rows}
