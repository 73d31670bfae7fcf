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

from ledger.schema import accounts, lines
from reconciliation.detection import FEE_TYPES, expected_fee_sql
from reconciliation.matching import PAYOUT_TYPES
from reconciliation.model import ReconciliationConfig
from reconciliation.payouts import Compositions
from reconciliation.schema import bank_lines, payout_matches, payouts, provider_txns
from reconciliation.staging import account_id, signed_amount, tmp_breaks


def _clearing_balance(conn: Connection, clearing: int, through: date) -> int:
    value = conn.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(signed_amount()), 0)).where(
            lines.c.account_id == clearing, lines.c.effective_date <= through
        )
    )
    return int(value or 0)


def provider_figures(conn: Connection, day: date, config: ReconciliationConfig) -> tuple[dict[str, Any], list[dict[str, int]]]:
    """The day's provider totals by type, and its charges by JST hour: one pass over the day."""
    txn = provider_txns
    is_charge = txn.c.type.in_(FEE_TYPES)
    expected = sa.case((sa.and_(is_charge, txn.c.amount > 0), expected_fee_sql(txn.c.amount, config)), else_=0)
    rows = conn.execute(
        sa.select(
            txn.c.type,
            txn.c.created_hour,
            sa.func.count(),
            sa.func.sum(txn.c.amount),
            sa.func.sum(txn.c.fee),
            sa.func.sum(txn.c.net),
            sa.func.sum(expected),
        )
        .where(txn.c.business_date == day, txn.c.type.not_in(PAYOUT_TYPES))
        .group_by(txn.c.type, txn.c.created_hour)
    ).all()
    by_type: dict[str, dict[str, int]] = {}
    hours = {h: [0, 0] for h in range(24)}
    expected_fees = 0
    for kind, hour, n, amount, fee, net, fee_expected in rows:
        totals = by_type.setdefault(kind, {"count": 0, "amount": 0, "fee": 0, "net": 0})
        for name, value in (("count", n), ("amount", amount), ("fee", fee), ("net", net)):
            totals[name] += int(value)
        expected_fees += int(fee_expected or 0)
        if kind in FEE_TYPES:
            hours[int(hour)][0] += int(n)
            hours[int(hour)][1] += int(amount)
    charges = [v for k, v in by_type.items() if k in FEE_TYPES]
    refunds = by_type.get("refund", {"count": 0, "amount": 0})
    provider = {
        "by_type": dict(sorted(by_type.items())),
        "gross": sum(v["amount"] for v in charges),
        "charges": sum(v["count"] for v in charges),
        "refunds": refunds["amount"],
        "refund_count": refunds["count"],
        "fees": sum(v["fee"] for v in by_type.values()),
        "expected_fees": expected_fees,
        "net": sum(v["net"] for v in by_type.values()),
    }
    by_hour = [{"hour": h, "count": hours[h][0], "amount": hours[h][1]} for h in range(24)]
    return provider, by_hour


def collections_by_account(conn: Connection, day: date, config: ReconciliationConfig) -> list[dict[str, Any]]:
    """Where the day's clearing-account money went in our books: for every entry that moved 1200
    on the day (payout postings aside), its other lines by account, credit-positive. 1100:CODE is
    the 税目 CODE, 2100 過誤納金, 4300 延滞金."""
    clearing = account_id(conn, config.clearing_account)
    other = lines.alias("other")
    posted_payouts = sa.select(payout_matches.c.ledger_entry_id).where(payout_matches.c.ledger_entry_id.is_not(None))
    signed = sa.case((other.c.side == "C", other.c.amount), else_=-other.c.amount)
    by_account = (
        sa.select(other.c.account_id, sa.func.count(sa.distinct(other.c.entry_id)).label("n"), sa.func.sum(signed).label("amount"))
        .select_from(lines)
        .join(other, sa.and_(other.c.entry_id == lines.c.entry_id, other.c.account_id != clearing))
        .where(lines.c.account_id == clearing, lines.c.effective_date == day, lines.c.entry_id.not_in(posted_payouts))
        .group_by(other.c.account_id)
        .subquery("by_account")
    )
    rows = conn.execute(
        sa.select(accounts.c.code, accounts.c.name_ja, by_account.c.n, by_account.c.amount)
        .join(by_account, by_account.c.account_id == accounts.c.id)
        .order_by(accounts.c.code)
    ).all()
    result = []
    for code, name, count, amount in rows:
        tax_code = code.split(":", 1)[1] if ":" in code else code
        label = name.removeprefix("未収金 ").strip() if code.startswith("1100:") else name
        result.append({"account": code, "tax_code": tax_code, "name": label, "count": int(count), "amount": int(amount)})
    return result


def payouts_due(conn: Connection, day: date, compositions: Compositions) -> list[dict[str, Any]]:
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
        parts = compositions.of(conn, row.id)
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
    closing = opening + int(
        conn.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(signed_amount()), 0)).where(
                lines.c.account_id == account, lines.c.effective_date == day
            )
        )
        or 0
    )
    return {"opening": opening, "closing": closing, "movement": closing - opening, "day_outstanding": int(outstanding or 0)}


def breaks_by_category(conn: Connection) -> dict[str, dict[str, int]]:
    """From this run's findings (``recon_tmp_breaks``): count and Σ amount per category."""
    rows = conn.execute(
        sa.select(tmp_breaks.c.category, sa.func.count(), sa.func.sum(tmp_breaks.c.amount))
        .group_by(tmp_breaks.c.category)
        .order_by(tmp_breaks.c.category)
    ).all()
    return {category: {"count": int(n), "amount": int(a)} for category, n, a in rows}


def day_totals(
    conn: Connection, day: date, config: ReconciliationConfig, compositions: Compositions | None = None
) -> dict[str, Any]:
    provider, by_hour = provider_figures(conn, day, config)
    return {
        "date": day.isoformat(),
        "provider": provider,
        "collections": collections_by_account(conn, day, config),
        "by_hour": by_hour,
        "payouts": payouts_due(conn, day, compositions or Compositions()),
        "clearing": clearing(conn, day, config),
        "breaks": breaks_by_category(conn),
    }
