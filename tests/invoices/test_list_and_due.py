"""Listing with filters and keyset pagination; the amount due with its late fee."""

from __future__ import annotations

from datetime import date

import pytest

from invoices.errors import InvalidInvoice
from invoices.late_fee import compute_late_fee
from invoices.model import Status
from invoices.service import amount_due, cancel_invoice, issue_invoice, list_invoices, record_payment
from ledger.db import run_transaction
from tests.invoices._support import CTX, request


def issue_many(engine, requests):
    def work(conn):
        return [issue_invoice(conn, CTX, r, actor="staff").invoice for r in requests]

    return run_transaction(engine, work)


def test_pages_walk_every_invoice_once_in_issue_order(engine):
    made = issue_many(engine, [request(payer_ref=f"P{i}") for i in range(7)])
    seen, cursor, pages = [], None, 0
    while True:
        with engine.connect() as conn:
            page = list_invoices(conn, cursor=cursor, limit=3)
        pages += 1
        seen.extend(i.id for i in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [i.id for i in made]
    assert pages == 3


def test_filters_combine(engine):
    a, b, c, d = issue_many(
        engine,
        [
            request(payer_ref="P1"),
            request(payer_ref="P2", tax_code="RESIDENT_TAX", installment=2, due_date=date(2026, 8, 31)),
            request(payer_ref="P1", fiscal_year=2027, due_date=date(2027, 4, 30)),
            request(payer_ref="P1", tax_code="RESIDENT_COPY", installment=None, amount=300),
        ],
    )
    run_transaction(engine, lambda conn: cancel_invoice(conn, CTX, d.notice_number, reason="r", actor="s"))
    run_transaction(
        engine, lambda conn: record_payment(conn, CTX, a.notice_number, a.amount, reference="p", actor="s")
    )

    def ids(**filters):
        with engine.connect() as conn:
            return [i.id for i in list_invoices(conn, **filters).items]

    assert ids(payer_ref="P1") == [a.id, c.id, d.id]
    assert ids(status="paid") == [a.id]
    assert ids(status=Status.OPEN) == [b.id, c.id]
    assert ids(status="cancelled") == [d.id]
    assert ids(tax_code="RESIDENT_TAX") == [b.id]
    assert ids(fiscal_year=2027) == [c.id]
    assert ids(due_from=date(2026, 5, 1), due_to=date(2026, 12, 31)) == [b.id]
    assert ids(payer_ref="P1", fiscal_year=2026, status="paid") == [a.id]
    assert ids(payer_ref="nobody") == []


@pytest.mark.parametrize(
    "filters",
    [
        {"cursor": "garbage!"},
        {"cursor": "YWZ0ZXI6LTE"},
        {"limit": 0},
        {"limit": 501},
        {"status": "partial"},
        {"due_from": "2026-01-01"},
    ],
)
def test_bad_list_arguments_are_refused(engine, filters):
    with engine.connect() as conn, pytest.raises(InvalidInvoice) as caught:
        list_invoices(conn, **filters)
    assert caught.value.code in ("invoice.invalid_cursor", "invoice.invalid_filter")


def test_amount_due_adds_the_late_fee_after_the_due_date(engine):
    (invoice,) = issue_many(engine, [request(amount=1_000_000, due_date=date(2026, 4, 30))])
    on_time = amount_due(invoice, date(2026, 4, 30), ctx=CTX)
    assert (on_time.principal, on_time.late_fee_amount, on_time.total) == (1_000_000, 0, 1_000_000)
    late = amount_due(invoice, date(2026, 8, 31), ctx=CTX)
    expected = compute_late_fee(1_000_000, date(2026, 4, 30), date(2026, 8, 31), rates=CTX.rates)
    assert late.late_fee == expected and expected.amount > 0
    assert late.total == 1_000_000 + expected.amount
    assert [s.period.value for s in late.late_fee.segments] == ["first", "after"]


def test_fees_without_late_fee_and_settled_invoices_owe_only_principal(engine):
    fee, paid = issue_many(
        engine, [request(tax_code="FACILITY_USE", installment=None, amount=520_000), request(amount=50_000)]
    )
    due = amount_due(fee, date(2027, 4, 1), ctx=CTX)
    assert (due.principal, due.late_fee, due.total) == (520_000, None, 520_000)
    settled = run_transaction(
        engine, lambda conn: record_payment(conn, CTX, paid.notice_number, 50_000, reference="p", actor="s")
    )
    assert amount_due(settled, date(2027, 4, 1), ctx=CTX).total == 0
