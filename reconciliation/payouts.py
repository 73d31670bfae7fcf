"""The payout's posting: when a payout is matched to its bank deposit, the money has left the
provider for the bank, and the reconciliation books it (decided here, documented in
docs/reconciliation.md):

    Dr 1300 bank          the payout amount (what reached the bank)
    Dr 5100 fees          the fees the provider kept on the transactions the payout swept
        Cr 1200 clearing  their gross amounts (charges − refunds)

Invariants:
- posted once per payout: the idempotency key is ``payout:<po_…>:landed``; a re-run replays it;
- posted only when the payout's composition is consistent (Σ net of what it swept equals its
  amount), so the entry balances by construction; otherwise the payout carries an
  ``amount_mismatch`` break and stays unposted until the statement is complete;
- dated the bank's value date, or the first open business day when that day is already closed;
- a swept ``payout_failure`` stands for the failed payout's own transactions (the money of a
  payout the bank returned comes back with a later one), so their fees are booked then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import EntryRequest, Line, closed_through, post
from reconciliation.model import ReconciliationConfig
from reconciliation.schema import bank_lines, payout_matches, payouts, provider_txns

MAX_FAILURE_DEPTH = 10


@dataclass(frozen=True)
class Composition:
    """What a payout swept: gross, fees and net of its transactions (its own excluded)."""

    count: int
    gross: int
    fees: int
    net: int


def composition(conn: Connection, payout_id: str, depth: int = 0) -> Composition:
    swept = provider_txns.c.payout_id == payout_id
    count, gross, fees, net = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(provider_txns.c.amount), 0),
            sa.func.coalesce(sa.func.sum(provider_txns.c.fee), 0),
            sa.func.coalesce(sa.func.sum(provider_txns.c.net), 0),
        ).where(swept, provider_txns.c.type.not_in(("payout", "payout_failure")))
    ).one()
    count, gross, fees, net = int(count), int(gross), int(fees), int(net)
    returned = conn.execute(
        sa.select(provider_txns.c.source_id, provider_txns.c.amount, provider_txns.c.fee).where(
            swept, provider_txns.c.type == "payout_failure"
        )
    ).all()
    for failed_payout, amount, fee in returned:
        inner = composition(conn, failed_payout, depth + 1) if failed_payout and depth < MAX_FAILURE_DEPTH else None
        if inner is not None and inner.count and inner.net == amount:
            count, gross, fees, net = count + inner.count, gross + inner.gross, fees + inner.fees, net + inner.net
        else:
            count, gross, fees, net = count + 1, gross + amount, fees + fee, net + amount - fee
    return Composition(count, gross, fees, net)


class Compositions:
    """Each payout's composition, read once per run (a payout of a million transactions is a
    million-row sum; the run asks for it when posting, detecting and totalling)."""

    def __init__(self) -> None:
        self._known: dict[str, Composition] = {}

    def of(self, conn: Connection, payout_id: str) -> Composition:
        if payout_id not in self._known:
            self._known[payout_id] = composition(conn, payout_id)
        return self._known[payout_id]


def posting_day(conn: Connection, day: date) -> date:
    closed = closed_through(conn)
    return closed + timedelta(days=1) if closed is not None and day <= closed else day


def post_payouts(
    conn: Connection, config: ReconciliationConfig, *, now: datetime, compositions: Compositions | None = None
) -> tuple[str, ...]:
    """Post every matched payout that has no posting yet and whose composition is consistent.
    Returns the payout ids posted now."""
    pending = conn.execute(
        sa.select(payout_matches.c.id, payouts.c.id.label("payout_id"), payouts.c.amount, bank_lines.c.value_date)
        .join(payouts, payouts.c.id == payout_matches.c.payout_id)
        .join(bank_lines, bank_lines.c.id == payout_matches.c.bank_line_id)
        .where(payout_matches.c.ledger_entry_id.is_(None))
        .order_by(payout_matches.c.id)
    ).all()
    posted = []
    compositions = compositions or Compositions()
    for match_id, payout_id, amount, value_date in pending:
        parts = compositions.of(conn, payout_id)
        if parts.count == 0 or parts.net != amount or parts.gross <= 0:
            continue
        legs = [Line.debit(config.bank_account, amount)]
        if parts.fees:
            legs.append(Line.debit(config.fee_account, parts.fees))
        legs.append(Line.credit(config.clearing_account, parts.gross))
        entry = post(
            conn,
            EntryRequest(
                effective_date=posting_day(conn, value_date),
                description=f"入金 決済代行 {payout_id} ¥{amount:,}(手数料 ¥{parts.fees:,}, {parts.count}件)",
                source_ref=f"payout:{payout_id}",
                idempotency_key=f"payout:{payout_id}:landed",
                lines=tuple(legs),
            ),
            now=now,
        )
        conn.execute(payout_matches.update().where(payout_matches.c.id == match_id).values(ledger_entry_id=entry.id))
        posted.append(payout_id)
    return tuple(posted)
