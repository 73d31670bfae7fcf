"""Matching, set-based: ledger items ↔ provider transactions by key, payouts ↔ bank deposits by
amount within a date window. Every statement here works on whole sets in the database.

Invariants:
- a ledger item (its key) and a provider transaction each match **at most once**: the UNIQUE
  constraints of ``recon_matches`` make a second match fail, whatever the code does;
- likewise a payout and a bank line (``recon_payout_matches``);
- a re-run of a day remakes that day's ledger matches (deterministic: the same data gives the
  same pairs); payout matches are final, because the payout's posting was made with them.

Rules, in order:

1. ``key``: a provider transaction of the day and a ledger item of the day with the same key
   (``pi_…`` / ``re_…``). When the provider reports a key twice, the earliest transaction
   (created, id) is the one matched; the other is a ``duplicate`` break.
2. ``key_cross_day``: the same, when one side lies on another day of the window (± N days) and
   neither side was matched by that day's run.
3. payouts due at the bank on the day ↔ deposits of the same amount: first ``same_day`` (value
   date = arrival date), then ``date_window`` (value date in [arrival − before, arrival + after],
   the nearest date first; ties by id).
"""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.engine import Connection

from reconciliation.model import ReconciliationConfig
from reconciliation.schema import (
    bank_lines,
    matches,
    payout_matches,
    payouts,
    provider_txns,
)
from reconciliation.staging import analyze, index_filled, tmp_items, tmp_pairs, window

# Provider transactions that are payout mechanics, not money of a payment: checked per payout.
PAYOUT_TYPES = ("payout", "payout_failure", "payout_cancel")
ACTIVE_PAYOUT_STATUSES = ("pending", "in_transit", "paid")


def match_ledger(conn: Connection, day: date, config: ReconciliationConfig) -> int:
    """Rules 1 and 2; returns how many pairs the day's run holds.

    The day's pairs are computed afresh (the day's own earlier matches do not count as taken),
    then ``recon_matches`` is brought to them: pairs gone are deleted, amounts refreshed, new
    pairs inserted. A re-run over unchanged data therefore writes nothing.
    """
    lo, hi = window(day, config)
    analyze(conn, matches, provider_txns)  # both grow by a day at a time; plans follow their size
    other_day = matches.c.business_date != day
    # NOT EXISTS, not NOT IN: PostgreSQL plans it as a hash anti-join at any size.
    txn_taken = sa.exists().where(matches.c.provider_txn_id == provider_txns.c.id, other_day)
    ref_taken = sa.exists().where(matches.c.match_ref == tmp_items.c.match_ref, other_day)
    eligible = sa.and_(
        provider_txns.c.business_date >= lo,
        provider_txns.c.business_date <= hi,
        provider_txns.c.match_ref.is_not(None),
        provider_txns.c.type.not_in(PAYOUT_TYPES),
        ~txn_taken,
    )
    picked = (provider_txns.c.id, provider_txns.c.match_ref, provider_txns.c.amount, provider_txns.c.business_date)
    order = (provider_txns.c.match_ref, provider_txns.c.created_at, provider_txns.c.id)
    first: sa.ColumnElement[bool]
    if conn.dialect.name == "postgresql":
        # DISTINCT ON: the planner knows it yields one row per key (a filter on row_number() = 1
        # is estimated at 0.5 % of the rows, which led it into a million index probes).
        candidates = (
            sa.select(*picked).where(eligible).ext(distinct_on(provider_txns.c.match_ref)).order_by(*order).subquery("p")
        )
        first = sa.true()
    else:
        ranked = sa.func.row_number().over(partition_by=order[0], order_by=order[1:]).label("rn")
        candidates = sa.select(*picked, ranked).where(eligible).subquery("p")
        first = candidates.c.rn == 1
    same_day = sa.and_(candidates.c.business_date == day, tmp_items.c.in_day == 1)
    pairs = (
        sa.select(
            tmp_items.c.match_ref,
            candidates.c.id,
            sa.case((same_day, "key"), else_="key_cross_day"),
            tmp_items.c.amount,
            candidates.c.amount,
        )
        .join(candidates, candidates.c.match_ref == tmp_items.c.match_ref)
        .where(
            tmp_items.c.linked == 1,
            first,
            sa.or_(candidates.c.business_date == day, tmp_items.c.in_day == 1),
            ~ref_taken,
        )
    )
    columns = ["match_ref", "provider_txn_id", "rule", "ledger_amount", "provider_amount"]
    conn.execute(tmp_pairs.insert().from_select(columns, pairs))
    index_filled(conn, tmp_pairs, postgresql=False)

    # In key order: the unique indexes then grow at their right edge instead of taking a million
    # inserts at random places (13 s → see docs/reconciliation.md on PostgreSQL).
    insert_pairs = matches.insert().from_select(
        ["business_date", *columns],
        sa.select(sa.literal(day, sa.Date), *(tmp_pairs.c[c] for c in columns)).order_by(tmp_pairs.c.match_ref),
    )
    already = conn.scalar(sa.select(matches.c.match_ref).where(matches.c.business_date == day).limit(1))
    if already is None:  # the day's first run: every pair is new
        conn.execute(insert_pairs)
        return int(conn.scalar(sa.select(sa.func.count()).select_from(tmp_pairs)) or 0)

    same_pair = sa.and_(tmp_pairs.c.match_ref == matches.c.match_ref, tmp_pairs.c.provider_txn_id == matches.c.provider_txn_id)
    conn.execute(matches.delete().where(matches.c.business_date == day, ~sa.exists().where(same_pair)))
    changed = sa.or_(
        matches.c.rule != tmp_pairs.c.rule,
        matches.c.ledger_amount != tmp_pairs.c.ledger_amount,
        matches.c.provider_amount != tmp_pairs.c.provider_amount,
    )
    conn.execute(
        matches.update()
        .where(matches.c.business_date == day, same_pair, changed)
        .values(rule=tmp_pairs.c.rule, ledger_amount=tmp_pairs.c.ledger_amount, provider_amount=tmp_pairs.c.provider_amount)
    )
    # The day holds matches, so the planner knows the table is not empty and reads it once (a
    # hash anti-join); the new pairs are few on a re-run.
    known = sa.exists().where(matches.c.business_date == day, same_pair)
    conn.execute(
        matches.insert().from_select(
            ["business_date", *columns],
            sa.select(sa.literal(day, sa.Date), *(tmp_pairs.c[c] for c in columns)).where(~known),
        )
    )
    return int(conn.scalar(sa.select(sa.func.count()).select_from(tmp_pairs)) or 0)


