"""``invoices.payments``: the hooks payments call on an invoice (record_payment with the late fee
and an effective date; record_refund re-opening the receivable), on both engines."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from invoices.errors import InvalidInvoice, InvoiceNotFound
from invoices.model import Status
from invoices.payments import lock_invoice, record_payment, record_refund
from invoices.service import amend_invoice, invoice_history
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
