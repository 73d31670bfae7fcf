"""The ledger side of a run, staged in temporary tables (set-based, nothing in Python lists).

``recon_tmp_items``: one **ledger item** per provider key (``match_ref``): the clearing
account's movement (debit-positive) of every entry linked to that key, over the dates a run looks
at (the day ± the cross-day window). A payment booked in two entries (principal and 過誤納金)
is one item, as the provider sees one charge.

``recon_tmp_unlinked``: the day's clearing-account lines that no key explains (an entry posted
by hand, a link missing): each becomes an ``unexplained_residual`` break.

``recon_tmp_breaks``: what the detection finds, before it is merged into ``recon_breaks``.

The payout postings this package makes (``source_ref`` ``payout:po_…``) are not items: they are
checked against the payout itself.
"""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.schema import accounts, entries, lines
from reconciliation.model import ReconciliationConfig
from reconciliation.sources import PAYOUT_REF_PREFIX, STRIPE_REF_PREFIX, LedgerLinks

_temp = sa.MetaData()

tmp_items = sa.Table(
    "recon_tmp_items",
    _temp,
    sa.Column("match_ref", sa.String(255), primary_key=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("first_date", sa.Date, nullable=False),
    sa.Column("in_day", sa.Integer, nullable=False),
    sa.Column("entry_id", sa.BigInteger, nullable=False),
    sa.Column("entry_count", sa.Integer, nullable=False),
    prefixes=["TEMPORARY"],
)

tmp_unlinked = sa.Table(
    "recon_tmp_unlinked",
    _temp,
    sa.Column("entry_id", sa.BigInteger, primary_key=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
    prefixes=["TEMPORARY"],
)

tmp_breaks = sa.Table(
    "recon_tmp_breaks",
    _temp,
    sa.Column("break_key", sa.String(300), primary_key=True),
    sa.Column("category", sa.String(24), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("provider_amount", sa.BigInteger, nullable=True),
    sa.Column("ledger_amount", sa.BigInteger, nullable=True),
    sa.Column("provider_txn_id", sa.String(64), nullable=True),
    sa.Column("match_ref", sa.String(255), nullable=True),
    sa.Column("ledger_entry_id", sa.BigInteger, nullable=True),
    sa.Column("payout_id", sa.String(64), nullable=True),
    sa.Column("bank_line_id", sa.BigInteger, nullable=True),
    sa.Column("notice_number", sa.String(32), nullable=True),
    sa.Column("detail", sa.String(500), nullable=False),
    prefixes=["TEMPORARY"],
)

TEMP_TABLES = (tmp_items, tmp_unlinked, tmp_breaks)


def window(day: date, config: ReconciliationConfig) -> tuple[date, date]:
    return day - timedelta(days=config.cross_day_window), day + timedelta(days=config.cross_day_window)


def account_id(conn: Connection, code: str) -> int:
    found = conn.scalar(sa.select(accounts.c.id).where(accounts.c.code == code))
    if found is None:
        from ledger.errors import UnknownAccount

        raise UnknownAccount(f"account {code!r} does not exist", account=code)
    return int(found)


def create_temp_tables(conn: Connection) -> None:
    drop_temp_tables(conn)
    for table in TEMP_TABLES:
        table.create(conn)


def drop_temp_tables(conn: Connection) -> None:
    for table in TEMP_TABLES:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table.name}")


def signed_amount() -> sa.ColumnElement[int]:
    return sa.case((lines.c.side == "D", lines.c.amount), else_=-lines.c.amount)


def stage_ledger(conn: Connection, day: date, config: ReconciliationConfig, links: LedgerLinks) -> None:
    """Fill ``recon_tmp_items`` and ``recon_tmp_unlinked`` for ``day`` (see the module docstring)."""
    clearing = account_id(conn, config.clearing_account)
    lo, hi = window(day, config)
    prefix_len = len(STRIPE_REF_PREFIX)
    convention = sa.case(
        (entries.c.source_ref.like(f"{STRIPE_REF_PREFIX}%"), sa.func.substr(entries.c.source_ref, prefix_len + 1)),
        else_=sa.null(),
    )
    query = (
        sa.select(
            lines.c.entry_id.label("entry_id"),
            lines.c.effective_date.label("effective_date"),
            signed_amount().label("amount"),
            entries.c.source_ref.label("source_ref"),
        )
        .join(entries, entries.c.id == lines.c.entry_id)
        .where(
            lines.c.account_id == clearing,
            lines.c.effective_date >= lo,
            lines.c.effective_date <= hi,
            sa.not_(entries.c.source_ref.like(f"{PAYOUT_REF_PREFIX}%")),
        )
    )
    linked = links.select()
    if linked is not None:
        link = linked.distinct().subquery("links")
        query = query.add_columns(sa.func.coalesce(link.c.match_ref, convention).label("match_ref")).outerjoin(
            link, link.c.entry_id == lines.c.entry_id
        )
    else:
        query = query.add_columns(convention.label("match_ref"))
    moves = query.subquery("moves")
    in_day = sa.func.max(sa.case((moves.c.effective_date == day, 1), else_=0))
    conn.execute(
        tmp_items.insert().from_select(
            ["match_ref", "amount", "first_date", "in_day", "entry_id", "entry_count"],
            sa.select(
                moves.c.match_ref,
                sa.func.sum(moves.c.amount),
                sa.func.min(moves.c.effective_date),
                in_day,
                sa.func.min(moves.c.entry_id),
                sa.func.count(sa.distinct(moves.c.entry_id)),
            )
            .where(moves.c.match_ref.is_not(None))
            .group_by(moves.c.match_ref),
        )
    )
    conn.execute(
        tmp_unlinked.insert().from_select(
            ["entry_id", "amount"],
            sa.select(moves.c.entry_id, sa.func.sum(moves.c.amount))
            .where(moves.c.match_ref.is_(None), moves.c.effective_date == day)
            .group_by(moves.c.entry_id),
        )
    )
