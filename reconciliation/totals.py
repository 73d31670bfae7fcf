"""The day's figures for people: gross / fees / net, collections per 税目 and per hour, payouts,
the clearing account, and breaks per category. Each figure is one aggregate query.

Clearing account (1200): ``opening`` and ``closing`` are its ledger balance at the end of the day
before and of the day; ``day_outstanding`` is what the day's provider transactions still hold at
the provider — their gross not yet swept by a payout that reached the bank and was posted. Once
every payout of the day's money has landed it is 0: the clearing account nets to zero.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.schema import accounts, entries, lines
from reconciliation.detection import FEE_TYPES, expected_fee_sql
from reconciliation.matching import PAYOUT_TYPES
from reconciliation.model import ReconciliationConfig
from reconciliation.schema import bank_lines, payout_matches, payouts, provider_txns
from reconciliation.sources import PAYOUT_REF_PREFIX
from reconciliation.staging import account_id, signed_amount, tmp_breaks
from reconciliation.payouts import composition


def _clearing_balance(conn: Connection, clearing: int, through: date) -> int:
    value = conn.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(signed_amount()), 0)).where(
            lines.c.account_id == clearing, lines.c.effective_date <= through
        )
    )
    return int(value or 0)


def provider_totals(conn: Connection, day: date, config: ReconciliationConfig) -> dict[str, Any]:
    txn = provider_txns
    rows = conn.execute(
        sa.select(
            txn.c.type,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(txn.c.amount), 0),
            sa.func.coalesce(sa.func.sum(txn.c.fee), 0),
            sa.func.coalesce(sa.func.sum(txn.c.net), 0),
        )
        .where(txn.c.business_date == day, txn.c.type.not_in(PAYOUT_TYPES))
        .group_by(txn.c.type)
        .order_by(txn.c.type)
    ).all()
    by_type = {kind: {"count": int(n), "amount": int(a), "fee": int(f), "net": int(t)} for kind, n, a, f, t in rows}
    expected = conn.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(expected_fee_sql(txn.c.amount, config)), 0)).where(
            txn.c.business_date == day, txn.c.type.in_(FEE_TYPES), txn.c.amount > 0
        )
    )
    charges = [v for k, v in by_type.items() if k in FEE_TYPES]
    refunds = by_type.get("refund", {"count": 0, "amount": 0})
    return {
        "by_type": by_type,
        "gross": sum(v["amount"] for v in charges),
        "charges": sum(v["count"] for v in charges),
        "refunds": refunds["amount"],
        "refund_count": refunds["count"],
        "fees": sum(v["fee"] for v in by_type.values()),
        "expected_fees": int(expected or 0),
        "net": sum(v["net"] for v in by_type.values()),
    }


def collections_by_account(conn: Connection, day: date, config: ReconciliationConfig) -> list[dict[str, Any]]:
    """Where the day's clearing-account money went in our books: for every entry that moved 1200
    on the day (payout postings aside), its other lines by account, credit-positive. 1100:CODE is
    the 税目 CODE, 2100 過誤納金, 4300 延滞金."""
    clearing = account_id(conn, config.clearing_account)
    other = lines.alias("other")
    moved = (
        sa.select(lines.c.entry_id)
        .join(entries, entries.c.id == lines.c.entry_id)
        .where(
            lines.c.account_id == clearing,
            lines.c.effective_date == day,
            sa.not_(entries.c.source_ref.like(f"{PAYOUT_REF_PREFIX}%")),
        )
        .distinct()
        .subquery("moved")
    )
    signed = sa.case((other.c.side == "C", other.c.amount), else_=-other.c.amount)
    rows = conn.execute(
        sa.select(accounts.c.code, accounts.c.name_ja, sa.func.count(sa.distinct(other.c.entry_id)), sa.func.sum(signed))
        .select_from(moved)
        .join(other, other.c.entry_id == moved.c.entry_id)
        .join(accounts, accounts.c.id == other.c.account_id)
        .where(other.c.account_id != clearing)
        .group_by(accounts.c.code, accounts.c.name_ja)
        .order_by(accounts.c.code)
    ).all()
    result = []
    for code, name, count, amount in rows:
        tax_code = code.split(":", 1)[1] if ":" in code else code
        label = name.removeprefix("未収金 ").strip() if code.startswith("1100:") else name
        result.append({"account": code, "tax_code": tax_code, "name": label, "count": int(count), "amount": int(amount)})
    return result


def collections_by_hour(conn: Connection, day: date) -> list[dict[str, int]]:
    txn = provider_txns
    rows = conn.execute(
        sa.select(txn.c.created_hour, sa.func.count(), sa.func.sum(txn.c.amount))
        .where(txn.c.business_date == day, txn.c.type.in_(FEE_TYPES))
        .group_by(txn.c.created_hour)
    ).all()
    found = {int(hour): (int(n), int(a)) for hour, n, a in rows}
    return [{"hour": h, "count": found.get(h, (0, 0))[0], "amount": found.get(h, (0, 0))[1]} for h in range(24)]


def payouts_due(conn: Connection, day: date) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(
            payouts.c.id, payouts.c.amount, payouts.c.status, payouts.c.failure_code, payout_matches.c.rule,
            payout_matches.c.days_apart, payout_matches.c.ledger_entry_id, bank_lines.c.value_date, bank_lines.c.id.label("line"),
        )  # fmt: skip
        .outerjoin(payout_matches, payout_matches.c.payout_id == payouts.c.id)
        .outerjoin(bank_lines, bank_lines.c.id == payout_matches.c.bank_line_id)
        .where(payouts.c.arrival_date == day)
        .order_by(payouts.c.id)
    ).all()
    result = []
    for row in rows:
        parts = composition(conn, row.id)
        result.append(
            {
                "id": row.id,
                "amount": int(row.amount),
                "status": row.status,
                "failure_code": row.failure_code,
                "transactions": parts.count,
                "gross": parts.gross,
                "fees": parts.fees,
                "bank_line": row.line,
                "bank_date": row.value_date.isoformat() if row.value_date else None,
                "rule": row.rule,
                "days_apart": row.days_apart,
                "ledger_entry": row.ledger_entry_id,
            }
        )
    return result


def clearing(conn: Connection, day: date, config: ReconciliationConfig) -> dict[str, int]:
    account = account_id(conn, config.clearing_account)
    landed = sa.exists().where(
        payout_matches.c.payout_id == provider_txns.c.payout_id, payout_matches.c.ledger_entry_id.is_not(None)
    )
    outstanding = conn.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(provider_txns.c.amount), 0)).where(
            provider_txns.c.business_date == day, provider_txns.c.type.not_in(PAYOUT_TYPES), ~landed
        )
    )
    opening = _clearing_balance(conn, account, day - timedelta(days=1))
    closing = _clearing_balance(conn, account, day)
    return {"opening": opening, "closing": closing, "movement": closing - opening, "day_outstanding": int(outstanding or 0)}


def breaks_by_category(conn: Connection) -> dict[str, dict[str, int]]:
    """From this run's findings (``recon_tmp_breaks``): count and Σ amount per category."""
    rows = conn.execute(
        sa.select(tmp_breaks.c.category, sa.func.count(), sa.func.sum(tmp_breaks.c.amount))
        .group_by(tmp_breaks.c.category)
        .order_by(tmp_breaks.c.category)
    ).all()
    return {category: {"count": int(n), "amount": int(a)} for category, n, a in rows}


def day_totals(conn: Connection, day: date, config: ReconciliationConfig) -> dict[str, Any]:
    return {
        "date": day.isoformat(),
        "provider": provider_totals(conn, day, config),
        "collections": collections_by_account(conn, day, config),
        "by_hour": collections_by_hour(conn, day),
        "payouts": payouts_due(conn, day),
        "clearing": clearing(conn, day, config),
        "breaks": breaks_by_category(conn),
    }
