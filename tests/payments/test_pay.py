"""Paying an invoice end to end through the payment service, the real Stripe SDK and the sandbox,
on SQLite and PostgreSQL. Every scenario ends with the books checked (``assert_books_ok``)."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
import sqlalchemy as sa
import stripe
from sqlalchemy.engine import Engine

from gateway.payments import (
    AttemptNotActive,
    AttemptStatus,
    InvalidPaymentRequest,
    InvoiceNotPayable,
    PaymentService,
    ProviderMismatch,
    ProviderNotConfigured,
    ReceiptKeys,
    ReceiptNotFound,
    UnknownProviderPayment,
)
from gateway.payments.schema import attempts, overpayments
from gateway.providers import ProviderError, ProviderPayment, StripeProvider
from gateway.sandbox import SandboxServer
from invoices.model import Status
from invoices.payments import record_payment
from invoices.service import cancel_invoice, get_invoice, revoke_payment_code
from ledger import business_date, close_day
from ledger.db import read_transaction, run_transaction
from tests.invoices._support import CTX
from tests.payments.support import (  # noqa: F401 (fixtures)
    API_KEY,
    RECEIPT_KEY,
    RETURN_URL,
    Clock,
    assert_books_ok,
    books,
    clock,
    issue,
    make_provider,
    make_service,
    overdue,
    sandbox,
    service,
)


def invoice_of(engine: Engine, number: str):  # type: ignore[no-untyped-def]
    with read_transaction(engine) as conn:
        return get_invoice(conn, number)


def entry_lines(engine: Engine, entry_id: int) -> set[tuple[str, str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT a.code, l.side, l.amount FROM ledger_lines l JOIN ledger_accounts a ON a.id = l.account_id "
                "WHERE l.entry_id = :e"
            ),
            {"e": entry_id},
        )
        return {(r.code, r.side, r.amount) for r in rows}


def entry_date(engine: Engine, entry_id: int) -> date:
    with engine.connect() as conn:
        value = conn.execute(sa.text("SELECT effective_date FROM ledger_entries WHERE id = :e"), {"e": entry_id}).scalar_one()
    return value if isinstance(value, date) else date.fromisoformat(value)


def intents_for(server: SandboxServer, attempt_id: str) -> list[stripe.PaymentIntent]:
    client = server.stripe_client(api_key=API_KEY)
    return [pi for pi in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
            if pi.metadata["attempt_id"] == attempt_id]  # fmt: skip


# --- paying ---------------------------------------------------------------------------------


def test_pay_with_visa_records_principal_and_late_fee_once_with_a_receipt(
    engine: Engine, service: PaymentService, sandbox: SandboxServer
) -> None:
    invoice = overdue(engine)
    attempt = service.start_or_join(invoice.public_id)
    assert attempt.status is AttemptStatus.CREATED and attempt.provider == "sandbox"
    assert attempt.late_fee > 0 and attempt.amount == attempt.principal + attempt.late_fee == 1_000_000 + attempt.late_fee
    assert attempt.provider_payment_id and attempt.client_secret

    paid = service.confirm_with_test_method(attempt.public_id, "pm_card_visa", return_url=RETURN_URL)

    assert paid.status is AttemptStatus.SUCCEEDED
    assert (paid.amount_received, paid.principal_applied, paid.late_fee_applied, paid.overpaid) == (
        attempt.amount, 1_000_000, attempt.late_fee, 0,
    )  # fmt: skip
    after = invoice_of(engine, invoice.notice_number)
    assert after.status is Status.PAID and after.amount_paid == 1_000_000
    assert paid.ledger_entry_id is not None
    assert entry_lines(engine, paid.ledger_entry_id) == {
        ("1200", "D", attempt.amount),
        ("1100:FIXED_ASSET", "C", 1_000_000),
        ("4300", "C", attempt.late_fee),
    }
    assert paid.succeeded_at is not None
    assert entry_date(engine, paid.ledger_entry_id) == business_date(paid.succeeded_at)

    receipt = service.receipt_for_attempt(paid.public_id)
    assert receipt is not None and receipt.receipt_number == paid.receipt_number
    assert (receipt.kind, receipt.amount, receipt.principal, receipt.late_fee) == (
        "payment", attempt.amount, 1_000_000, attempt.late_fee,
    )  # fmt: skip
    assert receipt.provider_reference == attempt.provider_payment_id
    assert receipt.paid_at == paid.succeeded_at and receipt.paid_at_jst.utcoffset() == timedelta(hours=9)

    # The same outcome again (a webhook after the return flow, a reload): nothing moves.
    replay = service.apply_provider_outcome(make_provider(sandbox).retrieve_payment(attempt.provider_payment_id))
    assert replay.version == paid.version and replay.amount_received == attempt.amount
    assert service.refresh(attempt.public_id).version == paid.version
    assert books(engine).clearing == attempt.amount
    assert_books_ok(engine)


@pytest.mark.parametrize(
    ("method", "reason", "ja", "en"),
    [
        ("pm_card_chargeDeclined", "card_declined", "カードが承認されませんでした", "Your card was declined"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds", "利用可能額が不足", "insufficient funds"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "有効期限が切れています", "Your card has expired"),
    ],
)
def test_a_decline_fails_the_attempt_with_its_message_and_releases_the_invoice(
    engine: Engine, service: PaymentService, sandbox: SandboxServer, method: str, reason: str, ja: str, en: str
) -> None:
    invoice = issue(engine)
    attempt = service.start_or_join(invoice.public_id)

    failed = service.confirm_with_test_method(attempt.public_id, method, return_url=RETURN_URL)

    assert failed.status is AttemptStatus.FAILED
    assert failed.failure_code == reason
    assert ja in (failed.failure_text("ja") or "") and en in (failed.failure_text("en") or "")
    assert failed.amount_received == 0 and failed.receipt_number is None
    # Released only once the provider confirmed the intent can no longer take money.
    intent = sandbox.stripe_client(api_key=API_KEY).v1.payment_intents.retrieve(attempt.provider_payment_id)
    assert intent.status == "canceled"
    assert invoice_of(engine, invoice.notice_number).status is Status.OPEN

    retry = service.start_or_join(invoice.public_id)
    assert retry.public_id != attempt.public_id and retry.provider_payment_id != attempt.provider_payment_id
    assert service.confirm_with_test_method(retry.public_id, "pm_card_visa", return_url=RETURN_URL).status is AttemptStatus.SUCCEEDED
    assert books(engine).clearing == invoice.amount
    assert_books_ok(engine)


def test_a_double_tap_and_a_second_device_join_the_same_attempt(
    engine: Engine, service: PaymentService, sandbox: SandboxServer
) -> None:
    invoice = issue(engine)
    first = service.start_or_join(invoice.public_id)
    tap = service.start_or_join(invoice.public_id)
    other_device = make_service(engine, sandbox).start_or_join(invoice.public_id)  # another process
    assert first.public_id == tap.public_id == other_device.public_id
    assert first.provider_payment_id == tap.provider_payment_id == other_device.provider_payment_id
    assert first.client_secret == other_device.client_secret
    assert len(intents_for(sandbox, first.public_id)) == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(attempts)).scalar_one() == 1

    service.confirm_with_test_method(first.public_id, "pm_card_visa", return_url=RETURN_URL)
    with pytest.raises(InvoiceNotPayable) as refused:
        make_service(engine, sandbox).start_or_join(invoice.public_id)
    assert refused.value.code == "payment.invoice_paid"
    with pytest.raises(AttemptNotActive):
        service.confirm_with_test_method(first.public_id, "pm_card_visa", return_url=RETURN_URL)
    assert_books_ok(engine)


def test_paypay_redirect_approved_pays_and_rejected_fails(
    engine: Engine, service: PaymentService, sandbox: SandboxServer
) -> None:
    approved_invoice, rejected_invoice = issue(engine), issue(engine)
    for invoice, decision in ((approved_invoice, "approve"), (rejected_invoice, "reject")):
        attempt = service.start_or_join(invoice.public_id)
        waiting = service.confirm_with_test_method(attempt.public_id, "pm_paypay", return_url=RETURN_URL)
        assert waiting.status is AttemptStatus.REQUIRES_ACTION and waiting.next_action_url
        # A second tab while the resident is in the PayPay app: still the same attempt.
        assert service.start_or_join(invoice.public_id).public_id == attempt.public_id
        with httpx.Client() as browser:
            assert browser.get(waiting.next_action_url).status_code == 200
            answer = browser.post(f"{waiting.next_action_url}/{decision}")
        assert answer.status_code == 303 and answer.headers["location"].startswith(RETURN_URL)
        assert f"payment_intent={attempt.provider_payment_id}" in answer.headers["location"]
        done = service.refresh(attempt.public_id)  # what the return_url page does
        if decision == "approve":
            assert done.status is AttemptStatus.SUCCEEDED and done.amount_received == invoice.amount
        else:
            assert done.status is AttemptStatus.FAILED and done.failure_code == "authentication_failed"
    assert invoice_of(engine, approved_invoice.notice_number).status is Status.PAID
    assert invoice_of(engine, rejected_invoice.notice_number).status is Status.OPEN
    assert_books_ok(engine)


# --- money that is not owed -------------------------------------------------------------------


def test_paying_after_another_channel_paid_becomes_an_overpayment_for_staff(
    engine: Engine, service: PaymentService
) -> None:
    invoice = issue(engine)
    attempt = service.start_or_join(invoice.public_id)
    # The resident also paid at a convenience store while the card page was open.
    run_transaction(
        engine,
        lambda conn: record_payment(conn, CTX, invoice.notice_number, invoice.amount, reference="konbini:0001",
                                    actor="test:konbini", clearing_account="1300"),  # fmt: skip
    )

    paid = service.confirm_with_test_method(attempt.public_id, "pm_card_visa", return_url=RETURN_URL)

    assert paid.status is AttemptStatus.SUCCEEDED
    assert (paid.principal_applied, paid.late_fee_applied, paid.overpaid) == (0, 0, invoice.amount)
    after = invoice_of(engine, invoice.notice_number)
    assert after.status is Status.PAID and after.amount_paid == invoice.amount  # not counted twice
    assert entry_lines(engine, paid.ledger_entry_id) == {("1200", "D", invoice.amount), ("2100", "C", invoice.amount)}
    listed, _ = service.list_overpayments(status="open")
    assert [(o.attempt_public_id, o.reason.value, o.open_amount) for o in listed] == [
        (paid.public_id, "already_paid", invoice.amount)
    ]
    receipt = service.receipt_for_attempt(paid.public_id)
    assert receipt is not None and receipt.kind == "overpayment" and receipt.principal == 0
    assert books(engine).overpayments == invoice.amount
    assert_books_ok(engine)


def test_paying_a_bill_cancelled_meanwhile_becomes_an_overpayment(engine: Engine, service: PaymentService) -> None:
    invoice = issue(engine)
    attempt = service.start_or_join(invoice.public_id)
    run_transaction(
        engine, lambda conn: cancel_invoice(conn, CTX, invoice.notice_number, reason="誤課税", actor="test:staff")
    )
    paid = service.confirm_with_test_method(attempt.public_id, "pm_card_visa", return_url=RETURN_URL)
    over = service.overpayment_of(paid.public_id)
    assert over is not None and over.reason.value == "invoice_cancelled" and over.amount == invoice.amount
    assert invoice_of(engine, invoice.notice_number).status is Status.CANCELLED
    assert_books_ok(engine)


# --- refusals ---------------------------------------------------------------------------------


def test_what_cannot_be_paid_is_refused_with_specific_codes(engine: Engine, service: PaymentService) -> None:
    def refused(public_id: str, **kwargs: object) -> str:
        with pytest.raises(InvoiceNotPayable) as caught:
            service.start_or_join(public_id, **kwargs)  # type: ignore[arg-type]
        return caught.value.code

    paid = issue(engine)
    run_transaction(engine, lambda conn: record_payment(conn, CTX, paid.notice_number, paid.amount,
                                                        reference="bank:1", actor="t", clearing_account="1300"))  # fmt: skip
    assert refused(paid.public_id) == "payment.invoice_paid"

    cancelled = issue(engine)
    run_transaction(engine, lambda conn: cancel_invoice(conn, CTX, cancelled.notice_number, reason="x", actor="t"))
    assert refused(cancelled.public_id) == "payment.invoice_cancelled"

    revoked = issue(engine)
    run_transaction(engine, lambda conn: revoke_payment_code(conn, revoked.notice_number, reason="x", actor="t"))
    assert refused(revoked.public_id, generation=revoked.token_generation) == "payment.code_revoked"
    assert service.start_or_join(revoked.public_id, generation=revoked.token_generation + 1).active

    assert refused(issue(engine, amount=49).public_id) == "payment.amount_too_small"
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(attempts)).scalar_one() == 1


def test_test_methods_and_misconfiguration_are_refused(engine: Engine, service: PaymentService) -> None:
    attempt = service.start_or_join(issue(engine).public_id)
    with pytest.raises(InvalidPaymentRequest) as bad:
        service.confirm_with_test_method(attempt.public_id, "4242424242424242", return_url=RETURN_URL)
    assert bad.value.code == "payment.invalid_method"

    live = PaymentService(engine, CTX, StripeProvider("sk_live_not_used"), ReceiptKeys.from_config(RECEIPT_KEY))
    with pytest.raises(InvalidPaymentRequest) as live_refused:
        live.confirm_with_test_method(attempt.public_id, "pm_card_visa", return_url=RETURN_URL)
    assert live_refused.value.code == "payment.test_methods_disabled"

    unconfigured = PaymentService(engine, CTX, None, ReceiptKeys.from_config(RECEIPT_KEY))
    with pytest.raises(ProviderNotConfigured) as off:
        unconfigured.start_or_join(issue(engine).public_id)
    assert off.value.code == "payment.provider_not_configured"


def test_an_outcome_that_does_not_match_the_attempt_moves_nothing(
    engine: Engine, service: PaymentService
) -> None:
    attempt = service.start_or_join(issue(engine).public_id)
    assert attempt.provider_payment_id
    forged = ProviderPayment(id=attempt.provider_payment_id, status="succeeded", amount=attempt.amount - 1, currency="jpy")
    with pytest.raises(ProviderMismatch) as refused:
        service.apply_provider_outcome(forged)
    assert refused.value.code == "payment.provider_mismatch"
    with pytest.raises(UnknownProviderPayment):
        service.apply_provider_outcome(ProviderPayment(id="pi_unknown", status="succeeded", amount=100, currency="jpy"))
    assert service.get_attempt(attempt.public_id).amount_received == 0
    assert books(engine).clearing == 0


# --- expiry -------------------------------------------------------------------------------------


def test_an_abandoned_attempt_expires_and_releases_the_invoice(
    engine: Engine, service: PaymentService, clock: Clock, sandbox: SandboxServer
) -> None:
    invoice = issue(engine)
    attempt = service.start_or_join(invoice.public_id)
    assert service.expire_stale().expired == 0  # not yet

    clock.advance(minutes=31)
    report = service.expire_stale()

    assert (report.expired, report.left) == (1, 0)
    assert service.get_attempt(attempt.public_id).status is AttemptStatus.EXPIRED
    intent = sandbox.stripe_client(api_key=API_KEY).v1.payment_intents.retrieve(attempt.provider_payment_id)
    assert intent.status == "canceled"  # it can never take money now
    fresh = service.start_or_join(invoice.public_id)
    assert fresh.public_id != attempt.public_id and fresh.active
    assert_books_ok(engine)


def test_expiry_applies_a_payment_that_succeeded_meanwhile(
    engine: Engine, service: PaymentService, clock: Clock, sandbox: SandboxServer
) -> None:
    invoice = issue(engine)
    attempt = service.start_or_join(invoice.public_id)
    # The resident paid at the provider (Stripe.js) and closed the tab: no return, no webhook yet.
    sandbox.stripe_client(api_key=API_KEY).v1.payment_intents.confirm(
        attempt.provider_payment_id, params={"payment_method": "pm_card_visa", "return_url": RETURN_URL}
    )
    clock.advance(minutes=45)
    report = service.expire_stale()
    assert (report.expired, report.settled) == (0, 1)
    assert service.get_attempt(attempt.public_id).status is AttemptStatus.SUCCEEDED
    assert invoice_of(engine, invoice.notice_number).status is Status.PAID
    assert_books_ok(engine)


def test_joining_a_stale_attempt_expires_it_and_starts_afresh(
    engine: Engine, service: PaymentService, clock: Clock
) -> None:
    invoice = issue(engine)
    old = service.start_or_join(invoice.public_id)
    clock.advance(minutes=40)
    new = service.start_or_join(invoice.public_id)
    assert new.public_id != old.public_id
    assert service.get_attempt(old.public_id).status is AttemptStatus.EXPIRED


def test_a_lost_create_response_never_makes_a_second_intent(
    engine: Engine, clock: Clock, sandbox: SandboxServer
) -> None:
    no_retries = PaymentService(engine, CTX, make_provider(sandbox, retries=0), ReceiptKeys.from_config(RECEIPT_KEY), clock=clock)
    invoice = issue(engine)
    sandbox.control.fail_api_requests(1, when="after", match="POST /v1/payment_intents")
    with pytest.raises(ProviderError) as lost:
        no_retries.start_or_join(invoice.public_id)
    assert lost.value.retryable and lost.value.code == "provider.unavailable"
    # The intent exists at the provider, but we never heard its id.
    with engine.connect() as conn:
        stored = conn.execute(sa.select(attempts.c.public_id, attempts.c.provider_payment_id)).one()
    assert stored.provider_payment_id is None
    assert len(intents_for(sandbox, stored.public_id)) == 1

    again = no_retries.start_or_join(invoice.public_id)  # the resident taps again
    assert again.public_id == stored.public_id
    assert [pi.id for pi in intents_for(sandbox, stored.public_id)] == [again.provider_payment_id]

    # The SDK's own retries (max_network_retries=2) resend the same key: one intent as well.
    with_retries = make_service(engine, sandbox, clock)
    other = issue(engine)
    sandbox.control.fail_api_requests(1, when="after", match="POST /v1/payment_intents")
    joined = with_retries.start_or_join(other.public_id)
    assert [pi.id for pi in intents_for(sandbox, joined.public_id)] == [joined.provider_payment_id]


def test_a_payment_on_a_closed_day_posts_on_the_next_open_day(engine: Engine, service: PaymentService) -> None:
    invoice = issue(engine)
    attempt = service.start_or_join(invoice.public_id)
    today = business_date(attempt.created_at)
    run_transaction(engine, lambda conn: close_day(conn, today, closed_by="test"))
    paid = service.confirm_with_test_method(attempt.public_id, "pm_card_visa", return_url=RETURN_URL)
    assert entry_date(engine, paid.ledger_entry_id) == today + timedelta(days=1)
    assert_books_ok(engine)


# --- receipts -----------------------------------------------------------------------------------


def test_a_receipt_is_verified_by_its_code_and_nothing_else(engine: Engine, service: PaymentService) -> None:
    attempt = service.start_or_join(issue(engine).public_id)
    service.confirm_with_test_method(attempt.public_id, "pm_card_jcb", return_url=RETURN_URL)
    receipt = service.receipt_for_attempt(attempt.public_id)
    assert receipt is not None and len(receipt.verification_code) == 16
    typed = "-".join(receipt.verification_code[i : i + 4] for i in range(0, 16, 4)).lower()
    assert service.get_receipt(receipt.receipt_number, typed) == receipt

    wrong = ("0" if receipt.verification_code[0] != "0" else "1") + receipt.verification_code[1:]
    for number, code in ((receipt.receipt_number, wrong), ("R20260101-AAAAAAAA", receipt.verification_code),
                         ("not a number", receipt.verification_code), (receipt.receipt_number, "")):  # fmt: skip
        with pytest.raises(ReceiptNotFound) as missing:
            service.get_receipt(number, code)
        assert missing.value.code == "payment.receipt_not_found"
    # Any changed field fails verification.
    from dataclasses import replace

    for change in ({"amount": receipt.amount + 1}, {"provider_reference": "pi_other"},
                   {"paid_at": receipt.paid_at + timedelta(seconds=1)}, {"kind": "overpayment"}):  # fmt: skip
        assert not service.verify_receipt(replace(receipt, **change), receipt.verification_code)  # type: ignore[arg-type]
    # Another key cannot verify it (a forged receipt signed elsewhere).
    other = PaymentService(engine, CTX, None, ReceiptKeys.from_config("r1:" + "A" * 43))
    assert not other.verify_receipt(receipt, receipt.verification_code)


def test_invoice_payments_summarises_what_the_resident_page_shows(engine: Engine, service: PaymentService) -> None:
    invoice = issue(engine)
    declined = service.start_or_join(invoice.public_id)
    service.confirm_with_test_method(declined.public_id, "pm_card_chargeDeclined", return_url=RETURN_URL)
    live = service.start_or_join(invoice.public_id)
    with read_transaction(engine) as conn:
        summary = service.invoice_payments(conn, invoice.id)
    assert summary.live_attempt is not None and summary.live_attempt.public_id == live.public_id
    assert summary.settled is None and summary.receipt is None
    service.confirm_with_test_method(live.public_id, "pm_card_visa", return_url=RETURN_URL)
    with read_transaction(engine) as conn:
        summary = service.invoice_payments(conn, invoice.id)
    assert summary.live_attempt is None and summary.settled is not None and summary.receipt is not None
    assert summary.receipt.receipt_number == summary.settled.receipt_number
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(overpayments)).scalar_one() == 0


def test_a_webhook_style_intent_is_dated_by_its_charge_not_by_its_arrival(
    engine: Engine, service: PaymentService, clock: Clock, sandbox: SandboxServer
) -> None:
    attempt = service.start_or_join(issue(engine).public_id)
    intent = sandbox.stripe_client(api_key=API_KEY).v1.payment_intents.confirm(
        attempt.provider_payment_id, params={"payment_method": "pm_card_visa", "return_url": RETURN_URL}
    )
    as_delivered = ProviderPayment.from_stripe(intent.to_dict())  # latest_charge is only an id
    assert as_delivered.succeeded_at is None
    clock.advance(hours=5)  # the notice arrives late
    paid = service.apply_provider_outcome(as_delivered)
    assert paid.succeeded_at is not None and paid.succeeded_at < clock.now - timedelta(hours=4)
    receipt = service.receipt_for_attempt(paid.public_id)
    assert receipt is not None and receipt.paid_at == paid.succeeded_at


def test_a_notice_about_an_intent_whose_create_answer_was_lost_links_it_by_metadata(
    engine: Engine, clock: Clock, sandbox: SandboxServer
) -> None:
    no_retries = PaymentService(engine, CTX, make_provider(sandbox, retries=0), ReceiptKeys.from_config(RECEIPT_KEY), clock=clock)
    invoice = issue(engine)
    sandbox.control.fail_api_requests(1, when="after", match="POST /v1/payment_intents")
    with pytest.raises(ProviderError):
        no_retries.start_or_join(invoice.public_id)
    with engine.connect() as conn:
        attempt_id = conn.execute(sa.select(attempts.c.public_id).where(attempts.c.invoice_id == invoice.id)).scalar_one()
    (intent,) = intents_for(sandbox, attempt_id)
    # The webhook (payment_intent.created) is the first we hear of its id.
    linked = no_retries.apply_provider_outcome(ProviderPayment.from_stripe(intent.to_dict()))
    assert linked.public_id == attempt_id and linked.provider_payment_id == intent.id and linked.active
    assert no_retries.start_or_join(invoice.public_id).provider_payment_id == intent.id


def test_settle_in_records_the_money_in_the_callers_transaction_once(
    engine: Engine, service: PaymentService, clock: Clock
) -> None:
    """The webhook path: a succeeded intent with its time settles inside the event's transaction;
    rolled back, nothing of it stays; committed, it is exactly what a fresh read shows."""
    attempt = service.start_or_join(issue(engine).public_id)
    assert attempt.provider_payment_id
    paid_at = clock() - timedelta(minutes=1)
    succeeded = ProviderPayment(
        id=attempt.provider_payment_id, status="succeeded", amount=attempt.amount, currency="jpy",
        amount_received=attempt.amount, metadata={"attempt_id": attempt.public_id}, succeeded_at=paid_at,
    )  # fmt: skip

    class Abort(Exception):
        pass

    def then_fail(conn: sa.Connection) -> None:
        assert service.settle_in(conn, attempt.id, succeeded) is not None
        raise Abort

    with pytest.raises(Abort):
        run_transaction(engine, then_fail)
    assert service.get_attempt(attempt.public_id).amount_received == 0 and books(engine).clearing == 0

    forged = ProviderPayment(id=succeeded.id, status="succeeded", amount=attempt.amount - 1, currency="jpy", succeeded_at=paid_at)
    with pytest.raises(ProviderMismatch):
        run_transaction(engine, lambda conn: service.settle_in(conn, attempt.id, forged))

    settled = run_transaction(engine, lambda conn: service.settle_in(conn, attempt.id, succeeded))
    assert settled == service.get_attempt(attempt.public_id)
    assert settled is not None and settled.status is AttemptStatus.SUCCEEDED and settled.succeeded_at == paid_at
    assert settled.receipt_number and service.receipt_for_attempt(attempt.public_id) is not None
    assert run_transaction(engine, lambda conn: service.settle_in(conn, attempt.id, succeeded)) is None
    assert books(engine).clearing == attempt.amount
    assert_books_ok(engine)
