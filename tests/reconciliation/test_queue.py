"""The exceptions queue across re-runs, healing, payout failures, cross-day matches, pulling and
sign-off order, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger import EntryRequest, Line, post
from ledger.db import read_transaction, run_transaction
from reconciliation import (
    BankLine,
    BankStatement,
    BreakStatus,
    EarlierDayOpen,
    HealResult,
    ProviderTransaction,
    RunNotFound,
    Staff,
    import_statement,
    list_breaks,
    notes_of,
    pull_day,
    reconcile_day,
    resolve,
    sign_off,
)
from reconciliation.schema import breaks, payouts, provider_txns
from tests.reconciliation.support import Day, FakeSource, at, payment

TODAY = date(2099, 1, 1)
TREASURY = Staff("staff:t1", "会計課長")
NOW = datetime(2026, 7, 1, tzinfo=UTC)


def found(engine: Engine, day: date) -> dict[str, BreakStatus]:
    with read_transaction(engine) as conn:
        return {b.key: b.status for b in list_breaks(conn, day)}


def test_a_late_bank_line_clears_the_payout_in_transit_and_posts_the_payout(engine: Engine) -> None:
    day = Day(date(2026, 3, 2), [payment(10_000)]).build().pay_out()
    assert day.payout is not None
    line = day.bank.pop()
    day.write(engine)
    source = day.source()
    reconcile_day(engine, day.payout_day, actor="t", source=source, today=TODAY)
    assert found(engine, day.payout_day) == {f"payout_in_transit:{day.payout.id}": BreakStatus.OPEN}

    statement = BankStatement("csv", (line,), "late")
    run_transaction(engine, lambda conn: import_statement(conn, statement, actor="t", now=NOW))
    outcome = reconcile_day(engine, day.payout_day, actor="t", source=source, today=TODAY)
    assert outcome.posted_payouts == (day.payout.id,)
    assert found(engine, day.payout_day) == {f"payout_in_transit:{day.payout.id}": BreakStatus.CLEARED}
    with read_transaction(engine) as conn:
        [cleared] = list_breaks(conn, day.payout_day)
        assert [n.kind for n in notes_of(conn, cleared.id)] == ["clear"]


class PostingHealer:
    """Stands in for the webhook inbox: books the payment when asked (or lies, when told to)."""

    def __init__(self, engine: Engine, tax_code: str = "FIXED_ASSET", *, lie: bool = False) -> None:
        self.engine, self.tax_code, self.lie = engine, tax_code, lie
        self.asked: list[str] = []

    def heal(self, match_ref: str, transaction: ProviderTransaction) -> HealResult:
        self.asked.append(match_ref)
        if not self.lie:
            run_transaction(self.engine, lambda conn: post(conn, EntryRequest(
                transaction.business_date, "収納 (webhook)", f"stripe:{match_ref}", f"heal:{match_ref}",
                (Line.debit("1200", transaction.amount), Line.credit(f"1100:{self.tax_code}", transaction.amount)))))  # fmt: skip
        return HealResult(match_ref, True, "applied")


def test_a_lost_payment_is_healed_once_and_stays_healed(engine: Engine) -> None:
    day = Day(date(2026, 3, 9), [payment(3_000), payment(4_000)]).build()
    lost = day.payments[1]
    day.ledger = [e for e in day.ledger if e.source_ref != f"stripe:{lost.ref}"]
    day.write(engine)
    healer = PostingHealer(engine)
    outcome = reconcile_day(engine, day.day, actor="t", source=day.source(), healer=healer, today=TODAY)
    assert [(h.match_ref, h.healed) for h in outcome.healed] == [(lost.ref, True)]
    key = f"missing_in_ledger:txn_{lost.ref}"
    assert found(engine, day.day) == {key: BreakStatus.HEALED}
    assert outcome.summary["breaks"] == {}
    again = reconcile_day(engine, day.day, actor="t", source=day.source(), healer=healer, today=TODAY)
    assert again.healed == () and healer.asked == [lost.ref]
    assert found(engine, day.day) == {key: BreakStatus.HEALED}


def test_a_heal_that_did_not_book_leaves_the_break_open(engine: Engine) -> None:
    day = Day(date(2026, 3, 16), [payment(3_000)]).build()
    day.ledger.clear()
    day.write(engine)
    outcome = reconcile_day(engine, day.day, actor="t", source=day.source(), healer=PostingHealer(engine, lie=True), today=TODAY)
    assert [h.healed for h in outcome.healed] == [True]
    assert found(engine, day.day) == {f"missing_in_ledger:txn_{day.payments[0].ref}": BreakStatus.OPEN}


def test_a_cleared_break_found_again_is_reopened_and_a_resolved_one_stays_resolved(engine: Engine) -> None:
    day = Day(date(2026, 3, 23), [payment(3_000), payment(5_000)]).build()
    day.ledger.clear()
    day.write(engine)
    reconcile_day(engine, day.day, actor="t", source=day.source(), today=TODAY)
    first, second = (f"missing_in_ledger:txn_{p.ref}" for p in day.payments)
    with engine.begin() as conn:  # as if an earlier run had not found the first one
        conn.execute(breaks.update().where(breaks.c.break_key == first).values(status="cleared"))
        second_id = conn.scalar(sa.select(breaks.c.id).where(breaks.c.break_key == second))
    run_transaction(engine, lambda conn: resolve(conn, day.day, second_id, "窓口で現金収納済", staff=TREASURY, now=NOW))
    reconcile_day(engine, day.day, actor="t", source=day.source(), today=TODAY)
    assert found(engine, day.day) == {first: BreakStatus.OPEN, second: BreakStatus.RESOLVED}
    with read_transaction(engine) as conn:
        reopened = next(b for b in list_breaks(conn, day.day) if b.key == first)
        assert [n.kind for n in notes_of(conn, reopened.id)] == ["reopen"]


def test_a_failed_payout_is_named_and_its_money_is_booked_with_the_next_payout(engine: Engine) -> None:
    day = Day(date(2026, 4, 6), [payment(10_000), payment(20_000)]).build().pay_out()
    assert day.payout is not None
    failed = dataclasses.replace(day.payout, status="failed", failure_code="account_closed")
    day.bank.clear()
    # The bank returned it: the money is back at the provider and leaves with the next payout.
    back = ProviderTransaction("txn_back", "payout_failure", failed.amount, 0, failed.amount, at(day.payout_day, 15),
                               source=failed.id, match_ref=failed.id, payout_id="po_next", reporting_category="payout_reversal")  # fmt: skip
    retry_day = day.payout_day + timedelta(days=2)
    retry = dataclasses.replace(failed, id="po_next", status="paid", arrival_date=retry_day, created=at(retry_day, 9))
    source = FakeSource([*day.transactions, back], [failed, retry])
    day.bank.append(BankLine("designated", retry_day, retry.amount, "STRIPE", "retry"))
    day.write(engine)
    reconcile_day(engine, day.day, actor="t", source=source, today=TODAY)
    reconcile_day(engine, day.payout_day, actor="t", source=source, today=TODAY)
    assert found(engine, day.payout_day) == {f"payout_failed:{failed.id}": BreakStatus.OPEN}
    landed = reconcile_day(engine, retry_day, actor="t", source=source, today=TODAY)
    assert landed.posted_payouts == ("po_next",) and landed.summary["breaks"] == {}
    [due] = landed.summary["payouts"]
    assert (due["gross"], due["fees"], due["transactions"]) == (30_000, 360 + 720, 2)
    with read_transaction(engine) as conn:
        clearing = conn.execute(sa.text("SELECT balance FROM ledger_accounts WHERE code = '1200'")).scalar_one()
    assert clearing == 0


def test_a_payment_booked_on_the_next_open_day_still_matches(engine: Engine) -> None:
    day = Day(date(2026, 4, 13), [payment(7_000, hour=23)]).build()
    day.ledger = [dataclasses.replace(e, effective_date=day.day + timedelta(days=1)) for e in day.ledger]
    day.write(engine)
    reconcile_day(engine, day.day, actor="t", source=day.source(), today=TODAY)
    reconcile_day(engine, day.day + timedelta(days=1), actor="t", source=day.source(), today=TODAY)
    assert found(engine, day.day) == {} and found(engine, day.day + timedelta(days=1)) == {}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT rule FROM recon_matches")).scalars().all() == ["key_cross_day"]


def test_pulling_twice_changes_nothing_and_a_payout_status_moves_on(engine: Engine) -> None:
    day = Day(date(2026, 4, 20), [payment(1_000), payment(2_000, refund=500)]).build().pay_out()
    assert day.payout is not None
    source = day.source()

    def snapshot() -> list[tuple[object, ...]]:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(provider_txns).order_by(provider_txns.c.id)).all()
            return [tuple(r) for r in rows] + [tuple(r) for r in conn.execute(sa.select(payouts))]

    first = [pull_day(engine, source, d, now=NOW) for d in (day.day, day.payout_day)]
    assert first[0].new_transactions == 3 and first[1].new_payouts == 1
    before = snapshot()
    again = [pull_day(engine, source, d, now=NOW + timedelta(hours=1)) for d in (day.day, day.payout_day)]
    assert [r.new_transactions for r in again] == [0, 0] and snapshot() == before
    source.payout_list[0] = dataclasses.replace(day.payout, status="failed", failure_code="could_not_process")
    pull_day(engine, source, day.payout_day, now=NOW)
    with engine.connect() as conn:
        assert conn.execute(sa.select(payouts.c.status, payouts.c.failure_code)).one() == ("failed", "could_not_process")


def test_sign_off_needs_a_run_and_every_earlier_day_signed_off(engine: Engine) -> None:
    first, second = date(2026, 5, 4), date(2026, 5, 5)
    with pytest.raises(RunNotFound) as missing:
        run_transaction(engine, lambda conn: sign_off(conn, first, staff=TREASURY, now=NOW))
    assert missing.value.code == "reconciliation.run_not_found"
    for day in (first, second):
        reconcile_day(engine, day, actor="t", source=FakeSource(), today=TODAY)
    with pytest.raises(EarlierDayOpen) as refused:
        run_transaction(engine, lambda conn: sign_off(conn, second, staff=TREASURY, now=NOW))
    assert (refused.value.code, refused.value.detail["earliest"]) == ("reconciliation.earlier_day_open", first.isoformat())
    for day in (first, second):
        run_transaction(engine, lambda conn, d=day: sign_off(conn, d, staff=TREASURY, now=NOW))
