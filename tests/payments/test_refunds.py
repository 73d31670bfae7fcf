"""Refunds (還付) through the service and the sandbox: full, partial, of 過誤納金, the
compare-and-set on the refundable amount, provider refusals and outages. Both engines."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.audit import AuditFilter, list_audit
from gateway.payments import (
    Attempt,
    InvalidPaymentRequest,
    NotRefundable,
    PaymentService,
    RefundableMismatch,
    RefundStatus,
)
from gateway.providers import ProviderError
from gateway.sandbox import SandboxServer
from invoices.model import Status
from invoices.payments import record_payment
from invoices.service import get_invoice
from ledger.db import read_transaction, run_transaction
from tests.invoices._support import CTX
from tests.payments.support import (  # noqa: F401 (fixtures)
    API_KEY,
    CLERK,
    OTHER_CLERK,
    RETURN_URL,
    Clock,
    assert_books_ok,
    balance,
    books,
    clock,
    issue,
    overdue,
    sandbox,
    service,
)


def paid_attempt(engine: Engine, service: PaymentService, *, late: bool = False) -> Attempt:
    invoice = overdue(engine) if late else issue(engine)
    attempt = service.start_or_join(invoice.public_id)
    return service.confirm_with_test_method(attempt.public_id, "pm_card_visa", return_url=RETURN_URL)


def status_of(engine: Engine, notice_number: str) -> tuple[Status, int]:
    with read_transaction(engine) as conn:
        invoice = get_invoice(conn, notice_number)
    return invoice.status, invoice.amount_paid


def test_a_full_refund_of_a_valid_payment_reopens_the_invoice(
    engine: Engine, service: PaymentService, sandbox: SandboxServer
) -> None:
    paid = paid_attempt(engine, service, late=True)
    receivable_before = balance(engine, "1100:FIXED_ASSET")

    refund = service.refund(paid.public_id, amount=paid.amount, expected_refundable=paid.amount,
                            reason="誤って納付された", actor=CLERK)  # fmt: skip

    assert refund.status is RefundStatus.SUCCEEDED and refund.provider_refund_id
    assert (refund.overpayment_part, refund.principal_part, refund.late_fee_part) == (0, 1_000_000, paid.late_fee)
    assert status_of(engine, paid.notice_number) == (Status.OPEN, 0)
    assert balance(engine, "1100:FIXED_ASSET") == receivable_before + 1_000_000  # owed again
    after = service.get_attempt(paid.public_id)
    assert (after.refunded, after.refundable) == (paid.amount, 0)
    assert books(engine).clearing == 0 and books(engine).late_fees == 0
    charge = sandbox.stripe_client(api_key=API_KEY).v1.payment_intents.retrieve(
        paid.provider_payment_id, params={"expand": ["latest_charge"]}
    ).latest_charge
    assert charge.amount_refunded == paid.amount
    with read_transaction(engine) as conn:
        actions = [e.action for e in list_audit(conn, AuditFilter(subject=f"payment:{paid.public_id}")).entries]
    assert actions == ["refund.complete", "refund.request", "payment.succeed"]
    assert_books_ok(engine)


def test_partial_refunds_take_principal_before_the_late_fee(engine: Engine, service: PaymentService) -> None:
    paid = paid_attempt(engine, service, late=True)
    first = service.refund(paid.public_id, amount=999_000, expected_refundable=paid.amount, reason="一部還付", actor=CLERK)
    assert (first.principal_part, first.late_fee_part) == (999_000, 0)
    assert status_of(engine, paid.notice_number) == (Status.OPEN, 1_000)
    left = paid.amount - 999_000
    second = service.refund(paid.public_id, amount=left - 100, expected_refundable=left, reason="残り", actor=CLERK)
    assert (second.principal_part, second.late_fee_part) == (1_000, left - 100 - 1_000)
    assert service.get_attempt(paid.public_id).refundable == 100
    assert books(engine).late_fees == 100
    assert_books_ok(engine)


def test_a_stale_refundable_amount_is_refused_and_nothing_happens(engine: Engine, service: PaymentService) -> None:
    paid = paid_attempt(engine, service)
    service.refund(paid.public_id, amount=300, expected_refundable=paid.amount, reason="一部", actor=CLERK)
    # A second clerk still looking at the page from before.
    with pytest.raises(RefundableMismatch) as stale:
        service.refund(paid.public_id, amount=300, expected_refundable=paid.amount, reason="一部", actor=OTHER_CLERK)
    assert stale.value.code == "payment.refundable_mismatch"
    assert stale.value.detail["refundable"] == paid.amount - 300
    assert len(service.refunds_of(paid.public_id)) == 1
    assert books(engine).clearing == paid.amount - 300
    assert_books_ok(engine)


def test_refund_requests_are_checked_before_anything_is_written(engine: Engine, service: PaymentService) -> None:
    paid = paid_attempt(engine, service)
    cases = [
        ({"amount": 0}, "payment.invalid_amount"),
        ({"amount": 1.5}, "payment.invalid_amount"),
        ({"amount": True}, "payment.invalid_amount"),
        ({"amount": paid.amount + 1}, "payment.invalid_amount"),
        ({"expected_refundable": -1}, "payment.invalid_amount"),
        ({"expected_refundable": "12300"}, "payment.invalid_amount"),
        ({"reason": "  "}, "payment.invalid_reason"),
        ({"reason": "x" * 501}, "payment.invalid_reason"),
    ]
    for change, code in cases:
        request = {"amount": 100, "expected_refundable": paid.amount, "reason": "理由", **change}
        with pytest.raises(InvalidPaymentRequest) as refused:
            service.refund(paid.public_id, actor=CLERK, **request)  # type: ignore[arg-type]
        assert refused.value.code == code, change
    unpaid = service.start_or_join(issue(engine).public_id)
    with pytest.raises(NotRefundable) as nothing:
        service.refund(unpaid.public_id, amount=1, expected_refundable=0, reason="x", actor=CLERK)
    assert nothing.value.code == "payment.not_refundable"
    assert service.refunds_of(paid.public_id) == []


def test_refunding_an_overpayment_clears_it(engine: Engine, service: PaymentService) -> None:
    invoice = issue(engine)
    attempt = service.start_or_join(invoice.public_id)
    run_transaction(engine, lambda conn: record_payment(conn, CTX, invoice.notice_number, invoice.amount,
                                                        reference="konbini:9", actor="t", clearing_account="1300"))  # fmt: skip
    paid = service.confirm_with_test_method(attempt.public_id, "pm_card_visa", return_url=RETURN_URL)
    assert paid.overpaid == invoice.amount

    half = service.refund(paid.public_id, amount=5_000, expected_refundable=invoice.amount, reason="過誤納還付", actor=CLERK)
    assert (half.overpayment_part, half.principal_part) == (5_000, 0)
    assert service.list_overpayments(status="open")[0][0].open_amount == invoice.amount - 5_000
    service.refund(paid.public_id, amount=invoice.amount - 5_000, expected_refundable=invoice.amount - 5_000,
                   reason="過誤納還付", actor=CLERK)  # fmt: skip
    assert service.list_overpayments(status="open")[0] == []
    refunded = service.list_overpayments(status="refunded")[0]
    assert [o.attempt_public_id for o in refunded] == [paid.public_id]
    assert status_of(engine, invoice.notice_number) == (Status.PAID, invoice.amount)  # the bill stays paid
    assert books(engine).overpayments == 0
    assert_books_ok(engine)


def test_a_refund_the_provider_refuses_is_failed_and_released(
    engine: Engine, service: PaymentService, sandbox: SandboxServer
) -> None:
    paid = paid_attempt(engine, service)
    # Someone refunded in the provider's dashboard, outside nofu.
    sandbox.stripe_client(api_key=API_KEY).v1.refunds.create(params={"payment_intent": paid.provider_payment_id})
    with pytest.raises(ProviderError) as refused:
        service.refund(paid.public_id, amount=paid.amount, expected_refundable=paid.amount, reason="x", actor=CLERK)
    assert refused.value.code == "provider.invalid_request" and not refused.value.retryable
    (failed,) = service.refunds_of(paid.public_id)
    assert failed.status is RefundStatus.FAILED and failed.failure_code == "provider.invalid_request"
    assert service.get_attempt(paid.public_id).refundable == paid.amount  # released
    assert status_of(engine, paid.notice_number) == (Status.PAID, paid.amount)
    assert_books_ok(engine)


def test_a_refund_the_provider_did_not_answer_stays_pending_and_is_finished_by_the_sweep(
    engine: Engine, service: PaymentService, sandbox: SandboxServer, clock: Clock
) -> None:
    paid = paid_attempt(engine, service)
    sandbox.control.fail_api_requests(3, when="after", match="POST /v1/refunds")  # the SDK tries 3 times
    pending = service.refund(paid.public_id, amount=1_000, expected_refundable=paid.amount, reason="x", actor=CLERK)
    assert pending.status is RefundStatus.PENDING and pending.provider_refund_id is None
    assert service.get_attempt(paid.public_id).refundable == paid.amount - 1_000  # reserved
    assert books(engine).clearing == paid.amount  # nothing booked yet

    assert service.expire_stale().refunds_completed == 0  # too early to retry
    clock.advance(minutes=2)
    report = service.expire_stale()
    assert (report.refunds_completed, report.refunds_left) == (1, 0)
    (done,) = service.refunds_of(paid.public_id)
    assert done.status is RefundStatus.SUCCEEDED
    # The provider refunded once, although our first request ran there and its answer was lost.
    refunds = sandbox.stripe_client(api_key=API_KEY).v1.refunds.list(params={"payment_intent": paid.provider_payment_id})
    assert [r.amount for r in refunds.data] == [1_000]
    assert books(engine).clearing == paid.amount - 1_000
    assert_books_ok(engine)


def test_refund_rows_and_overpayments_are_never_deleted(engine: Engine, service: PaymentService) -> None:
    paid = paid_attempt(engine, service)
    service.refund(paid.public_id, amount=100, expected_refundable=paid.amount, reason="x", actor=CLERK)
    for table in ("refunds", "payment_attempts", "receipts"):
        with pytest.raises(sa.exc.DBAPIError):
            with engine.begin() as conn:
                conn.execute(sa.text(f"DELETE FROM {table}"))
    with pytest.raises(sa.exc.DBAPIError):
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE receipts SET amount = amount + 1"))
