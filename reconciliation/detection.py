"""Finding the day's breaks, each with its amount and the records involved, into
``recon_tmp_breaks`` — one INSERT … SELECT per category, nothing in Python lists.

Each break has a stable key ``<category>:<record>`` so a re-run finds the same break again:

=============================================  =====================================================
key                                            found when
=============================================  =====================================================
``missing_in_ledger:<txn>``                    a provider transaction of the day matched nothing
                                               and is the first with its key
``duplicate:<txn>``                            … and an earlier transaction has the same key
``missing_at_provider:<key>``                  a ledger item of the day matched no provider record
``amount_mismatch:<key>``                      a match of the day whose two amounts differ
``fee_variance:<txn>``                         a charge's fee ≠ the contracted rate's fee
``amount_mismatch:payout:<po>``                a payout ≠ Σ net of what it swept
``payout_failed:<po>``                         a payout due that day failed
``payout_in_transit:<po>``                     a payout due that day has no bank deposit
``unexplained_residual:entry:<id>``            a clearing-account entry of the day no key explains
``unexplained_residual:bank:<line>``           a provider deposit that matches no payout
=============================================  =====================================================

Amounts are signed yen: the provider's amount for provider records, the ledger's for ledger items,
provider − ledger for mismatches, actual − expected for fees.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconciliation.matching import ACTIVE_PAYOUT_STATUSES, PAYOUT_TYPES
from reconciliation.model import ReconciliationConfig
from reconciliation.payouts import Compositions
from reconciliation.schema import (
    bank_lines,
    matches,
    payout_matches,
    payouts,
    provider_txns,
)
from reconciliation.staging import (
    analyze,
    tmp_breaks,
    tmp_items,
    tmp_pairs,
    tmp_unmatched,
)

COLUMNS = [
    "break_key", "category", "amount", "provider_amount", "ledger_amount", "provider_txn_id", "match_ref",
    "ledger_entry_id", "payout_id", "bank_line_id", "notice_number", "detail",
]  # fmt: skip
FEE_TYPES = ("charge", "payment")


Col = sa.ColumnElement[Any]


def _row(
    key: Col,
    category: str,
    amount: Col,
    *,
    provider_amount: Col | None = None,
    ledger_amount: Col | None = None,
    provider_txn_id: Col | None = None,
    match_ref: Col | None = None,
    ledger_entry_id: Col | None = None,
    payout_id: Col | None = None,
    bank_line_id: Col | None = None,
    notice_number: Col | None = None,
    detail: str,
) -> list[Col]:
    """The columns of one category's SELECT, in ``COLUMNS`` order (typed NULLs where it has none)."""

    def value(element: Col | None, kind: sa.types.TypeEngine[Any]) -> Col:
        return element if element is not None else sa.null().cast(kind)

    return [
        key, sa.literal(category), amount, value(provider_amount, sa.BigInteger()), value(ledger_amount, sa.BigInteger()),
        value(provider_txn_id, sa.String()), value(match_ref, sa.String()), value(ledger_entry_id, sa.BigInteger()),
        value(payout_id, sa.String()), value(bank_line_id, sa.BigInteger()), value(notice_number, sa.String()),
        sa.literal(detail),
    ]  # fmt: skip


def _add(conn: Connection, select: sa.Select[tuple[object, ...]]) -> None:
    conn.execute(tmp_breaks.insert().from_select(COLUMNS, select))


def expected_fee_sql(amount: sa.ColumnElement[int], config: ReconciliationConfig) -> sa.ColumnElement[int]:
    """``config.expected_fee`` in SQL, with integer arithmetic only (the rate as a fraction p/q)."""
    p, q = config.fee_rate.as_integer_ratio()
    if config.fee_rounding == "ROUND_HALF_UP":
        return (amount * (2 * p) + q) // (2 * q)
    if config.fee_rounding == "ROUND_UP":
        return (amount * p + (q - 1)) // q
    return (amount * p) // q


