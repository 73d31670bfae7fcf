"""``invoices.payments``: the hooks payments call on an invoice (record_payment with the late fee
and an effective date, and its variant for an invoice the caller has locked; record_refund
re-opening the receivable), on both engines."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from invoices.errors import InvalidInvoice, InvoiceCancelled, InvoiceNotFound
from invoices.model import Status
from invoices.payments import (
    PaymentRecorded,
    lock_invoice,
    record_payment,
    record_payment_locked,
    record_refund,
)
from invoices.service import amend_invoice, cancel_invoice, get_invoice, invoice_history
from ledger.clock import to_utc
from ledger.db import read_transaction, run_transaction
from tests.invoices._support import CTX
from tests.payments.support import balance, issue

RECEIVABLE = "1100:FIXED_ASSET"


def entry(engine: Engine, entry_id: int) -> tuple[date, set[tuple[str, str, int]]]:
    with engine.connect() as conn:
        day = conn.execute(sa.text("SELECT effective_date FROM ledger_entries WHERE id = :e"), {"e": entry_id}).scalar_one()
        rows = conn.execute(
            sa.text("SELECT a.code, l.side, l.amount FROM ledger_lines l JOIN ledger_accounts a ON a.id = l.account_id "
                    "WHERE l.entry_id = :e"),  # fmt: skip
            {"e": entry_id},
        )
        lines = {(r.code, r.side, r.amount) for r in rows}
    return (day if isinstance(day, date) else date.fromisoformat(day)), lines


def test_a_payment_books_its_late_fee_in_the_same_entry_on_its_effective_date(engine: Engine) -> None:
    invoice = issue(engine)
    paid = run_transaction(
        engine,
        lambda conn: record_payment(conn, CTX, invoice.notice_number, invoice.amount, reference="stripe:pi_1",
                                    actor="system:payments", late_fee=1_200, effective_date=date(2026, 5, 20)),  # fmt: skip
    )
    assert paid.status is Status.PAID and paid.amount_paid == invoice.amount
    with read_transaction(engine) as conn:
        change = invoice_history(conn, invoice.notice_number)[-1]
    assert change.kind == "payment" and change.reference == "stripe:pi_1"
    assert entry(engine, change.ledger_entry_id) == (
        date(2026, 5, 20),
        {("1200", "D", invoice.amount + 1_200), (RECEIVABLE, "C", invoice.amount), ("4300", "C", 1_200)},
    )
    again = run_transaction(
        engine,
        lambda conn: record_payment(conn, CTX, invoice.notice_number, invoice.amount, reference="stripe:pi_1",
                                    actor="system:payments", late_fee=1_200),  # fmt: skip
    )
    assert again.version == paid.version and balance(engine, "4300") == -1_200


def test_a_refund_reopens_the_receivable_and_the_invoice(engine: Engine) -> None:
    invoice = issue(engine)
    receivable = balance(engine, RECEIVABLE)
    run_transaction(engine, lambda conn: record_payment(conn, CTX, invoice.notice_number, invoice.amount,
                                                        reference="p1", actor="t", late_fee=500))  # fmt: skip
    reopened, entry_id = run_transaction(
        engine,
        lambda conn: record_refund(conn, CTX, invoice.notice_number, 4_000, late_fee=500, reference="refund:r1",
                                   actor="staff:k1", effective_date=date(2026, 6, 1)),  # fmt: skip
    )
    assert reopened.status is Status.OPEN and reopened.amount_paid == invoice.amount - 4_000
    assert entry(engine, entry_id) == (
        date(2026, 6, 1), {(RECEIVABLE, "D", 4_000), ("4300", "D", 500), ("1200", "C", 4_500)}
    )
    assert balance(engine, RECEIVABLE) == receivable - invoice.amount + 4_000
    replay, replay_entry = run_transaction(
        engine, lambda conn: record_refund(conn, CTX, invoice.notice_number, 4_000, late_fee=500,
                                           reference="refund:r1", actor="staff:k1"),  # fmt: skip
    )
    assert (replay.version, replay_entry) == (reopened.version, entry_id)
    with read_transaction(engine) as conn:
        last = invoice_history(conn, invoice.notice_number)[-1]
    assert (last.kind, last.reason, last.paid_before, last.paid_after) == (
        "payment", "refund", invoice.amount, invoice.amount - 4_000,
    )  # fmt: skip


def test_refunding_an_invoice_amended_below_what_was_paid_takes_its_overpayment_first(engine: Engine) -> None:
    invoice = issue(engine)  # ¥12,300
    run_transaction(engine, lambda conn: record_payment(conn, CTX, invoice.notice_number, invoice.amount,
                                                        reference="p1", actor="t"))  # fmt: skip
    run_transaction(engine, lambda conn: amend_invoice(conn, CTX, invoice.notice_number, 10_000, reason="減額", actor="t"))
    overpaid_2100 = balance(engine, "2100")
    assert overpaid_2100 == -2_300
    after, entry_id = run_transaction(
        engine, lambda conn: record_refund(conn, CTX, invoice.notice_number, 3_000, reference="r", actor="t")
    )
    # 2,300 was 過誤納金 on this invoice; the other 700 is owed again.
    assert entry(engine, entry_id)[1] == {("2100", "D", 2_300), (RECEIVABLE, "D", 700), ("1200", "C", 3_000)}
    assert (after.status, after.amount_paid, after.outstanding) == (Status.OPEN, 9_300, 700)
    assert balance(engine, "2100") == 0


def test_refund_refusals_have_codes(engine: Engine) -> None:
    invoice = issue(engine)
    run_transaction(engine, lambda conn: record_payment(conn, CTX, invoice.notice_number, 1_000, reference="p", actor="t"))

    def refused(**kwargs: object) -> str:
        values: dict[str, object] = {"principal": 100, "reference": "r", "actor": "t", **kwargs}
        principal = values.pop("principal")
        with pytest.raises(InvalidInvoice) as caught:
            run_transaction(engine, lambda conn: record_refund(conn, CTX, invoice.notice_number, principal, **values))  # type: ignore[arg-type]
        return caught.value.code

    assert refused(principal=1_001) == "invoice.refund_exceeds_paid"
    assert refused(principal=0) == "invoice.amount_zero"
    assert refused(principal=-1) == "invoice.amount_not_integer"
    assert refused(late_fee=-5) == "invoice.amount_negative"
    assert refused(late_fee=1.5) == "invoice.amount_not_integer"
    assert refused(effective_date=datetime(2026, 6, 1, tzinfo=timezone.utc)) == "invoice.invalid_date"
    assert refused(reference=" ") == "invoice.missing_value"
    assert refused(actor="") == "invoice.missing_actor"
    with pytest.raises(InvalidInvoice) as bad_fee:
        run_transaction(engine, lambda conn: record_payment(conn, CTX, invoice.notice_number, 1, reference="q",
                                                            actor="t", late_fee=-1))  # fmt: skip
    assert bad_fee.value.code == "invoice.amount_negative"


def test_lock_invoice_finds_by_public_id(engine: Engine) -> None:
    invoice = issue(engine)
    assert run_transaction(engine, lambda conn: lock_invoice(conn, invoice.public_id)).id == invoice.id
    with pytest.raises(InvoiceNotFound):
        run_transaction(engine, lambda conn: lock_invoice(conn, "0" * 24))


def test_the_locked_variant_writes_what_record_payment_writes_without_reading_the_invoice_again(
    engine: Engine,
) -> None:
    by_number, by_row = issue(engine), issue(engine)
    run_transaction(engine, lambda conn: record_payment(conn, CTX, by_number.notice_number, 5_000, reference="p",
                                                        actor="t", late_fee=700, effective_date=date(2026, 5, 20)))  # fmt: skip

    def pay_locked(conn: Connection, reference: str = "p", amount: int = 5_000) -> PaymentRecorded:
        return record_payment_locked(conn, CTX, lock_invoice(conn, by_row.public_id), amount, reference=reference,
                                     actor="t", late_fee=700, effective_date=date(2026, 5, 20))  # fmt: skip

    done = run_transaction(engine, pay_locked)
    assert not done.repeated
    with read_transaction(engine) as conn:
        stored = get_invoice(conn, by_row.notice_number)
        other = get_invoice(conn, by_number.notice_number)
        row_history, number_history = invoice_history(conn, by_row.notice_number), invoice_history(conn, by_number.notice_number)
    # What it returns is what is stored (the time as written, read back on either engine).
    assert replace(done.invoice, updated_at=to_utc(done.invoice.updated_at)) == replace(
        stored, updated_at=to_utc(stored.updated_at)
    )
    assert (stored.amount_paid, stored.status, stored.version) == (other.amount_paid, other.status, other.version)
    assert (stored.amount_paid, stored.status, stored.version) == (5_000, Status.OPEN, by_row.version + 1)
    made, expected = row_history[-1], number_history[-1]
    assert made.ledger_entry_id == done.entry_id
    fields = ("kind", "version", "actor", "reason", "reference", "amount_before", "amount_after", "paid_before",
              "paid_after", "status_before", "status_after", "overpayment_entry_id")  # fmt: skip
    assert [getattr(made, f) for f in fields] == [getattr(expected, f) for f in fields]
    assert entry(engine, done.entry_id) == entry(engine, expected.ledger_entry_id) == (
        date(2026, 5, 20), {("1200", "D", 5_700), (RECEIVABLE, "C", 5_000), ("4300", "C", 700)}
    )

    # A repeated reference writes nothing and names the entry that booked it.
    again = run_transaction(engine, pay_locked)
    assert (again.repeated, again.entry_id, again.invoice.version) == (True, done.entry_id, stored.version)
    with read_transaction(engine) as conn:
        assert len(invoice_history(conn, by_row.notice_number)) == len(row_history)
    # A new reference pays the rest (¥7,300 of ¥12,300); what goes beyond it is 過誤納金.
    rest = run_transaction(engine, lambda conn: pay_locked(conn, reference="q", amount=10_000))
    assert (rest.invoice.status, rest.invoice.amount_paid) == (Status.OVERPAID, 15_000)
    assert entry(engine, rest.entry_id)[1] == {
        ("1200", "D", 10_700), (RECEIVABLE, "C", 7_300), ("2100", "C", 2_700), ("4300", "C", 700),
    }  # fmt: skip


def test_the_locked_variant_refuses_what_record_payment_refuses(engine: Engine) -> None:
    invoice = issue(engine)

    def refused(**kwargs: object) -> str:
        values: dict[str, object] = {"amount": 100, "reference": "r", "actor": "t", **kwargs}
        amount = values.pop("amount")
        with pytest.raises(InvalidInvoice) as caught:
            run_transaction(engine, lambda conn: record_payment_locked(conn, CTX, lock_invoice(conn, invoice.public_id),
                                                                       amount, **values))  # type: ignore[arg-type]  # fmt: skip
        return caught.value.code

    assert refused(amount=0) == "invoice.amount_zero"
    assert refused(amount=1.5) == "invoice.amount_not_integer"
    assert refused(late_fee=-1) == "invoice.amount_negative"
    assert refused(effective_date=datetime(2026, 6, 1, tzinfo=timezone.utc)) == "invoice.invalid_date"
    assert refused(reference="") == "invoice.missing_value"
    assert refused(actor=" ") == "invoice.missing_actor"
    run_transaction(engine, lambda conn: cancel_invoice(conn, CTX, invoice.notice_number, reason="取消", actor="t"))
    with pytest.raises(InvoiceCancelled):
        run_transaction(engine, lambda conn: record_payment_locked(conn, CTX, lock_invoice(conn, invoice.public_id),
                                                                   100, reference="r", actor="t"))  # fmt: skip
    with read_transaction(engine) as conn:
        assert get_invoice(conn, invoice.notice_number).amount_paid == 0