def days_between(later: sa.ColumnElement[date], earlier: sa.ColumnElement[date], dialect: str) -> sa.ColumnElement[int]:
    if dialect == "sqlite":
        return sa.cast(sa.func.julianday(later) - sa.func.julianday(earlier), sa.Integer)
    return sa.cast(later - earlier, sa.Integer)


def match_payouts(conn: Connection, day: date, config: ReconciliationConfig) -> int:
    """Rule 3 for payouts due on ``day`` that have no deposit yet; returns how many matched now."""
    dialect = conn.dialect.name
    made = 0
    lo = day - timedelta(days=config.bank_days_before)
    hi = day + timedelta(days=config.bank_days_after)
    for rule in ("same_day", "date_window"):
        open_payouts = (
            sa.select(
                payouts.c.id,
                payouts.c.amount,
                payouts.c.arrival_date,
                sa.func.row_number()
                .over(partition_by=payouts.c.amount, order_by=(payouts.c.created_at, payouts.c.id))
                .label("rn"),
            )
            .where(
                payouts.c.arrival_date == day,
                payouts.c.status.in_(ACTIVE_PAYOUT_STATUSES),
                ~sa.exists().where(payout_matches.c.payout_id == payouts.c.id),
            )
            .subquery("po")
        )
        distance = sa.func.abs(days_between(bank_lines.c.value_date, sa.literal(day, sa.Date), dialect))
        in_range = (
            bank_lines.c.value_date == day
            if rule == "same_day"
            else sa.and_(bank_lines.c.value_date >= lo, bank_lines.c.value_date <= hi)
        )
        open_lines = (
            sa.select(
                bank_lines.c.id,
                bank_lines.c.amount,
                bank_lines.c.value_date,
                sa.func.row_number()
                .over(partition_by=bank_lines.c.amount, order_by=(distance, bank_lines.c.value_date, bank_lines.c.id))
                .label("rn"),
            )
            .where(
                bank_lines.c.amount > 0,
                in_range,
                ~sa.exists().where(payout_matches.c.bank_line_id == bank_lines.c.id),
            )
            .subquery("bl")
        )
        pairs = sa.select(
            sa.literal(day, sa.Date),
            open_payouts.c.id,
            open_lines.c.id,
            sa.literal(rule),
            days_between(open_lines.c.value_date, open_payouts.c.arrival_date, dialect),
        ).join(
            open_lines,
            sa.and_(open_lines.c.amount == open_payouts.c.amount, open_lines.c.rn == open_payouts.c.rn),
        )
        result = conn.execute(
            payout_matches.insert().from_select(
                ["business_date", "payout_id", "bank_line_id", "rule", "days_apart"], pairs
            )
        )
        made += max(result.rowcount or 0, 0)
    return made