def detect(
    conn: Connection, day: date, config: ReconciliationConfig, compositions: Compositions | None = None
) -> None:
    """Fill ``recon_tmp_breaks`` with every break of ``day`` (see the module docstring)."""
    txn = provider_txns
    # The day's provider money no match took: one pass, then the few are classified.
    conn.execute(
        tmp_unmatched.insert().from_select(
            ["id"],
            sa.select(txn.c.id).where(
                txn.c.business_date == day,
                txn.c.type.not_in(PAYOUT_TYPES),
                ~sa.exists().where(matches.c.provider_txn_id == txn.c.id),
            ),
        )
    )
    earlier = provider_txns.alias("earlier")
    has_twin = sa.exists().where(
        earlier.c.match_ref == txn.c.match_ref,
        earlier.c.type == txn.c.type,
        sa.or_(
            earlier.c.created_at < txn.c.created_at,
            sa.and_(earlier.c.created_at == txn.c.created_at, earlier.c.id < txn.c.id),
        ),
    )
    for category, condition, detail in (
        ("duplicate", has_twin, "決済事業者が同じ決済を重複して計上"),
        ("missing_in_ledger", ~has_twin, "決済事業者の取引が帳簿にない"),
    ):
        _add(
            conn,
            sa.select(
                *_row(
                    sa.literal(f"{category}:") + txn.c.id, category, txn.c.amount, provider_amount=txn.c.amount,
                    provider_txn_id=txn.c.id, match_ref=txn.c.match_ref, notice_number=txn.c.notice_number,
                    payout_id=txn.c.payout_id, detail=detail,
                )  # fmt: skip
            )
            .select_from(tmp_unmatched)
            .join(txn, txn.c.id == tmp_unmatched.c.id)
            .where(condition),
        )

    matched_item = sa.exists().where(matches.c.match_ref == tmp_items.c.match_ref)
    _add(
        conn,
        sa.select(
            *_row(
                sa.literal("missing_at_provider:") + tmp_items.c.match_ref, "missing_at_provider", tmp_items.c.amount,
                ledger_amount=tmp_items.c.amount, match_ref=tmp_items.c.match_ref, ledger_entry_id=tmp_items.c.entry_id,
                detail="帳簿にあるが決済事業者の取引がない",
            )  # fmt: skip
        ).where(tmp_items.c.linked == 1, tmp_items.c.in_day == 1, ~matched_item),
    )

    # The day's matches are exactly this run's pairs.
    _add(
        conn,
        sa.select(
            *_row(
                sa.literal("amount_mismatch:") + tmp_pairs.c.match_ref, "amount_mismatch",
                tmp_pairs.c.provider_amount - tmp_pairs.c.ledger_amount, provider_amount=tmp_pairs.c.provider_amount,
                ledger_amount=tmp_pairs.c.ledger_amount, provider_txn_id=tmp_pairs.c.provider_txn_id,
                match_ref=tmp_pairs.c.match_ref, ledger_entry_id=tmp_items.c.entry_id, notice_number=txn.c.notice_number,
                detail="帳簿と決済事業者で金額が異なる",
            )  # fmt: skip
        )
        .select_from(tmp_pairs)
        .join(txn, txn.c.id == tmp_pairs.c.provider_txn_id)
        .join(tmp_items, tmp_items.c.match_ref == tmp_pairs.c.match_ref)
        .where(tmp_pairs.c.ledger_amount != tmp_pairs.c.provider_amount),
    )

    expected = expected_fee_sql(txn.c.amount, config)
    _add(
        conn,
        sa.select(
            *_row(
                sa.literal("fee_variance:") + txn.c.id, "fee_variance", txn.c.fee - expected, provider_amount=txn.c.fee,
                ledger_amount=expected, provider_txn_id=txn.c.id, match_ref=txn.c.match_ref,
                notice_number=txn.c.notice_number, payout_id=txn.c.payout_id, detail="手数料が契約料率と異なる",
            )  # fmt: skip
        ).where(txn.c.business_date == day, txn.c.type.in_(FEE_TYPES), txn.c.amount > 0, txn.c.fee != expected),
    )

    _detect_payouts(conn, day, compositions or Compositions())

    _add(
        conn,
        sa.select(
            *_row(
                sa.literal("unexplained_residual:entry:") + sa.cast(tmp_items.c.entry_id, sa.String),
                "unexplained_residual", tmp_items.c.amount, ledger_amount=tmp_items.c.amount,
                ledger_entry_id=tmp_items.c.entry_id, detail="決済代行預け金の仕訳に対応する決済がない",
            )  # fmt: skip
        ).where(tmp_items.c.linked == 0, tmp_items.c.in_day == 1, tmp_items.c.amount != 0),
    )
    if config.payout_markers:
        marked = sa.or_(
            *(sa.func.lower(bank_lines.c.description).like(f"%{marker.lower()}%") for marker in config.payout_markers)
        )
        _add(
            conn,
            sa.select(
                *_row(
                    sa.literal("unexplained_residual:bank:") + sa.cast(bank_lines.c.id, sa.String),
                    "unexplained_residual", bank_lines.c.amount, bank_line_id=bank_lines.c.id,
                    detail="決済事業者からの入金に対応する送金(payout)がない",
                )  # fmt: skip
            ).where(
                bank_lines.c.value_date == day,
                bank_lines.c.amount > 0,
                marked,
                ~sa.exists().where(payout_matches.c.bank_line_id == bank_lines.c.id),
            ),
        )
    analyze(conn, tmp_breaks)


def _detect_payouts(conn: Connection, day: date, compositions: Compositions) -> None:
    """Payout breaks. A day has a handful of payouts, so each one's composition is read on its own."""
    due = conn.execute(
        sa.select(payouts.c.id, payouts.c.amount, payouts.c.status, payout_matches.c.bank_line_id)
        .outerjoin(payout_matches, payout_matches.c.payout_id == payouts.c.id)
        .where(payouts.c.arrival_date == day)
        .order_by(payouts.c.id)
    ).all()
    rows = []
    for payout_id, amount, status, bank_line_id in due:
        base = {
            "provider_amount": amount, "ledger_amount": None, "provider_txn_id": None, "match_ref": None,
            "ledger_entry_id": None, "payout_id": payout_id, "bank_line_id": bank_line_id, "notice_number": None,
        }  # fmt: skip
        if status == "failed":
            rows.append({**base, "break_key": f"payout_failed:{payout_id}", "category": "payout_failed",
                         "amount": amount, "detail": "送金(payout)が失敗し決済事業者に戻った"})  # fmt: skip
            continue
        if status not in ACTIVE_PAYOUT_STATUSES:
            continue
        parts = compositions.of(conn, payout_id)
        if parts.net != amount:
            rows.append({**base, "break_key": f"amount_mismatch:payout:{payout_id}", "category": "amount_mismatch",
                         "amount": amount - parts.net, "ledger_amount": parts.net,
                         "detail": f"送金額が内訳({parts.count}件)の手取り合計と異なる"})  # fmt: skip
        if bank_line_id is None:
            rows.append({**base, "break_key": f"payout_in_transit:{payout_id}", "category": "payout_in_transit",
                         "amount": amount, "detail": "送金(payout)が銀行口座に未着"})  # fmt: skip
    if rows:
        conn.execute(tmp_breaks.insert(), rows)

