"""Issuing one invoice: ledger posting, numbers, idempotency, refusals, personal data."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date

import pytest
import sqlalchemy as sa

import ledger
from invoices.errors import (
    DuplicateNoticeNumber,
    ExternalRefConflict,
    IdempotencyConflict,
    InvalidInvoice,
    InvoiceNotFound,
)
from invoices.model import Status
from invoices.notice_number import make_notice_number, parse_notice_number
from invoices.service import (
    get_invoice,
    get_invoice_by_public_id,
    invoice_history,
    invoice_payment_code,
    issue_invoice,
)
from ledger.db import run_transaction
from tests.invoices._support import ADDRESS, CONTACT, CTX, NAME, TODAY, counts, net, request


def issue(engine, req=None, **kwargs):
    kwargs.setdefault("actor", "staff:1")
    return run_transaction(engine, lambda c: issue_invoice(c, CTX, req or request(), **kwargs))


def test_issue_posts_receivable_and_revenue_in_the_same_transaction(engine):
    issued = issue(engine)
    invoice = issued.invoice
    assert issued.created
    assert invoice.status is Status.OPEN
    assert (invoice.amount, invoice.amount_paid, invoice.version) == (12_300, 0, 1)
    assert invoice.display_number == "2026-00000001-" + invoice.notice_number[-1]
    assert parse_notice_number(invoice.display_number).digits == invoice.notice_number
    assert net(engine, "1100:FIXED_ASSET") == 12_300
    assert net(engine, "4100:FIXED_ASSET") == -12_300
    with engine.connect() as conn:
        assert ledger.balance(conn, "1100").amount == 12_300
        assert ledger.trial_balance(conn).balanced
        assert ledger.verify(conn).ok
        lines = conn.execute(
            sa.text(
                "SELECT a.code, l.side, l.amount FROM ledger_lines l JOIN ledger_accounts a "
                "ON a.id = l.account_id WHERE l.entry_id = :e ORDER BY l.line_no"
            ),
            {"e": invoice.issue_entry_id},
        ).all()
    assert [tuple(x) for x in lines] == [("1100:FIXED_ASSET", "D", 12_300), ("4100:FIXED_ASSET", "C", 12_300)]
    history = run_transaction(engine, lambda c: invoice_history(c, invoice.notice_number))
    assert [(h.kind, h.amount_after, h.ledger_entry_id, h.actor) for h in history] == [
        ("issue", 12_300, invoice.issue_entry_id, "staff:1")
    ]


def test_a_fee_is_credited_to_fee_revenue_and_needs_no_installment(engine):
    invoice = issue(engine, request(tax_code="RESIDENT_COPY", installment=None, amount=300)).invoice
    assert invoice.installment is None
    assert net(engine, "1100:RESIDENT_COPY") == 300
    assert net(engine, "4200:RESIDENT_COPY") == -300


def test_sequences_count_up_per_fiscal_year(engine):
    a = issue(engine).invoice
    b = issue(engine).invoice
    c = issue(engine, request(fiscal_year=2027, due_date=date(2027, 4, 30))).invoice
    assert (a.sequence, b.sequence, c.sequence) == (1, 2, 1)
    assert c.display_number.startswith("2027-00000001-")


def test_an_assigned_notice_number_is_kept_and_allocation_moves_past_it(engine):
    assigned = make_notice_number(2026, 500)
    invoice = issue(engine, request(notice_number=assigned.replace("-", " "))).invoice
    assert invoice.display_number == assigned
    assert issue(engine).invoice.sequence == 501


def test_duplicate_assigned_notice_number_is_refused(engine):
    number = make_notice_number(2026, 7)
    issue(engine, request(notice_number=number, external_ref="A"))
    before = counts(engine)
    with pytest.raises(DuplicateNoticeNumber) as caught:
        issue(engine, request(notice_number=number, external_ref="B"))
    assert caught.value.code == "invoice.duplicate_notice_number"
    assert counts(engine) == before


def test_same_idempotency_key_and_request_returns_the_same_invoice(engine):
    first = issue(engine, idempotency_key="req-1")
    again = issue(engine, idempotency_key="req-1")
    assert not again.created
    assert again.invoice.id == first.invoice.id
    assert net(engine, "1100:FIXED_ASSET") == 12_300


def test_same_idempotency_key_with_another_request_is_a_conflict(engine):
    issue(engine, idempotency_key="req-1")
    before = counts(engine)
    for other in (request(amount=12_301), request(payer_name="山田 花子"), request(payer_contact=None)):
        with pytest.raises(IdempotencyConflict) as caught:
            issue(engine, other, idempotency_key="req-1")
        assert caught.value.code == "invoice.idempotency_conflict"
    assert counts(engine) == before


def test_external_ref_replays_identical_content_and_refuses_other_content(engine):
    first = issue(engine, request(external_ref="TAX-1")).invoice
    again = issue(engine, request(external_ref="TAX-1"), idempotency_key="k")
    assert not again.created and again.invoice.id == first.id
    before = counts(engine)
    with pytest.raises(ExternalRefConflict) as caught:
        issue(engine, request(external_ref="TAX-1", amount=1))
    assert caught.value.code == "invoice.external_ref_conflict"
    assert counts(engine) == before


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"tax_code": "NOPE"}, "invoice.unknown_tax_code", "tax_code"),
        ({"amount": 0}, "invoice.amount_zero", "amount"),
        ({"amount": -5}, "invoice.amount_negative", "amount"),
        ({"amount": 12.5}, "invoice.amount_not_integer", "amount"),
        ({"amount": True}, "invoice.amount_not_integer", "amount"),
        ({"amount": 100_000_000}, "invoice.amount_too_large", "amount"),
        ({"due_date": date(2026, 3, 31)}, "invoice.due_before_issue", "due_date"),
        ({"issue_date": None, "due_date": date(2026, 3, 31)}, "invoice.due_before_issue", "due_date"),
        ({"due_date": "2026-02-30"}, "invoice.invalid_date", "due_date"),
        ({"fiscal_year": 1999}, "invoice.invalid_fiscal_year", "fiscal_year"),
        ({"installment": None}, "invoice.invalid_installment", "installment"),
        ({"installment": 5}, "invoice.invalid_installment", "installment"),
        ({"notice_number": "2026-00000001-0"}, "invoice.invalid_notice_number", "notice_number"),
        (
            {"notice_number": make_notice_number(2025, 1)},
            "invoice.notice_number_year_mismatch",
            "notice_number",
        ),
        ({"payer_ref": "12 34"}, "invoice.invalid_payer_ref", "payer_ref"),
        ({"payer_name": "  "}, "invoice.missing_value", "payer_name"),
        ({"payer_name": "x" * 201}, "invoice.value_too_long", "payer_name"),
        ({"payer_address": "a\x00b"}, "invoice.invalid_text", "payer_address"),
        ({"external_ref": "has space"}, "invoice.invalid_external_ref", "external_ref"),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_written(engine, overrides, code, field):
    before = counts(engine)
    with pytest.raises(InvalidInvoice) as caught:
        issue(engine, request(**overrides))
    assert (caught.value.code, caught.value.field) == (code, field)
    assert counts(engine) == before


def test_actor_and_idempotency_key_are_checked(engine):
    with pytest.raises(InvalidInvoice) as caught:
        issue(engine, actor=" ")
    assert caught.value.code == "invoice.missing_actor"
    with pytest.raises(InvalidInvoice) as caught:
        issue(engine, idempotency_key="x" * 256)
    assert caught.value.code == "invoice.invalid_idempotency_key"


def test_lookup_by_any_spelling_of_the_number_and_by_public_id(engine):
    invoice = issue(engine).invoice
    full_width = invoice.display_number.translate(str.maketrans("0123456789-", "０１２３４５６７８９－"))
    with engine.connect() as conn:
        assert get_invoice(conn, full_width).id == invoice.id
        assert get_invoice(conn, invoice.notice_number).id == invoice.id
        assert get_invoice_by_public_id(conn, invoice.public_id).id == invoice.id
        with pytest.raises(InvoiceNotFound):
            get_invoice(conn, make_notice_number(2026, 99))
        with pytest.raises(InvoiceNotFound):
            get_invoice_by_public_id(conn, "0" * 24)
        with pytest.raises(InvoiceNotFound):
            get_invoice_by_public_id(conn, "not hex")
        with pytest.raises(InvalidInvoice) as caught:
            get_invoice(conn, "12345")
        assert caught.value.code == "invoice.invalid_notice_number"


def test_personal_data_is_encrypted_at_rest_and_decrypted_on_request(engine, caplog):
    caplog.set_level(logging.DEBUG)
    invoice = issue(engine).invoice
    with engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT * FROM invoices")).one()
        changes = conn.execute(sa.text("SELECT * FROM invoice_changes")).all()
        entries = conn.execute(sa.text("SELECT description, source_ref FROM ledger_entries")).all()
    dumped = repr(tuple(raw)) + repr(changes) + repr(entries)
    for secret in (NAME, ADDRESS, CONTACT, "山田"):
        assert secret not in dumped
        assert secret not in caplog.text
        assert secret not in repr(invoice)
    assert raw.payer_name.startswith("v1.t1.")
    payer = invoice.payer(CTX.pii)
    assert (payer.name, payer.address, payer.contact) == (NAME, ADDRESS, CONTACT)
    assert NAME not in repr(payer) and NAME not in repr(request())
    # The ciphertext is bound to its row: moved to another invoice, it does not decrypt.
    other = issue(engine).invoice
    moved = replace(other, payer_name_blob=invoice.payer_name_blob)
    with pytest.raises(Exception) as caught:
        moved.payer(CTX.pii)
    assert caught.value.code == "pii.decrypt_failed"


def test_payment_code_names_the_public_id_not_the_notice_number(engine):
    invoice = issue(engine).invoice
    code = invoice_payment_code(CTX.keyring, invoice)
    claims = CTX.keyring.verify(code.token)
    assert claims.ref.hex() == invoice.public_id
    assert claims.generation == 0
    assert invoice.notice_number not in code.token
    assert len(code.confirmation_code) == 6
    assert invoice_payment_code(CTX.keyring, invoice) == code  # deterministic, so printable twice


def test_issue_date_defaults_to_the_business_day(engine):
    invoice = issue(engine, request(issue_date=None)).invoice
    assert invoice.issue_date == TODAY
