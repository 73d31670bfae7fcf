"""Bad input: each refusal has its own error class and stable code, and writes nothing.

Every refusal is attempted inside a transaction that the caller then COMMITS, so "nothing
written" means the ledger wrote nothing before raising, not merely that a rollback hid it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

import pytest
from sqlalchemy.engine import Connection, Engine

import ledger as L
from ledger.db import run_transaction
from tests.ledger.support import DAY, entry, snapshot, transfer


def assert_refused(
    engine: Engine, attempt: Callable[[Connection], object], error: type[L.LedgerError], code: str
) -> L.LedgerError:
    before = snapshot(engine)
    with engine.begin() as conn:
        with pytest.raises(error) as info:
            attempt(conn)
    assert type(info.value) is error
    assert info.value.code == code
    assert snapshot(engine) == before, "a refused posting changed the database"
    return info.value


def post(engine: Engine, request: L.EntryRequest) -> L.PostedEntry:
    return run_transaction(engine, lambda conn: L.post(conn, request))


def test_valid_entries_are_written_up_to_max_amount(engine: Engine) -> None:
    # The control for every refusal below: the same shape with good values is accepted.
    before = snapshot(engine)
    posted = post(engine, transfer("ok", "1100", "4100", 500))
    after = snapshot(engine)
    assert (posted.id, after.entries, after.lines) == (1, before.entries + 1, before.lines + 2)
    assert after.head != before.head
    # MAX_AMOUNT itself is a valid line on both engines.
    assert post(engine, transfer("max", "1300", "1200", L.MAX_AMOUNT)).id == 2
    with engine.begin() as conn:
        assert L.balance(conn, "1300").net_debit == L.MAX_AMOUNT
        assert L.balance(conn, "1200").net_debit == -L.MAX_AMOUNT
        assert L.verify(conn).ok


def test_unbalanced_entry_is_refused(engine: Engine) -> None:
    post(engine, transfer("seed", "1100", "4100", 500))
    error = assert_refused(
        engine,
        lambda c: L.post(c, entry("k", L.Line.debit("1100", 500), L.Line.credit("4100", 499))),
        L.UnbalancedEntry,
        "ledger.unbalanced",
    )
    assert error.detail == {"debits": 500, "credits": 499}


BAD_AMOUNTS = {
    "zero": 0,
    "negative": -500,
    "float": 500.0,
    "decimal": Decimal("500"),
    "bool": True,
    "str": "500",
    "above_max": L.MAX_AMOUNT + 1,
}


def test_bad_amounts_are_refused(engine: Engine) -> None:
    # One database for all cases (a fresh PostgreSQL database per case costs more than the test).
    post(engine, transfer("seed", "1100", "4100", 500))
    for name, amount in BAD_AMOUNTS.items():
        request = entry(name, L.Line.debit("1100", amount), L.Line.credit("4100", amount))  # type: ignore[arg-type]
        error = assert_refused(engine, lambda c: L.post(c, request), L.InvalidAmount, "ledger.invalid_amount")
        assert error.detail["line"] == 1, name
    # One bad line among good ones is enough, and is named.
    legs = (L.Line.debit("1100", 300), L.Line.debit("1100", 0), L.Line.credit("4100", 300))
    error = assert_refused(engine, lambda c: L.post(c, entry("k", *legs)), L.InvalidAmount, "ledger.invalid_amount")
    assert error.detail["line"] == 2


def test_fewer_than_two_lines_is_refused(engine: Engine) -> None:
    for legs in ((), (L.Line.debit("1100", 500),)):
        assert_refused(engine, lambda c: L.post(c, entry("k", *legs)), L.TooFewLines, "ledger.too_few_lines")


def test_unknown_account_is_refused(engine: Engine) -> None:
    for code in ("1999", "1100:NO_SUCH", "not-a-code"):
        error = assert_refused(
            engine, lambda c: L.post(c, transfer("k", code, "4100", 500)), L.UnknownAccount, "ledger.unknown_account"
        )
        assert error.detail["account"] == code


def test_closed_account_is_refused(engine: Engine) -> None:
    post(engine, transfer("seed", "5100", "1200", 500))
    run_transaction(engine, lambda c: L.close_account(c, "5100"))
    error = assert_refused(
        engine, lambda c: L.post(c, transfer("k", "5100", "1200", 500)), L.ClosedAccount, "ledger.account_closed"
    )
    assert error.detail["account"] == "5100"
    # Closing keeps the history: the balance stays readable.
    with engine.begin() as conn:
        assert L.balance(conn, "5100").amount == 500
        assert L.find_account(conn, "5100").status == "closed"  # type: ignore[union-attr]
    # Closing again is harmless; closing an account that does not exist is refused.
    assert run_transaction(engine, lambda c: L.close_account(c, "5100")).status == "closed"
    assert_refused(engine, lambda c: L.close_account(c, "4999"), L.UnknownAccount, "ledger.unknown_account")


def test_date_in_a_closed_period_is_refused(engine: Engine) -> None:
    post(engine, transfer("seed", "1100", "4100", 500))
    run_transaction(engine, lambda c: L.close_day(c, DAY, closed_by="会計課 test"))
    for offset in (0, -1, -400):
        request = transfer(f"k{offset}", "1100", "4100", 500, day=DAY + timedelta(days=offset))
        error = assert_refused(engine, lambda c: L.post(c, request), L.ClosedPeriod, "ledger.period_closed")
        assert error.detail["closed_through"] == DAY.isoformat()
    # The next business day is open.
    assert post(engine, transfer("next", "1100", "4100", 500, day=DAY + timedelta(days=1))).id == 2


def test_close_day_refuses_a_closed_day_and_needs_a_date_and_a_name(engine: Engine) -> None:
    run_transaction(engine, lambda c: L.close_day(c, DAY, closed_by="a"))
    for day in (DAY, DAY - timedelta(days=1)):
        assert_refused(
            engine, partial(L.close_day, business_date=day, closed_by="b"), L.ClosedPeriod, "ledger.period_closed"
        )
    assert_refused(
        engine,
        lambda c: L.close_day(c, datetime(2026, 4, 1, 12), closed_by="a"),  # type: ignore[arg-type]
        L.InvalidEntry,
        "ledger.invalid_entry",
    )
    assert_refused(engine, lambda c: L.close_day(c, DAY, closed_by="  "), L.InvalidEntry, "ledger.invalid_entry")


def test_reused_key_with_other_content_is_refused(engine: Engine) -> None:
    original = post(engine, transfer("k", "1100", "4100", 500))
    error = assert_refused(
        engine, lambda c: L.post(c, transfer("k", "1100", "4100", 501)), L.IdempotencyConflict,
        "ledger.idempotency_conflict",
    )
    assert error.detail["entry_id"] == original.id


def test_bad_reversals_are_refused(engine: Engine) -> None:
    original = post(engine, transfer("k", "1100", "4100", 500))
    error = assert_refused(
        engine,
        lambda c: L.reverse(c, 99, effective_date=DAY, idempotency_key="rev"),
        L.EntryNotFound,
        "ledger.entry_not_found",
    )
    assert error.detail["entry_id"] == 99
    # The same through post() with a hand-made reversal request.
    request = L.EntryRequest(
        DAY, "rev", "test", "rev2", (L.Line.debit("4100", 5), L.Line.credit("1100", 5)), reverses_entry_id=99
    )
    assert_refused(engine, lambda c: L.post(c, request), L.EntryNotFound, "ledger.entry_not_found")
    # A batch reversing one entry twice.
    mirror = (L.Line.debit("4100", 500), L.Line.credit("1100", 500))
    batch = [L.EntryRequest(DAY, "rev", "test", key, mirror, reverses_entry_id=original.id) for key in ("b1", "b2")]
    assert_refused(engine, lambda c: L.post_many(c, batch), L.AlreadyReversed, "ledger.already_reversed")
    # A second reversal, once the first is written.
    first = run_transaction(engine, lambda c: L.reverse(c, original.id, effective_date=DAY, idempotency_key="r1"))
    error = assert_refused(
        engine,
        lambda c: L.reverse(c, original.id, effective_date=DAY, idempotency_key="r2"),
        L.AlreadyReversed,
        "ledger.already_reversed",
    )
    assert (error.detail["entry_id"], error.detail["reversal_id"]) == (original.id, first.id)


LATER = DAY + timedelta(days=9)
BAD_IN_BATCH = {
    "unbalanced": (entry("b", L.Line.debit("1100", 5), L.Line.credit("4100", 4)), L.UnbalancedEntry),
    "float": (entry("b", L.Line.debit("1100", 5.0), L.Line.credit("4100", 5.0)), L.InvalidAmount),  # type: ignore[arg-type]
    "one_line": (entry("b", L.Line.debit("1100", 5)), L.TooFewLines),
    "unknown_account": (transfer("b", "1100", "1999", 5, day=LATER), L.UnknownAccount),
    "closed_account": (transfer("b", "5100", "1200", 5, day=LATER), L.ClosedAccount),
    "closed_period": (transfer("b", "1100", "4100", 5, day=DAY), L.ClosedPeriod),
    "key_conflict_stored": (transfer("seed", "1100", "4100", 6, day=LATER), L.IdempotencyConflict),
    "key_conflict_in_batch": (transfer("a0", "1100", "4100", 7, day=LATER), L.IdempotencyConflict),
    "reverses_missing": (
        L.EntryRequest(LATER, "r", "s", "b", (L.Line.debit("4100", 5), L.Line.credit("1100", 5)), 99),
        L.EntryNotFound,
    ),
}


def test_a_batch_with_one_bad_entry_writes_nothing(engine: Engine) -> None:
    post(engine, transfer("seed", "1100", "4100", 5, day=DAY))
    run_transaction(engine, lambda c: L.close_account(c, "5100"))
    run_transaction(engine, lambda c: L.close_day(c, DAY, closed_by="test"))
    good = [transfer(f"a{i}", "1100", "4100", 100 + i, day=LATER) for i in range(3)]
    for name, (bad, error) in BAD_IN_BATCH.items():
        batch = [good[0], good[1], bad, good[2]]
        raised = assert_refused(engine, lambda c: L.post_many(c, batch), error, error.code)
        if error in (L.UnbalancedEntry, L.InvalidAmount, L.TooFewLines):
            assert raised.detail["entry_index"] == 2, name
    # Without the bad entry the same batch goes through.
    assert [p.id for p in run_transaction(engine, lambda c: L.post_many(c, good))] == [2, 3, 4]


GOOD_LEGS = (L.Line.debit("1100", 5), L.Line.credit("4100", 5))
MALFORMED = {
    "datetime": L.EntryRequest(datetime(2026, 4, 1, 9), "d", "s", "k", GOOD_LEGS),  # type: ignore[arg-type]
    "str_date": L.EntryRequest("2026-04-01", "d", "s", "k", GOOD_LEGS),  # type: ignore[arg-type]
    "blank_description": L.EntryRequest(DAY, " ", "s", "k", GOOD_LEGS),
    "empty_source": L.EntryRequest(DAY, "d", "", "k", GOOD_LEGS),
    "empty_key": L.EntryRequest(DAY, "d", "s", "", GOOD_LEGS),
    "long_key": L.EntryRequest(DAY, "d", "s", "k" * 256, GOOD_LEGS),
    "long_description": L.EntryRequest(DAY, "x" * 501, "s", "k", GOOD_LEGS),
    "bad_side": L.EntryRequest(DAY, "d", "s", "k", (L.Line("1100", "left", 5), L.Line.credit("4100", 5))),  # type: ignore[arg-type]
    "not_a_line": L.EntryRequest(DAY, "d", "s", "k", (("1100", "debit", 5), L.Line.credit("4100", 5))),  # type: ignore[arg-type]
    # Text PostgreSQL cannot store (NUL) or UTF-8 cannot encode (a lone surrogate): refused on
    # both engines alike, before the hash or the database sees it.
    "nul_in_description": L.EntryRequest(DAY, "a\x00b", "s", "k", GOOD_LEGS),
    "nul_in_key": L.EntryRequest(DAY, "d", "s", "k\x00", GOOD_LEGS),
    "surrogate_in_source": L.EntryRequest(DAY, "d", "stripe:\ud800", "k", GOOD_LEGS),
    "nul_in_account": L.EntryRequest(DAY, "d", "s", "k", (L.Line.debit("1100\x00", 5), L.Line.credit("4100", 5))),
    "too_many_lines": L.EntryRequest(
        DAY, "d", "s", "k", tuple([L.Line.debit("1100", 1)] * 500 + [L.Line.credit("4100", 1)] * 501)
    ),
}


def test_malformed_requests_are_refused(engine: Engine) -> None:
    for name, request in MALFORMED.items():
        error = assert_refused(engine, lambda c: L.post(c, request), L.InvalidEntry, "ledger.invalid_entry")
        assert error.message, name


def test_a_running_balance_past_64_bits_is_refused(engine: Engine) -> None:
    # Each entry moves 500 × MAX_AMOUNT ≈ 4.5e18 between 1300 and 1200; the third would take the
    # balances past ±(2**63 − 1), which BIGINT cannot hold.
    half = [L.Line.debit("1300", L.MAX_AMOUNT)] * 500 + [L.Line.credit("1200", L.MAX_AMOUNT)] * 500
    for number in (1, 2):
        post(engine, entry(f"big{number}", *half))
    error = assert_refused(
        engine, lambda c: L.post(c, entry("big3", *half)), L.BalanceOverflow, "ledger.balance_overflow"
    )
    assert "1300" in error.message or "1200" in error.message
    with engine.begin() as conn:
        assert L.balance(conn, "1300").net_debit == 1000 * L.MAX_AMOUNT
        assert L.verify(conn).ok


def test_every_error_has_its_own_stable_code() -> None:
    classes = [
        L.InvalidEntry, L.InvalidAmount, L.UnbalancedEntry, L.TooFewLines, L.UnknownAccount,
        L.ClosedAccount, L.AccountConflict, L.ClosedPeriod, L.IdempotencyConflict,
        L.AlreadyReversed, L.EntryNotFound, L.BalanceOverflow,
    ]
    codes = [cls.code for cls in classes]
    assert len(set(codes)) == len(codes)
    assert all(code.startswith("ledger.") and issubclass(cls, L.LedgerError) for cls, code in zip(classes, codes))


def test_account_with_other_attributes_is_a_conflict(engine: Engine) -> None:
    assert_refused(
        engine,
        lambda c: L.ensure_account(c, L.AccountSpec("1100", "別名", "Other", "debit")),
        L.AccountConflict,
        "ledger.account_conflict",
    )
    assert_refused(
        engine,
        lambda c: L.ensure_account(c, L.AccountSpec("1100:WRONG_SIDE", "逆", "Wrong side", "credit")),
        L.AccountConflict,
        "ledger.account_conflict",
    )
    assert_refused(
        engine,
        lambda c: L.ensure_account(c, L.AccountSpec("9900:ORPHAN", "孤児", "Orphan", "debit")),
        L.UnknownAccount,
        "ledger.unknown_account",
    )
    for bad in (L.AccountSpec("11", "a", "b", "debit"), L.AccountSpec("1100:X", "a", "b", "both")):  # type: ignore[arg-type]
        assert_refused(engine, partial(L.ensure_account, spec=bad), L.InvalidEntry, "ledger.invalid_entry")
    # The same spec again is not a conflict: ensure_account is idempotent.
    spec = L.AccountSpec("1100:LEDGER_TEST", "試験 未収金", "Test receivable", "debit")
    first = run_transaction(engine, lambda c: L.ensure_account(c, spec))
    assert run_transaction(engine, lambda c: L.ensure_account(c, spec)) == first
