"""Notice-number sequences per fiscal year, allocated under a row lock.

Invariant: a year's ``next_sequence`` is above every sequence used in that year, whether this
module handed it out or the tax system assigned it (``note_assigned`` moves it past those), so an
allocated number is never already taken. Allocation takes ranges, so a bulk import asks once per
batch. The lock is held to the end of the caller's transaction: sequences are gapless in practice
(a rolled-back transaction gives its range back).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from invoices.errors import SequenceExhausted
from invoices.notice_number import MAX_SEQUENCE
from invoices.schema import number_sequences


def _ensure_row(conn: Connection, fiscal_year: int) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(number_sequences)
        .values(fiscal_year=fiscal_year, next_sequence=1)
        .on_conflict_do_nothing(index_elements=["fiscal_year"])
    )


def lock_year(conn: Connection, fiscal_year: int) -> int:
    """Lock the year's sequence row (creating it) and return its next sequence."""
    _ensure_row(conn, fiscal_year)
    next_sequence: int = conn.execute(
        sa.select(number_sequences.c.next_sequence)
        .where(number_sequences.c.fiscal_year == fiscal_year)
        .with_for_update()
    ).scalar_one()
    return next_sequence


def allocate(conn: Connection, fiscal_year: int, count: int = 1) -> int:
    """Reserve ``count`` consecutive sequences in ``fiscal_year``; return the first."""
    if count < 1:
        raise ValueError("count must be positive")
    first = lock_year(conn, fiscal_year)
    if first + count - 1 > MAX_SEQUENCE:
        raise SequenceExhausted(
            f"fiscal year {fiscal_year} has {max(0, MAX_SEQUENCE - first + 1)} notice numbers left, "
            f"{count} needed",
            fiscal_year=fiscal_year,
        )
    conn.execute(
        number_sequences.update()
        .where(number_sequences.c.fiscal_year == fiscal_year)
        .values(next_sequence=first + count)
    )
    return first


def note_assigned(conn: Connection, fiscal_year: int, highest_sequence: int) -> None:
    """Record that the tax system used sequences up to ``highest_sequence`` in that year."""
    current = lock_year(conn, fiscal_year)
    if highest_sequence >= current:
        conn.execute(
            number_sequences.update()
            .where(number_sequences.c.fiscal_year == fiscal_year)
            .values(next_sequence=highest_sequence + 1)
        )
