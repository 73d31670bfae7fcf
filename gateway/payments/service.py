"""The payment service: what the resident pages, the staff API, the webhook processor and the
periodic sweep call.

Discipline (see docs/payments.md):
- every database step is its own short transaction (``run_transaction``); provider calls happen
  between them, never inside one;
- the bill is locked before anything is charged: ``start_or_join`` locks the invoice row and
  creates (or joins) the one active attempt the database allows per invoice, and only then is a
  PaymentIntent created, with the attempt's own idempotency key;
- ``apply_provider_outcome`` is the one code path that moves money, used by every flow (its
  in-transaction form ``settle_in``, for a webhook event's succeeded intent, settles through the
  same ``settlement.settle_locked``);
- an attempt releases the invoice (failed / canceled / expired) only after the provider has
  confirmed its PaymentIntent can no longer take money (it was cancelled there), so a late
  success on an old intent cannot meet a new attempt's success: nothing is charged twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from gateway.audit import Actor
from gateway.payments import records, refunds, settlement
from gateway.payments.errors import (
    AttemptNotActive,
    InvalidPaymentRequest,
    InvoiceNotPayable,
    PaymentNotFound,
    ProviderMismatch,
    ProviderNotConfigured,
    ReceiptNotFound,
    UnknownProviderPayment,
)
from gateway.payments.model import Attempt, InvoicePayments, Overpayment, Receipt, Refund, RefundStatus
from gateway.payments.receipts import ReceiptFields, ReceiptKeys, valid_receipt_number
from gateway.payments.schema import attempts, receipts
from gateway.payments.state import AttemptStatus, Event, transition
from gateway.providers.errors import ProviderError, decline_reason
from gateway.providers.model import PaymentProvider, ProviderPayment, ProviderRefund
from invoices.due import amount_due
from invoices.model import InvoiceContext, Status
from invoices.notice_number import make_notice_number
from invoices.payments import lock_invoice
from invoices.queries import get_invoice
from invoices.schema import invoices
from ledger.clock import to_utc, utc_now
from ledger.db import read_transaction, run_transaction

log = logging.getLogger("nofu.payments")

T = TypeVar("T")

ATTEMPT_TTL = timedelta(minutes=30)
MIN_CHARGE = 50  # Stripe's smallest JPY charge
# Confirming from our own page is for test payment methods only; real card data goes to Stripe.js.
TEST_METHODS = (
    "pm_card_visa",
    "pm_card_mastercard",
    "pm_card_jcb",
    "pm_card_chargeDeclined",
    "pm_card_chargeDeclinedInsufficientFunds",
    "pm_card_chargeDeclinedExpiredCard",
)
SANDBOX_METHODS = ("pm_paypay",)
# A refund left pending (the provider did not answer) is retried after this long.
REFUND_RETRY_AFTER = timedelta(minutes=1)


@dataclass(frozen=True)
class SweepReport:
    """What one ``expire_stale`` run did."""

    expired: int = 0
    settled: int = 0
    left: int = 0
    refunds_completed: int = 0
    refunds_left: int = 0


class PaymentService:
    """Payments of invoices through one provider. Thread-safe (no mutable state of its own).

    Attributes:
        provider: the provider, or None when none is configured (paying is then refused).
        attempt_ttl: how long an attempt may stay incomplete before it expires (default 30 min).
    """

    def __init__(
        self,
        engine: Engine,
        ctx: InvoiceContext,
        provider: PaymentProvider | None,
        receipt_keys: ReceiptKeys,
        *,
        attempt_ttl: timedelta = ATTEMPT_TTL,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.ctx = ctx
        self.provider = provider
        self.receipt_keys = receipt_keys
        self.attempt_ttl = attempt_ttl
        self.clock = clock

    # --- plumbing -----------------------------------------------------------------------

    def _write(self, work: Callable[[Connection], T]) -> T:
        return run_transaction(self.engine, work)

    def _read(self, work: Callable[[Connection], T]) -> T:
        with read_transaction(self.engine) as conn:
            return work(conn)

    def _provider(self) -> PaymentProvider:
        if self.provider is None:
            raise ProviderNotConfigured(
                "online payment is not configured (set NOFU_STRIPE_SECRET_KEY or NOFU_STRIPE_API_BASE)"
            )
        return self.provider

    # --- paying ---------------------------------------------------------------------------

    def start_or_join(self, invoice_public_id: str, *, generation: int | None = None) -> Attempt:
        """The invoice's active attempt, created if there is none, with its PaymentIntent.

        A second tab, a second device or a double tap gets the same attempt (and the same
        PaymentIntent). Refuses a paid or cancelled invoice, a revoked payment code (``generation``
        below the invoice's) and amounts below ¥50. An active attempt past its expiry is expired
        first (cancelled at the provider), then a fresh one is started.
        """
        provider = self._provider()
        for _ in range(3):
            attempt = self._reserve(invoice_public_id, generation, provider.name)
            if attempt.expires_at > self.clock():
                return self._ensure_intent(attempt)
            self._expire_one(attempt)
        raise AttemptNotActive("the payment could not be started; try again", invoice=invoice_public_id)

    def _reserve(self, invoice_public_id: str, generation: int | None, provider_name: str) -> Attempt:
        def work(conn: Connection) -> Attempt:
            invoice = lock_invoice(conn, invoice_public_id)
            if generation is not None and generation < invoice.token_generation:
                raise InvoiceNotPayable("payment.code_revoked", "this payment code was revoked; use the newer notice")
            if invoice.status is Status.CANCELLED:
                raise InvoiceNotPayable("payment.invoice_cancelled", "this invoice was cancelled: nothing to pay")
            if invoice.status is not Status.OPEN:
                raise InvoiceNotPayable("payment.invoice_paid", "this invoice is already paid")
            active = records.active_attempt(conn, invoice.id)
            if active is not None:
                return active
            due = amount_due(invoice, self.ctx.today(), ctx=self.ctx)
            if due.total < MIN_CHARGE:
                raise InvoiceNotPayable(
                    "payment.amount_too_small", f"amounts below ¥{MIN_CHARGE} cannot be paid online", amount=due.total
                )
            now = self.clock()
            public_id = records.new_public_id("pa")
            result = conn.execute(
                attempts.insert().values(
                    public_id=public_id, invoice_id=invoice.id, principal=due.principal,
                    late_fee=due.late_fee_amount, amount=due.total, currency="jpy",
                    status=AttemptStatus.CREATED.value, provider=provider_name,
                    idempotency_key=f"nofu-{public_id}-create", amount_received=0, principal_applied=0,
                    late_fee_applied=0, overpaid=0, created_at=now, expires_at=now + self.attempt_ttl,
                    updated_at=now, version=1,
                )  # fmt: skip
            )
            log.info("payment attempt started", extra={"attempt": public_id, "amount": due.total})
            return records.load_attempt(conn, id=int(result.inserted_primary_key[0]))  # type: ignore[index]

        try:
            return self._write(work)
        except IntegrityError:
            # The partial unique index refused a second active attempt: someone else's won. Join it.
            def join(conn: Connection) -> Attempt:
                invoice = lock_invoice(conn, invoice_public_id)
                active = records.active_attempt(conn, invoice.id)
                if active is None:
                    raise AttemptNotActive("the payment could not be started; try again")
                return active

            return self._write(join)

    def _intent_params(self, attempt: Attempt) -> dict[str, object]:
        # Only the attempt's own fixed fields: a repeated create must send identical parameters.
        return {
            "amount": attempt.amount,
            "description": f"nofu {attempt.notice_number}",
            "metadata": {
                "notice_number": attempt.notice_number,
                "attempt_id": attempt.public_id,
                "invoice": attempt.invoice_public_id,
            },
            "idempotency_key": attempt.idempotency_key,
        }

    def _ensure_intent(self, attempt: Attempt) -> Attempt:
        """Create the attempt's PaymentIntent if it has none yet (safe to repeat: same key)."""
        if attempt.provider_payment_id is not None:
            return attempt
        payment = self._provider().create_payment(**self._intent_params(attempt))  # type: ignore[arg-type]
        self._check_matches(attempt, payment)
        stored = self._store_intent(attempt, payment)
        if payment.status not in ("requires_payment_method", "requires_confirmation"):
            return self.apply_provider_outcome(payment)
        return stored

    def _store_intent(self, attempt: Attempt, payment: ProviderPayment) -> Attempt:
        def work(conn: Connection) -> Attempt:
            current = records.lock_attempt(conn, attempt.id)
            if current.provider_payment_id == payment.id:
                return current
            if current.provider_payment_id is not None:
                raise ProviderMismatch("the attempt already has another PaymentIntent", attempt=attempt.public_id)
            return records.update_attempt(
                conn, current, now=self.clock(), provider_payment_id=payment.id, client_secret=payment.client_secret
            )

        return self._write(work)

    def _check_matches(self, attempt: Attempt, payment: ProviderPayment) -> None:
        """Nothing is applied from an intent that is not this attempt's, for its amount in yen."""
        problems = []
        if payment.amount != attempt.amount:
            problems.append(f"amount {payment.amount} ≠ {attempt.amount}")
        if payment.currency != "jpy":
            problems.append(f"currency {payment.currency!r}")
        if payment.metadata.get("attempt_id", attempt.public_id) != attempt.public_id:
            problems.append("metadata names another attempt")
        if attempt.provider_payment_id is not None and payment.id != attempt.provider_payment_id:
            problems.append("another PaymentIntent")
        if problems:
            log.error("provider object does not match the attempt: %s", "; ".join(problems),
                      extra={"attempt": attempt.public_id, "provider_payment_id": payment.id})  # fmt: skip
            raise ProviderMismatch(
                "the provider's payment does not match this attempt; nothing was recorded",
                attempt=attempt.public_id,
                problems=problems,
            )

    def _attempt_for(self, payment: ProviderPayment) -> Attempt:
        def work(conn: Connection) -> Attempt | None:
            found = records.find_by_provider_id(conn, payment.id)
            if found is None and payment.metadata.get("attempt_id"):
                try:
                    found = records.load_attempt(conn, public_id=payment.metadata["attempt_id"])
                except PaymentNotFound:
                    return None
            return found

        attempt = self._read(work)
        if attempt is None:
            log.warning("provider payment names no attempt", extra={"provider_payment_id": payment.id})
            raise UnknownProviderPayment("no payment attempt for this provider payment", provider_payment_id=payment.id)
        if attempt.provider_payment_id is None:
            # The create call's answer was lost but the intent exists (a webhook or a retry says so).
            self._check_matches(attempt, payment)
            attempt = self._store_intent(attempt, payment)
        return attempt

    def settle_in(self, conn: Connection, attempt_id: int, payment: ProviderPayment) -> Attempt | None:
        """``apply_provider_outcome`` for a succeeded PaymentIntent whose success time is known,
        inside the caller's transaction — a webhook event's own, so the event's outcome commits
        with the money it records, in one commit. Such an outcome needs nothing from the provider.

        Locks the attempt (which must already carry ``payment``'s id) and, unless its money is
        already recorded (None), checks ``payment`` is its intent for its amount
        (``ProviderMismatch`` otherwise) and settles it; returns it as settled. Idempotent.
        """
        if payment.status != "succeeded" or payment.succeeded_at is None:
            raise ValueError("settle_in() takes a succeeded PaymentIntent with its success time")
        attempt = records.lock_unsettled(conn, attempt_id)
        if attempt is None:
            return None
        if attempt.provider_payment_id != payment.id:
            raise ValueError("settle_in() needs an attempt that already carries this PaymentIntent")
        self._check_matches(attempt, payment)
        return settlement.settle_locked(conn, self.ctx, self.receipt_keys, attempt, payment, now=self.clock())

    def apply_provider_outcome(self, payment: ProviderPayment, *, _depth: int = 0) -> Attempt:
        """Apply what the provider says about a PaymentIntent: the ONE path that moves money.

        ``payment`` must come from the provider (retrieved by us, or a signed webhook's object),
        never from the browser. Idempotent by attempt and provider id: applying the same or an
        older outcome again changes nothing. ``succeeded`` settles the money (one transaction);
        a decline cancels the intent at the provider, then fails the attempt (releasing the
        invoice); ``canceled`` fails, expires or cancels it; ``processing`` /
        ``requires_action`` move it along. Stale outcomes for a terminal attempt are ignored.
        """
        attempt = self._attempt_for(payment)
        self._check_matches(attempt, payment)
        status = payment.status
        if status == "succeeded":
            if attempt.amount_received:
                return attempt
            if payment.succeeded_at is None and self.provider is not None:
                # A webhook's intent does not carry the charge; its time is the payment date.
                try:
                    payment = self.provider.retrieve_payment(payment.id)
                except ProviderError:
                    log.warning("success time unknown; recording now", extra={"attempt": attempt.public_id})
                else:
                    self._check_matches(attempt, payment)
                    if payment.status != "succeeded":
                        raise ProviderMismatch("the provider no longer reports this payment as succeeded")
            return self._write(
                lambda conn: settlement.settle(conn, self.ctx, self.receipt_keys, attempt.id, payment, now=self.clock())
            )
        if not attempt.active:
            log.info("outcome %s ignored for a %s attempt", status, attempt.status.value,
                     extra={"attempt": attempt.public_id})  # fmt: skip
            return attempt
        if status == "processing":
            if attempt.status is AttemptStatus.PROCESSING:
                return attempt
            return self._move(attempt, Event.START_PROCESSING)
        if status == "requires_action":
            if attempt.status is AttemptStatus.CREATED:
                return self._move(attempt, Event.REQUIRE_ACTION, next_action_url=payment.redirect_url)
            return attempt
        if status in ("requires_payment_method", "requires_confirmation"):
            if payment.error_code or payment.decline_code or payment.error_message:
                return self._fail(attempt, payment, _depth)
            if attempt.status is AttemptStatus.REQUIRES_ACTION:
                return self._move(attempt, Event.REOPEN, next_action_url=None)
            return attempt
        if status == "canceled":
            return self._on_canceled(attempt, payment)
        log.warning("unexpected PaymentIntent status %s", status, extra={"attempt": attempt.public_id})
        return attempt

    def _move(self, attempt: Attempt, event: Event, **values: object) -> Attempt:
        """One named transition, in its own transaction, from the attempt's current state."""

        def work(conn: Connection) -> Attempt:
            current = records.lock_attempt(conn, attempt.id)
            target = transition(current.status, event, attempt=current.public_id)
            return records.update_attempt(conn, current, now=self.clock(), status=target.value, **values)

        return self._write(work)

    def _fail(self, attempt: Attempt, payment: ProviderPayment, depth: int) -> Attempt:
        reason = decline_reason(payment.error_code, payment.decline_code, payment.error_type)
        provider = self._provider()
        try:
            canceled = provider.cancel_payment(payment.id, reason="abandoned")
        except ProviderError as error:
            if error.reason != "unexpected_state" or depth > 1:
                raise
            current = provider.retrieve_payment(payment.id)
            if current.status != "canceled":
                # It moved on meanwhile (another card succeeded, or it is processing): apply that.
                return self.apply_provider_outcome(current, _depth=depth + 1)
            canceled = current
        if canceled.status != "canceled":
            return self.apply_provider_outcome(canceled, _depth=depth + 1)
        return self._finish(attempt, Event.FAIL, failure_code=reason, failure_message=payment.error_message)

    def _finish(self, attempt: Attempt, event: Event, **values: object) -> Attempt:
        """A releasing transition (fail / cancel / expire) if the attempt is still active."""

        def work(conn: Connection) -> Attempt:
            current = records.lock_attempt(conn, attempt.id)
            if not current.active:
                return current
            target = transition(current.status, event, attempt=current.public_id)
            log.info("payment attempt %s", target.value, extra={"attempt": current.public_id})
            return records.update_attempt(conn, current, now=self.clock(), status=target.value, next_action_url=None, **values)

        return self._write(work)

    def _on_canceled(self, attempt: Attempt, payment: ProviderPayment) -> Attempt:
        if payment.error_code or payment.decline_code:
            reason = decline_reason(payment.error_code, payment.decline_code, payment.error_type)
            return self._finish(attempt, Event.FAIL, failure_code=reason, failure_message=payment.error_message)
        if attempt.expires_at <= self.clock():
            return self._finish(attempt, Event.EXPIRE)
        return self._finish(attempt, Event.CANCEL)

    def confirm_with_test_method(self, attempt_id: str, method: str, *, return_url: str) -> Attempt:
        """Pay with one of the provider's test payment methods (the sandbox page; Stripe test
        mode). The outcome applied is the provider's answer, never the browser's."""
        provider = self._provider()
        allowed = TEST_METHODS + (SANDBOX_METHODS if provider.name == "sandbox" else ())
        if not provider.test_mode:
            raise InvalidPaymentRequest("payment.test_methods_disabled", "test payment methods are refused in live mode")
        if method not in allowed:
            raise InvalidPaymentRequest("payment.invalid_method", "not a test payment method", allowed=list(allowed))
        attempt = self.get_attempt(attempt_id)
        if not attempt.active:
            raise AttemptNotActive(f"this payment is {attempt.status.value}", status=attempt.status.value)
        attempt = self._ensure_intent(attempt)
        if not attempt.active or attempt.provider_payment_id is None:
            return attempt
        try:
            payment = provider.confirm_payment(attempt.provider_payment_id, payment_method=method, return_url=return_url)
        except ProviderError as error:
            if error.payment is not None and error.payment.id == attempt.provider_payment_id:
                return self.apply_provider_outcome(error.payment)
            if error.reason == "unexpected_state":
                return self.refresh(attempt_id)
            raise
        return self.apply_provider_outcome(payment)

    def refresh(self, attempt_id: str) -> Attempt:
        """Ask the provider about the attempt's PaymentIntent and apply its answer (the
        return_url flow after a redirect, or a page polling a processing payment)."""
        attempt = self.get_attempt(attempt_id)
        if attempt.provider_payment_id is None:
            return attempt
        return self.apply_provider_outcome(self._provider().retrieve_payment(attempt.provider_payment_id))

    # --- expiry ---------------------------------------------------------------------------

    def expire_stale(self, now: datetime | None = None) -> SweepReport:
        """Expire attempts past their time, releasing their invoices, and retry refunds left
        pending. Run periodically (``gateway.payments.sweeper``); safe to run concurrently."""
        now = now or self.clock()
        expired = settled = left = 0
        for attempt in self._read(lambda conn: records.stale_attempts(conn, now)):
            try:
                after = self._expire_one(attempt)
            except (ProviderError, ProviderNotConfigured) as error:
                log.warning("attempt not expired yet: %s", getattr(error, "code", error),
                            extra={"attempt": attempt.public_id})  # fmt: skip
                left += 1
                continue
            if after.status is AttemptStatus.EXPIRED:
                expired += 1
            elif after.amount_received:
                settled += 1
            else:
                left += 1
        done, pending = self.resume_pending_refunds(now)
        return SweepReport(expired, settled, left, done, pending)

    def _expire_one(self, attempt: Attempt) -> Attempt:
        """Cancel the attempt's intent at the provider, then mark it expired. If the provider
        says it succeeded meanwhile, that is applied instead; a processing one is left alone."""
        if not attempt.active:
            return attempt
        provider = self.provider
        if provider is None:
            return self._finish(attempt, Event.EXPIRE)
        if attempt.status is AttemptStatus.PROCESSING and attempt.provider_payment_id:
            return self.apply_provider_outcome(provider.retrieve_payment(attempt.provider_payment_id))
        payment_id = attempt.provider_payment_id
        if payment_id is None:
            # Did our create reach the provider before its answer was lost? The same key tells.
            try:
                created = provider.create_payment(**self._intent_params(attempt))  # type: ignore[arg-type]
            except ProviderError as error:
                if error.retryable:
                    raise
                created = None  # refused outright: the provider saved nothing, no intent exists
            if created is None:
                return self._finish(attempt, Event.EXPIRE)
            self._check_matches(attempt, created)
            attempt = self._store_intent(attempt, created)
            payment_id = created.id
        try:
            canceled = provider.cancel_payment(payment_id, reason="abandoned")
        except ProviderError as error:
            if error.reason != "unexpected_state":
                raise
            canceled = provider.retrieve_payment(payment_id)
        if canceled.status != "canceled":
            return self.apply_provider_outcome(canceled)
        return self._finish(attempt, Event.EXPIRE)

    # --- refunds --------------------------------------------------------------------------

    def refund(
        self, attempt_id: str, *, amount: int, expected_refundable: int, reason: str, actor: Actor
    ) -> Refund:
        """Refund ``amount`` yen of an attempt's money (full or partial), guarded by
        compare-and-set: ``expected_refundable`` must equal the refundable amount now, else
        ``RefundableMismatch`` (412). See ``gateway.payments.refunds`` for the steps.

        Returns the refund succeeded, or still pending when the provider did not answer (it is
        retried by the sweep with the same idempotency key); a provider refusal marks it failed
        and raises its ``ProviderError``."""
        amount, expected_refundable, reason = refunds.check_request(amount, expected_refundable, reason)
        provider = self._provider()
        reserved = self._write(
            lambda conn: refunds.reserve(
                conn, attempt_id, amount=amount, expected_refundable=expected_refundable, reason=reason,
                actor=actor, now=self.clock(),
            )  # fmt: skip
        )
        try:
            return self._submit_refund(provider, reserved, actor)
        except ProviderError as error:
            if not error.retryable:
                raise
            # Reserved, and the provider did not answer: the sweep asks again with the same key.
            return self._read(lambda conn: records.load_refund(conn, reserved.id))

    def _submit_refund(self, provider: PaymentProvider, refund: Refund, actor: Actor | None = None) -> Refund:
        attempt = self.get_attempt(refund.attempt_public_id)
        assert attempt.provider_payment_id is not None
        try:
            result = provider.refund(
                attempt.provider_payment_id,
                amount=refund.amount,
                idempotency_key=refund.idempotency_key,
                metadata={"refund_id": refund.public_id, "attempt_id": attempt.public_id,
                          "notice_number": attempt.notice_number},  # fmt: skip
            )
        except ProviderError as error:
            if error.retryable:
                log.warning("refund left pending: %s", error.code, extra={"refund": refund.public_id})
                raise
            self._write(
                lambda conn: refunds.fail(conn, refund.id, error.code, error.message, now=self.clock(), actor=actor)
            )
            raise
        return self._apply_refund(refund, result, actor)

    def _apply_refund(self, refund: Refund, result: ProviderRefund, actor: Actor | None = None) -> Refund:
        if result.status == "succeeded":
            return self._write(
                lambda conn: refunds.complete(conn, self.ctx, refund.id, result.id, now=self.clock(), actor=actor)
            )
        if result.status in ("failed", "canceled"):
            return self._write(
                lambda conn: refunds.fail(
                    conn, refund.id, f"provider.refund_{result.status}", result.failure_reason or result.status,
                    now=self.clock(), actor=actor,
                )  # fmt: skip
            )
        return self._write(lambda conn: refunds.remember_provider_id(conn, refund.id, result.id, now=self.clock()))

    def resume_pending_refunds(self, now: datetime | None = None) -> tuple[int, int]:
        """Finish refunds left pending (provider unreachable, or the provider's refund still
        pending): ask again with the same idempotency key. Returns (completed, still pending)."""
        now = now or self.clock()
        if self.provider is None:
            return 0, 0
        done = left = 0
        for refund in self._read(lambda conn: records.pending_refunds(conn, now - REFUND_RETRY_AFTER)):
            try:
                if refund.provider_refund_id:
                    after = self._apply_refund(refund, self.provider.retrieve_refund(refund.provider_refund_id))
                else:
                    after = self._submit_refund(self.provider, refund)
            except ProviderError:
                left += 1
                continue
            if after.status is RefundStatus.PENDING:
                left += 1
            else:
                done += 1
        return done, left

    # --- reading --------------------------------------------------------------------------

    def get_attempt(self, attempt_id: str) -> Attempt:
        return self._read(lambda conn: records.load_attempt(conn, public_id=attempt_id))

    def attempts_for_invoice(self, number: str) -> list[Attempt]:
        """Every attempt of the invoice with this notice number, oldest first."""

        def work(conn: Connection) -> list[Attempt]:
            return records.attempts_of_invoice(conn, get_invoice(conn, number).id)

        return self._read(work)

    def refunds_of(self, attempt_id: str) -> list[Refund]:
        def work(conn: Connection) -> list[Refund]:
            return records.refunds_of(conn, records.load_attempt(conn, public_id=attempt_id).id)

        return self._read(work)

    def overpayment_of(self, attempt_id: str) -> Overpayment | None:
        def work(conn: Connection) -> Overpayment | None:
            return records.overpayment_of(conn, records.load_attempt(conn, public_id=attempt_id).id)

        return self._read(work)

    def list_overpayments(
        self, *, status: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[Overpayment], str | None]:
        return self._read(lambda conn: records.list_overpayments(conn, status=status, cursor=cursor, limit=limit))

    def invoice_payments(self, conn: Connection, invoice_id: int) -> InvoicePayments:
        """The payment side of one invoice, inside the caller's (read) transaction."""
        found = records.attempts_of_invoice(conn, invoice_id)
        live = next((a for a in found if a.active and a.expires_at > self.clock()), None)
        settled = next((a for a in reversed(found) if a.principal_applied and a.refunded < a.amount_received), None)
        receipt = self._receipt_of(conn, settled.id) if settled is not None else None
        return InvoicePayments(live_attempt=live, latest=found[-1] if found else None, settled=settled, receipt=receipt)

    # --- receipts -------------------------------------------------------------------------

    def _receipt_query(self) -> sa.Select[Any]:
        return sa.select(
            receipts,
            attempts.c.public_id.label("attempt_public_id"),
            invoices.c.public_id.label("invoice_public_id"),
            invoices.c.fiscal_year,
            invoices.c.sequence,
            invoices.c.tax_code,
            invoices.c.installment,
        ).join(attempts, attempts.c.id == receipts.c.attempt_id).join(invoices, invoices.c.id == receipts.c.invoice_id)

    def _to_receipt(self, row: sa.Row[Any]) -> Receipt:
        notice = make_notice_number(row.fiscal_year, row.sequence)
        fields = ReceiptFields(
            row.receipt_number, row.kind, notice, to_utc(row.paid_at), row.amount, row.principal,
            row.late_fee, row.provider_reference,
        )  # fmt: skip
        return Receipt(
            receipt_number=row.receipt_number, kind=row.kind, attempt_public_id=row.attempt_public_id,
            invoice_public_id=row.invoice_public_id, notice_number=notice, tax_code=row.tax_code,
            fiscal_year=row.fiscal_year, installment=row.installment, paid_at=to_utc(row.paid_at),
            amount=row.amount, principal=row.principal, late_fee=row.late_fee,
            provider_reference=row.provider_reference, key_id=row.key_id,
            verification_code=self.receipt_keys.code(fields, row.key_id) if row.key_id in self.receipt_keys.keys else "",
            created_at=to_utc(row.created_at),
        )  # fmt: skip

    def _receipt_of(self, conn: Connection, attempt_id: int) -> Receipt | None:
        row = conn.execute(self._receipt_query().where(receipts.c.attempt_id == attempt_id)).first()
        return None if row is None else self._to_receipt(row)

    def receipt_for_attempt(self, attempt_id: str) -> Receipt | None:
        """The receipt of an attempt (with its verification code), once its money is recorded:
        for the completion page, which knows the attempt."""

        def work(conn: Connection) -> Receipt | None:
            return self._receipt_of(conn, records.load_attempt(conn, public_id=attempt_id).id)

        return self._read(work)

    def get_receipt(self, number: str, code: str) -> Receipt:
        """The receipt with this number if ``code`` is its verification code; otherwise
        ``ReceiptNotFound`` — the same answer for an unknown number and a wrong code."""
        if not valid_receipt_number(number):
            raise ReceiptNotFound("no receipt with this number and code")
        row = self._read(lambda conn: conn.execute(self._receipt_query().where(receipts.c.receipt_number == number)).first())
        if row is None:
            raise ReceiptNotFound("no receipt with this number and code")
        receipt = self._to_receipt(row)
        if not self.verify_receipt(receipt, code):
            raise ReceiptNotFound("no receipt with this number and code")
        return receipt

    def verify_receipt(self, receipt: Receipt, code: str) -> bool:
        """True when ``code`` is the verification code of exactly these receipt fields."""
        fields = ReceiptFields(
            receipt.receipt_number, receipt.kind, receipt.notice_number, receipt.paid_at, receipt.amount,
            receipt.principal, receipt.late_fee, receipt.provider_reference,
        )  # fmt: skip
        return self.receipt_keys.verify(fields, receipt.key_id, code)
