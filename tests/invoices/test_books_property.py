"""Property: whatever sequence of issue / amend / cancel / payment happens, the books agree with
the invoices, and the trial balance balances."""

from __future__ import annotations

from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ledger
from invoices.errors import InvoiceError
from invoices.model import Status
from invoices.service import (
    amend_invoice,
    cancel_invoice,
    issue_invoice,
    list_invoices,
    record_payment,
)
from ledger.db import run_transaction
from tests.invoices._support import CTX, request

CODES = ("FIXED_ASSET", "RESIDENT_TAX", "BULKY_WASTE")
amounts = st.integers(min_value=1, max_value=99_999_999)
ops = st.one_of(
    st.tuples(st.just("issue"), st.sampled_from(CODES), amounts),
    st.tuples(st.just("amend"), st.integers(0, 20), amounts),
    st.tuples(st.just("cancel"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("pay"), st.integers(0, 20), st.integers(min_value=1, max_value=99_999_999)),
    st.tuples(st.just("pay_exact"), st.integers(0, 20), st.just(0)),
)


def _request(code: str, amount: int):
    if code == "BULKY_WASTE":
        return request(tax_code=code, installment=None, amount=amount)
    return request(
        tax_code=code,
        installment=1 if code == "FIXED_ASSET" else 2,
        amount=amount,
        due_date=date(2026, 8, 31),
    )


def _all(engine):
    items, cursor = [], None
    while True:
        with engine.connect() as conn:
            page = list_invoices(conn, cursor=cursor, limit=500)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(ops, min_size=1, max_size=12))
def test_receivable_equals_what_open_invoices_still_owe(engine, steps):
    counter = [0]
    for kind, target, amount in steps:
        invoices = _all(engine)
        counter[0] += 1
        ref = f"pay-{counter[0]}-{len(invoices)}"

        def work(conn):
            if kind == "issue":
                return issue_invoice(conn, CTX, _request(target, amount), actor="prop")
            if not invoices:
                return None
            invoice = invoices[target % len(invoices)]
            number = invoice.notice_number
            if kind == "amend":
                return amend_invoice(conn, CTX, number, amount, reason="prop", actor="prop")
            if kind == "cancel":
                return cancel_invoice(conn, CTX, number, reason="prop", actor="prop")
            if kind == "pay":
                return record_payment(conn, CTX, number, amount, reference=ref, actor="prop")
            return record_payment(conn, CTX, number, max(invoice.outstanding, 1), reference=ref, actor="prop")

        try:
            run_transaction(engine, work)
        except InvoiceError as exc:
            # Only the refusals the rules call for (cancelled, paid, unchanged amount).
            assert exc.code in ("invoice.cancelled", "invoice.not_cancellable", "invoice.amount_unchanged")

    invoices = _all(engine)
    with engine.connect() as conn:
        receivable = ledger.balance(conn, "1100").amount
        overpaid = ledger.balance(conn, "2100").amount
        revenue = ledger.balance(conn, "4100").amount + ledger.balance(conn, "4200").amount
        clearing = ledger.balance(conn, "1200").amount
        assert ledger.trial_balance(conn).balanced
        assert ledger.verify(conn).ok
    assert receivable == sum(i.amount - i.amount_paid for i in invoices if i.status is Status.OPEN)
    assert overpaid == sum(i.amount_paid - i.amount for i in invoices if i.status is Status.OVERPAID)
    assert revenue == sum(i.amount for i in invoices)
    assert clearing == sum(i.amount_paid for i in invoices)
    for code in CODES:
        with engine.connect() as conn:
            per_code = ledger.balance(conn, f"1100:{code}").amount
        assert per_code == sum(i.outstanding for i in invoices if i.tax_code == code)
    for invoice in invoices:
        if invoice.status is Status.CANCELLED:
            assert (invoice.amount, invoice.amount_paid) == (0, 0)
