"""Properties of a reconciliation, on SQLite and PostgreSQL: hypothesis generates days of
payments, refunds, fees and a payout, corrupts some of them, and checks that each corruption is
reported as exactly the right break (category, key and amount) and nothing else; an uncorrupted
day has no break and its clearing account nets to zero once the payout lands."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import date, timedelta

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from ledger import EntryRequest, Line
from ledger.db import read_transaction
from reconciliation import list_breaks, reconcile_day
from tests.reconciliation.support import TAX_CODES, Day, payment

TODAY = date(2099, 1, 1)
_days = itertools.count()
KINDS = ("drop_ledger", "change_amount", "duplicate_provider", "fee", "drop_provider")

payments = st.lists(
    st.tuples(
        st.integers(min_value=50, max_value=300_000),
        st.sampled_from(TAX_CODES),
        st.integers(min_value=0, max_value=23),
        st.sampled_from((0, 0, 1, 3)),  # refund none, none, a third, all but ¥1 … (see below)
    ),
    min_size=1,
    max_size=6,
)


def fresh_day() -> date:
    # Examples share a database: each gets its own day, far from the others' tolerance windows.
    return date(2026, 1, 5) + timedelta(days=20 * next(_days))


def make_day(specs: list[tuple[int, str, int, int]]) -> Day:
    made = []
    for amount, tax_code, hour, refund_kind in specs:
        refund = {0: 0, 1: amount // 3, 3: amount - 1}[refund_kind]
        made.append(payment(amount, tax_code=tax_code, hour=hour, refund=refund))
    return Day(fresh_day(), made).build()


def corrupt(day: Day, kind: str, index: int, delta: int) -> tuple[str, str, int]:
    """Apply one corruption to payment ``index``; returns the break it must produce."""
    p = day.payments[index]
    charge_txn = f"txn_{p.ref}"
    if kind == "drop_ledger":
        day.ledger = [e for e in day.ledger if e.source_ref != f"stripe:{p.ref}"]
        return "missing_in_ledger", f"missing_in_ledger:{charge_txn}", p.amount
    if kind == "change_amount":
        changed = p.amount + delta
        day.ledger = [
            dataclasses.replace(e, lines=(Line.debit("1200", changed), Line.credit(f"1100:{p.tax_code}", changed)))
            if e.source_ref == f"stripe:{p.ref}"
            else e
            for e in day.ledger
        ]
        return "amount_mismatch", f"amount_mismatch:{p.ref}", -delta
    if kind == "duplicate_provider":
        original = next(t for t in day.transactions if t.id == charge_txn)
        dup = dataclasses.replace(original, id=f"txn_dup_{p.ref}", created=original.created + timedelta(seconds=30))
        day.transactions.append(dup)
        return "duplicate", f"duplicate:txn_dup_{p.ref}", p.amount
    if kind == "fee":
        change = 1 if p.fee == 0 or delta > 0 else -1
        day.transactions = [
            dataclasses.replace(t, fee=t.fee + change, net=t.net - change) if t.id == charge_txn else t
            for t in day.transactions
        ]
        return "fee_variance", f"fee_variance:{charge_txn}", change
    assert kind == "drop_provider"
    day.transactions = [t for t in day.transactions if t.id != charge_txn]
    return "missing_at_provider", f"missing_at_provider:{p.ref}", p.amount


def findings(engine: Engine, *days: date) -> set[tuple[str, str, int]]:
    with read_transaction(engine) as conn:
        return {
            (b.category.value, b.key, b.amount)
            for day in days
            for b in list_breaks(conn, day)
            if b.detected
        }


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    specs=payments,
    chosen=st.lists(st.tuples(st.sampled_from(KINDS), st.integers(min_value=0, max_value=5)), max_size=4),
    delta=st.integers(min_value=-40, max_value=40).filter(lambda d: d != 0),
    delay_bank=st.booleans(),
)
def test_each_corruption_is_exactly_its_break(engine, specs, chosen, delta, delay_bank):
    day = make_day(specs)
    expected: set[tuple[str, str, int]] = set()
    used: set[int] = set()
    for kind, index in chosen:
        index %= len(day.payments)
        if index in used:
            continue
        if kind == "change_amount" and day.payments[index].amount + delta <= 0:
            continue
        used.add(index)
        expected.add(corrupt(day, kind, index, delta))
    day.pay_out()
    if delay_bank and day.payout is not None:
        # The deposit arrives after the tolerance window: the payout is still in transit.
        day.bank = [dataclasses.replace(line, value_date=line.value_date + timedelta(days=10)) for line in day.bank]
        expected.add(("payout_in_transit", f"payout_in_transit:{day.payout.id}", day.payout.amount))
    day.write(engine)
    source = day.source()

    reconcile_day(engine, day.day, actor="test", source=source, today=TODAY)
    reconcile_day(engine, day.payout_day, actor="test", source=source, today=TODAY)
    assert findings(engine, day.day, day.payout_day) == expected

    # A re-run after the payout changes nothing and reports the same, twice.
    first = reconcile_day(engine, day.day, actor="test", source=source, today=TODAY)
    second = reconcile_day(engine, day.day, actor="test", source=source, today=TODAY)
    assert second.report_sha256 == first.report_sha256
    assert second.summary == first.summary
    assert findings(engine, day.day, day.payout_day) == expected


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=payments)
def test_an_uncorrupted_day_reconciles_to_zero(engine, specs):
    day = make_day(specs).pay_out()
    assume(day.payout is not None)
    day.write(engine)
    source = day.source()
    before = reconcile_day(engine, day.day, actor="test", source=source, today=TODAY)
    provider = before.summary["provider"]
    held = sum(p.amount - p.refund for p in day.payments)
    assert before.summary["breaks"] == {}
    assert before.summary["clearing"]["day_outstanding"] == held == provider["gross"] + provider["refunds"]
    assert provider["fees"] == provider["expected_fees"]

    landed = reconcile_day(engine, day.payout_day, actor="test", source=source, today=TODAY)
    assert landed.summary["breaks"] == {}
    [payout] = landed.summary["payouts"]
    assert payout["ledger_entry"] is not None and payout["fees"] == provider["fees"]
    after = reconcile_day(engine, day.day, actor="test", source=source, today=TODAY)
    assert after.summary["clearing"]["day_outstanding"] == 0
    # The clearing account moved by the day's money and back: it nets to zero once the payout lands.
    assert landed.summary["clearing"]["closing"] == before.summary["clearing"]["opening"]
    assert findings(engine, day.day, day.payout_day) == set()
    collected = {row["tax_code"]: row["amount"] for row in before.summary["collections"]}
    for code in {p.tax_code for p in day.payments}:
        assert collected[code] == sum(p.amount - p.refund for p in day.payments if p.tax_code == code)


def test_a_refund_missing_in_the_ledger_is_named_with_its_negative_amount(engine):
    day = make_day([(10_000, "FIXED_ASSET", 10, 1)])
    refund = day.payments[0]
    day.ledger = [e for e in day.ledger if e.source_ref != f"stripe:{refund.refund_ref}"]
    day.pay_out().write(engine)
    reconcile_day(engine, day.day, actor="test", source=day.source(), today=TODAY)
    assert findings(engine, day.day) == {
        ("missing_in_ledger", f"missing_in_ledger:txn_{refund.refund_ref}", -refund.refund)
    }


def test_a_clearing_entry_nobody_explains_is_an_unexplained_residual(engine):
    day = make_day([(5_000, "NHI_TAX", 11, 0)])
    stray = EntryRequest(day.day, "手入力", "manual:1", f"test:manual:{day.tag}",
                         (Line.debit("1200", 777), Line.credit("4300", 777)))  # fmt: skip
    day.ledger.append(stray)
    day.pay_out().write(engine)
    reconcile_day(engine, day.day, actor="test", source=day.source(), today=TODAY)
    [(category, key, amount)] = findings(engine, day.day)
    assert (category, amount) == ("unexplained_residual", 777) and key.startswith("unexplained_residual:entry:")
