"""Amend (更正), cancel, payments hook and code revocation: each its own ledger entry."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import ledger
from invoices.errors import InvalidInvoice, InvoiceCancelled, NotCancellable, StaleVersion
from invoices.model import Status
from invoices.service import (
    amend_invoice,
    cancel_invoice,
    get_invoice,
    invoice_history,
    invoice_payment_code,
    issue_invoice,
    record_payment,
    revoke_payment_code,
)
from ledger.db import run_transaction
from tests.invoices._support import CTX, counts, net, request


def tx(engine, fn):
    return run_transaction(engine, fn)


def issued(engine, amount=10_000):
    return tx(engine, lambda c: issue_invoice(c, CTX, request(amount=amount), actor="staff:1")).invoice


def amend(engine, number, amount, **kw):
    return tx(
        engine, lambda c: amend_invoice(c, CTX, number, amount, reason="更正通知", actor="staff:2", **kw)
    )


def pay(engine, number, amount, reference="pi_1"):
    return tx(engine, lambda c: record_payment(c, CTX, number, amount, reference=reference, actor="provider"))


def books(engine):
    """(receivable 1100:FIXED_ASSET, revenue 4100:FIXED_ASSET, overpayments 2100), on normal sides."""
    return net(engine, "1100:FIXED_ASSET"), -net(engine, "4100:FIXED_ASSET"), -net(engine, "2100")


def entry_lines(engine, entry_id):
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "SELECT a.code, l.side, l.amount FROM ledger_lines l JOIN ledger_accounts a "
                    "ON a.id = l.account_id WHERE l.entry_id = :e ORDER BY l.line_no"
                ),
                {"e": entry_id},
            )
        ]


def test_increase_posts_receivable_against_revenue(engine):
    inv = issued(engine)
    after = amend(engine, inv.notice_number, 12_000)
    assert (after.amount, after.status, after.version) == (12_000, Status.OPEN, 2)
    assert books(engine) == (12_000, 12_000, 0)
    (change,) = [h for h in tx(engine, lambda c: invoice_history(c, inv.notice_number)) if h.kind == "amend"]
    assert (change.amount_before, change.amount_after, change.reason, change.actor) == (
        10_000,
        12_000,
        "更正通知",
        "staff:2",
    )
    assert entry_lines(engine, change.ledger_entry_id) == [
        ("1100:FIXED_ASSET", "D", 2_000),
        ("4100:FIXED_ASSET", "C", 2_000),
    ]
    assert change.overpayment_entry_id is None


def test_reduction_reverses_part_of_the_receivable(engine):
    inv = issued(engine)
    after = amend(engine, inv.display_number, 7_000)
    assert (after.amount, after.status) == (7_000, Status.OPEN)
    assert books(engine) == (7_000, 7_000, 0)
    change = tx(engine, lambda c: invoice_history(c, inv.notice_number))[-1]
    assert entry_lines(engine, change.ledger_entry_id) == [
        ("4100:FIXED_ASSET", "D", 3_000),
        ("1100:FIXED_ASSET", "C", 3_000),
    ]


def test_reduction_below_the_paid_amount_makes_an_overpayment(engine):
    inv = issued(engine)
    paid = pay(engine, inv.notice_number, 10_000)
    assert paid.status is Status.PAID
    assert books(engine) == (0, 10_000, 0)
    after = amend(engine, inv.notice_number, 6_000)
    assert (after.amount, after.amount_paid, after.status, after.overpaid_amount) == (
        6_000,
        10_000,
        Status.OVERPAID,
        4_000,
    )
    assert books(engine) == (0, 6_000, 4_000)
    change = tx(engine, lambda c: invoice_history(c, inv.notice_number))[-1]
    assert change.ledger_entry_id is None  # nothing was left receivable to reverse
    assert entry_lines(engine, change.overpayment_entry_id) == [
        ("4100:FIXED_ASSET", "D", 4_000),
        ("2100", "C", 4_000),
    ]


def test_reduction_crossing_the_paid_amount_posts_two_entries(engine):
    inv = issued(engine)
    pay(engine, inv.notice_number, 10_000)
    amend(engine, inv.notice_number, 15_000)  # open again with 10,000 paid
    after = amend(engine, inv.notice_number, 8_000)
    assert (after.status, after.amount_paid) == (Status.OVERPAID, 10_000)
    change = tx(engine, lambda c: invoice_history(c, inv.notice_number))[-1]
    assert entry_lines(engine, change.ledger_entry_id) == [
        ("4100:FIXED_ASSET", "D", 5_000),
        ("1100:FIXED_ASSET", "C", 5_000),
    ]
    assert entry_lines(engine, change.overpayment_entry_id) == [
        ("4100:FIXED_ASSET", "D", 2_000),
        ("2100", "C", 2_000),
    ]
    assert books(engine) == (0, 8_000, 2_000)


def test_increase_of_an_overpaid_invoice_uses_the_overpayment_first(engine):
    inv = issued(engine)
    pay(engine, inv.notice_number, 10_000)
    amend(engine, inv.notice_number, 6_000)
    after = amend(engine, inv.notice_number, 11_000)
    assert (after.status, after.outstanding) == (Status.OPEN, 1_000)
    assert books(engine) == (1_000, 11_000, 0)
    change = tx(engine, lambda c: invoice_history(c, inv.notice_number))[-1]
    assert entry_lines(engine, change.overpayment_entry_id) == [
        ("2100", "D", 4_000),
        ("4100:FIXED_ASSET", "C", 4_000),
    ]


def test_cancel_reverses_the_whole_receivable(engine):
    inv = issued(engine)
    after = tx(
        engine, lambda c: cancel_invoice(c, CTX, inv.notice_number, reason="賦課取消", actor="staff:3")
    )
    assert (after.status, after.amount, after.outstanding) == (Status.CANCELLED, 0, 0)
    assert books(engine) == (0, 0, 0)
    change = tx(engine, lambda c: invoice_history(c, inv.notice_number))[-1]
    assert (change.kind, change.amount_before, change.amount_after) == ("cancel", 10_000, 0)
    assert entry_lines(engine, change.ledger_entry_id) == [
        ("4100:FIXED_ASSET", "D", 10_000),
        ("1100:FIXED_ASSET", "C", 10_000),
    ]


def test_a_paid_invoice_cannot_be_cancelled_only_amended(engine):
    inv = issued(engine)
    pay(engine, inv.notice_number, 10_000)
    before = counts(engine)
    with pytest.raises(NotCancellable) as caught:
        tx(engine, lambda c: cancel_invoice(c, CTX, inv.notice_number, reason="x", actor="staff"))
    assert caught.value.code == "invoice.not_cancellable"
    assert counts(engine) == before


def test_a_cancelled_invoice_refuses_every_change(engine):
    inv = issued(engine)
    tx(engine, lambda c: cancel_invoice(c, CTX, inv.notice_number, reason="x", actor="staff"))
    before = counts(engine)
    for attempt in (
        lambda c: amend_invoice(c, CTX, inv.notice_number, 5, reason="x", actor="s"),
        lambda c: cancel_invoice(c, CTX, inv.notice_number, reason="x", actor="s"),
        lambda c: record_payment(c, CTX, inv.notice_number, 5, reference="p", actor="s"),
    ):
        with pytest.raises(InvoiceCancelled) as caught:
            tx(engine, attempt)
        assert caught.value.code == "invoice.cancelled"
    assert counts(engine) == before


@pytest.mark.parametrize(
    ("amount", "kw", "code"),
    [
        (10_000, {}, "invoice.amount_unchanged"),
        (0, {}, "invoice.amount_zero"),
        (-1, {}, "invoice.amount_negative"),
        (100_000_000, {}, "invoice.amount_too_large"),
        ("9000", {}, "invoice.amount_not_integer"),
        (9_000, {"reason": " "}, "invoice.missing_reason"),
        (9_000, {"actor": ""}, "invoice.missing_actor"),
    ],
)
def test_bad_amendments_are_refused(engine, amount, kw, code):
    inv = issued(engine)
    before = counts(engine)
    args = {"reason": "r", "actor": "a", **kw}
    with pytest.raises(InvalidInvoice) as caught:
        tx(engine, lambda c: amend_invoice(c, CTX, inv.notice_number, amount, **args))
    assert caught.value.code == code
    assert counts(engine) == before


def test_expected_version_guards_against_lost_updates(engine):
    inv = issued(engine)
    amend(engine, inv.notice_number, 11_000, expected_version=1)
    with pytest.raises(StaleVersion) as caught:
        amend(engine, inv.notice_number, 12_000, expected_version=1)
    assert caught.value.code == "invoice.stale_version"
    assert tx(engine, lambda c: get_invoice(c, inv.notice_number)).amount == 11_000


def test_a_payment_reference_is_applied_once_and_excess_is_an_overpayment(engine):
    inv = issued(engine)
    first = pay(engine, inv.notice_number, 13_000, reference="pi_A")
    again = pay(engine, inv.notice_number, 13_000, reference="pi_A")
    assert first.version == again.version
    assert (again.amount_paid, again.status, again.overpaid_amount) == (13_000, Status.OVERPAID, 3_000)
    assert books(engine) == (0, 10_000, 3_000)
    assert net(engine, "1200") == 13_000


def test_revoking_the_payment_code_bumps_the_generation(engine):
    inv = issued(engine)
    old = invoice_payment_code(CTX.keyring, inv)
    after = tx(engine, lambda c: revoke_payment_code(c, inv.notice_number, reason="再発行", actor="staff"))
    new = invoice_payment_code(CTX.keyring, after)
    assert after.token_generation == 1
    assert CTX.keyring.verify(old.token).generation < after.token_generation  # old code now refused
    assert new.token != old.token and new.confirmation_code != old.confirmation_code
    with engine.connect() as conn:
        assert ledger.trial_balance(conn).balanced


def test_history_and_import_log_are_append_only_in_the_database(engine):
    inv = issued(engine)
    for sql in (
        "UPDATE invoice_changes SET actor = 'mallory'",
        "DELETE FROM invoice_changes",
        "DELETE FROM invoices",
        "UPDATE invoices SET notice_number = '2026000000999'",
        "UPDATE invoices SET public_id = '000000000000000000000000'",
        "UPDATE invoices SET version = 0",
    ):
        with pytest.raises(sa.exc.DBAPIError):
            with engine.begin() as conn:
                conn.execute(sa.text(sql))
    assert tx(engine, lambda c: get_invoice(c, inv.notice_number)).public_id == inv.public_id


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE invoices SET amount = 0",
        "UPDATE invoices SET amount = 100000000",
        "UPDATE invoices SET amount_paid = -1",
        "UPDATE invoices SET status = 'paid'",
        "UPDATE invoices SET status = 'partial'",
        "UPDATE invoices SET status = 'cancelled'",
        "UPDATE invoices SET due_date = '2026-01-01'",
    ],
)
def test_the_database_refuses_inconsistent_money_and_status(engine, sql):
    issued(engine)
    with pytest.raises(sa.exc.DBAPIError):
        with engine.begin() as conn:
            conn.execute(sa.text(sql))


def test_sqlite_refuses_non_integer_money(make_db_url):
    from ledger.db import create_engine

    engine = create_engine(make_db_url("sqlite"))
    try:
        issued(engine)
        for value in ("12000.5", "'12000円'", "X'3132'"):
            with pytest.raises(sa.exc.DBAPIError):
                with engine.begin() as conn:
                    conn.execute(sa.text(f"UPDATE invoices SET amount = {value}"))
    finally:
        engine.dispose()
