"""Period close: once a business day is closed, nothing can be posted on or before it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.clock import to_utc, utc_now
from ledger.db import execute
from ledger.errors import ClosedPeriod, InvalidEntry
from ledger.schema import chain_head, period_closes


@dataclass(frozen=True)
class PeriodClose:
    business_date: date
    closed_at: datetime
    closed_by: str
    head_seq: int
    head_hash: str


_CLOSED_THROUGH = sa.select(chain_head.c.closed_through).where(chain_head.c.id == 1)  # built once


def closed_through(conn: Connection) -> date | None:
    return execute(conn, _CLOSED_THROUGH).scalar()


def close_day(conn: Connection, business_date: date, *, closed_by: str) -> PeriodClose:
    """Close every business day through ``business_date``; records who closed it and the chain
    head at that moment (an anchor auditors can keep outside the system)."""
    if not isinstance(business_date, date) or isinstance(business_date, datetime):
        raise InvalidEntry("business_date must be a date")
    if not closed_by.strip():
        raise InvalidEntry("closed_by must name who closes the day")
    head = conn.execute(
        sa.select(chain_head.c.seq, chain_head.c.hash, chain_head.c.closed_through)
        .where(chain_head.c.id == 1)
        .with_for_update()
    ).one()
    if head.closed_through is not None and business_date <= head.closed_through:
        raise ClosedPeriod(
            f"business days through {head.closed_through} are already closed",
            closed_through=head.closed_through.isoformat(),
        )
    record = PeriodClose(business_date, utc_now(), closed_by, head.seq, head.hash)
    conn.execute(period_closes.insert().values(**record.__dict__))
    conn.execute(
        chain_head.update().where(chain_head.c.id == 1).values(closed_through=business_date)
    )
    return record


def list_closes(conn: Connection) -> list[PeriodClose]:
    return [
        PeriodClose(r.business_date, to_utc(r.closed_at), r.closed_by, r.head_seq, r.head_hash)
        for r in conn.execute(sa.select(period_closes).order_by(period_closes.c.business_date))
    ]
