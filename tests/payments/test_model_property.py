"""The payment service under random interleavings (hypothesis, rule-based), against an in-memory
provider that behaves like Stripe: residents pay or are declined at the provider whenever they
like, notifications arrive late, twice or stale, the provider goes down or loses answers, other
channels pay, clerks refund with fresh or stale amounts, time passes and the sweep runs.

After every step, whatever happened:
- the ledger verifies and balances, and agrees with the payment tables (``assert_books_ok``);
- money is recorded only for an intent the provider says succeeded, and only once;
- no invoice ever has two intents that could still take money (the double-charge rule), and a
  released attempt's intent can never take money again;
- an invoice is never overpaid through an attempt: what it was not owed is 過誤納金.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from gateway.payments import (
    AttemptStatus,
    InvoiceNotPayable,
    NotRefundable,
    PaymentConflict,
    PaymentService,
    ReceiptKeys,
    RefundableMismatch,
)
from gateway.payments.schema import attempts, refunds
from gateway.providers import ProviderError, ProviderPayment, ProviderRefund
from invoices.payments import record_payment
from ledger.db import create_engine, run_transaction
from tests.invoices._support import CTX
from tests.payments.support import CLERK, RECEIPT_KEY, Clock, assert_books_ok, issue

CHARGEABLE = ("requires_payment_method", "requires_confirmation", "requires_action", "processing")


@dataclass
class FakeIntent:
    id: str
    amount: int
    metadata: dict[str, str]
    status: str = "requires_payment_method"
    error: tuple[str, str] | None = None  # (code, decline_code)
    succeeded_at: Any = None
    refunded: int = 0


@dataclass
class FakeProvider:
    """Stripe's behaviour, in memory: idempotent creates and refunds, cancel only while the
    intent can still take money, a network that can fail before or after doing the work."""

    clock: Clock
    name: str = "stripe"
    test_mode: bool = True
    publishable_key: str | None = None
    intents: dict[str, FakeIntent] = field(default_factory=dict)
    keys: dict[str, tuple[str, Any]] = field(default_factory=dict)
    refunds: dict[str, tuple[str, int]] = field(default_factory=dict)
    down: bool = False  # every call fails before doing anything
    lose_next: bool = False  # the next call does its work, then its answer is lost
    ids: Any = field(default_factory=lambda: itertools.count(1))

    def _network(self) -> None:
        if self.down:
            raise ProviderError("network", "down")

    def _answer(self) -> None:
        if self.lose_next:
            self.lose_next = False
            raise ProviderError("unavailable", "answer lost")

    def snapshot(self, intent: FakeIntent) -> ProviderPayment:
        code, decline = intent.error or (None, None)
        return ProviderPayment(
            id=intent.id, status=intent.status, amount=intent.amount, currency="jpy",
            amount_received=intent.amount if intent.status == "succeeded" else 0,
            client_secret=f"{intent.id}_secret", metadata=MappingProxyType(dict(intent.metadata)),
            succeeded_at=intent.succeeded_at, error_code=code, decline_code=decline,
            error_type="card_error" if code else None,
        )  # fmt: skip

    def create_payment(self, *, amount: int, description: str, metadata: Mapping[str, str], idempotency_key: str) -> ProviderPayment:
        self._network()
        params = (amount, description, tuple(sorted(metadata.items())))
        if idempotency_key in self.keys:
            pi_id, saved = self.keys[idempotency_key]
            if saved != params:
                raise ProviderError("idempotency_conflict", "same key, other parameters")
        else:
            pi_id = f"pi_{next(self.ids)}"
            self.intents[pi_id] = FakeIntent(pi_id, amount, dict(metadata))
            self.keys[idempotency_key] = (pi_id, params)
        self._answer()
        return self.snapshot(self.intents[pi_id])

    def retrieve_payment(self, payment_id: str) -> ProviderPayment:
        self._network()
        return self.snapshot(self.intents[payment_id])

    def confirm_payment(self, payment_id: str, *, payment_method: str, return_url: str) -> ProviderPayment:
        raise AssertionError("not used: residents pay at the provider in this model")

    def cancel_payment(self, payment_id: str, *, reason: str = "abandoned") -> ProviderPayment:
        self._network()
        intent = self.intents[payment_id]
        if intent.status not in ("requires_payment_method", "requires_confirmation", "requires_action"):
            raise ProviderError("unexpected_state", f"cannot cancel: {intent.status}", payment=self.snapshot(intent))
        intent.status = "canceled"
        self._answer()
        return self.snapshot(intent)

    def refund(self, payment_id: str, *, amount: int, idempotency_key: str, metadata: Mapping[str, str]) -> ProviderRefund:
        self._network()
        if idempotency_key not in self.refunds:
            intent = self.intents[payment_id]
            if intent.status != "succeeded" or intent.refunded + amount > intent.amount:
                raise ProviderError("invalid_request", "nothing to refund")
            intent.refunded += amount
            self.refunds[idempotency_key] = (f"re_{next(self.ids)}", amount)
        self._answer()
        re_id, refunded = self.refunds[idempotency_key]
        return ProviderRefund(re_id, "succeeded", refunded, payment_id)

    def retrieve_refund(self, refund_id: str) -> ProviderRefund:
        self._network()
        for re_id, amount in self.refunds.values():
            if re_id == refund_id:
                return ProviderRefund(re_id, "succeeded", amount, None)
        raise ProviderError("invalid_request", "no such refund")


class Payments(RuleBasedStateMachine):
    template: Path
    directory: Path
    counter = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        path = self.directory / f"model-{next(self.counter)}.sqlite3"
        shutil.copyfile(self.template, path)
        self.engine = create_engine(f"sqlite:///{path}")
        self.clock = Clock()
        self.provider = FakeProvider(self.clock)
        self.service = PaymentService(self.engine, CTX, self.provider, ReceiptKeys.from_config(RECEIPT_KEY), clock=self.clock)
        self.invoices = [issue(self.engine, amount=amount) for amount in (12_300, 3_000)]
        self.stale: list[ProviderPayment] = []  # notifications still "in flight"

    def teardown(self) -> None:
        self.engine.dispose()

    # --- helpers ------------------------------------------------------------------------

    def attempt_rows(self) -> list[sa.Row]:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(attempts).order_by(attempts.c.id)).all()

    def intent_of(self, index: int) -> FakeIntent | None:
        rows = [r for r in self.attempt_rows() if r.provider_payment_id]
        if not rows:
            return None
        return self.provider.intents[rows[index % len(rows)].provider_payment_id]

    def invoice_status(self, index: int) -> str:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT status FROM invoices WHERE id = :i"), {"i": self.invoices[index].id}
            ).scalar_one()

    # --- residents ----------------------------------------------------------------------

    @initialize()
    def a_resident_opens_the_first_bill(self) -> None:
        self.start_or_join(0)

    @rule(which=st.integers(0, 1))
    def a_resident_opens_a_bill(self, which: int) -> None:
        self.start_or_join(which)

    @rule(which=st.integers(0, 1))
    def start_or_join(self, which: int) -> None:
        invoice = self.invoices[which]
        status = self.invoice_status(which)
        try:
            attempt = self.service.start_or_join(invoice.public_id)
        except InvoiceNotPayable as refused:
            # Read after the refusal: joining an attempt that ran out may learn, while expiring
            # it, that the resident paid meanwhile; the money is recorded and the invoice is paid.
            assert self.invoice_status(which) != "open", refused.code
            return
        except ProviderError as error:
            assert self.provider.down or error.retryable
            return
        assert status == "open" and attempt.active and attempt.provider_payment_id

    @rule(index=st.integers(0, 20))
    def resident_pays_at_the_provider(self, index: int) -> None:
        intent = self.intent_of(index)
        if intent is not None and intent.status in ("requires_payment_method", "requires_confirmation"):
            intent.status, intent.error, intent.succeeded_at = "succeeded", None, self.clock()
            self.stale.append(self.provider.snapshot(intent))

    @rule(index=st.integers(0, 20), decline=st.sampled_from([("card_declined", "generic_decline"),
                                                             ("card_declined", "insufficient_funds"),
                                                             ("expired_card", "expired_card")]))  # fmt: skip
    def resident_is_declined(self, index: int, decline: tuple[str, str]) -> None:
        intent = self.intent_of(index)
        if intent is not None and intent.status in ("requires_payment_method", "requires_confirmation"):
            intent.error = decline
            self.stale.append(self.provider.snapshot(intent))

    @rule(index=st.integers(0, 20))
    def resident_goes_to_paypay(self, index: int) -> None:
        intent = self.intent_of(index)
        if intent is not None and intent.status == "requires_payment_method":
            intent.status, intent.error = "requires_action", None
            self.stale.append(self.provider.snapshot(intent))

    # --- notifications ------------------------------------------------------------------

    @rule(index=st.integers(0, 20))
    def provider_answer_is_applied(self, index: int) -> None:
        """The return page or a webhook: the provider's current word."""
        intent = self.intent_of(index)
        if intent is None:
            return
        try:
            self.service.apply_provider_outcome(self.provider.snapshot(intent))
        except (ProviderError, PaymentConflict):
            pass

    @precondition(lambda self: self.stale)
    @rule(pick=st.integers(0, 50))
    def a_late_or_repeated_notification_arrives(self, pick: int) -> None:
        payment = self.stale[pick % len(self.stale)]
        try:
            self.service.apply_provider_outcome(payment)
        except (ProviderError, PaymentConflict):
            pass

    # --- the world ----------------------------------------------------------------------

    @rule(down=st.sampled_from([False, False, True]), lose=st.booleans())
    def the_network(self, down: bool, lose: bool) -> None:
        self.provider.down, self.provider.lose_next = down, lose

    @rule(which=st.integers(0, 1))
    def another_channel_pays(self, which: int) -> None:
        """What is still owed, at a convenience store (a different clearing account)."""
        invoice = self.invoices[which]
        with self.engine.connect() as conn:
            owed = conn.execute(
                sa.text("SELECT amount - amount_paid FROM invoices WHERE id = :i AND status = 'open'"), {"i": invoice.id}
            ).scalar()
        if owed:
            run_transaction(self.engine, lambda conn: record_payment(
                conn, CTX, invoice.notice_number, owed, reference=f"konbini:{invoice.id}:{self.clock()}",
                actor="test:konbini", clearing_account="1300"))  # fmt: skip

    @rule(minutes=st.integers(1, 40))
    def time_passes_and_the_sweep_runs(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)
        self.service.expire_stale()

    @rule(index=st.integers(0, 20), fraction=st.integers(1, 4), stale=st.booleans())
    def a_clerk_refunds(self, index: int, fraction: int, stale: bool) -> None:
        received = [r for r in self.attempt_rows() if r.amount_received]
        if not received:
            return
        attempt = self.service.get_attempt(received[index % len(received)].public_id)
        refundable = attempt.refundable
        expected = refundable + 1 if stale else refundable
        amount = max(1, refundable // fraction)
        try:
            self.service.refund(attempt.public_id, amount=amount, expected_refundable=expected, reason="還付", actor=CLERK)
        except RefundableMismatch:
            assert stale
            return
        except NotRefundable:
            assert refundable == 0
            return
        except ProviderError as error:
            assert error.code == "provider.network" or error.retryable
            return
        assert not stale and refundable > 0

    # --- invariants ---------------------------------------------------------------------

    @invariant()
    def books_agree(self) -> None:
        assert_books_ok(self.engine)

    @invariant()
    def money_only_from_provider_successes_and_never_two_chargeable_intents(self) -> None:
        rows = self.attempt_rows()
        for row in rows:
            intent = self.provider.intents.get(row.provider_payment_id) if row.provider_payment_id else None
            if row.amount_received:
                assert intent is not None and intent.status == "succeeded"
            if row.status in (AttemptStatus.FAILED, AttemptStatus.CANCELED, AttemptStatus.EXPIRED) and intent is not None:
                assert intent.status in ("canceled", "succeeded")  # released only when it cannot take money
        for invoice in self.invoices:
            chargeable = [i for i in self.provider.intents.values()
                          if i.metadata["invoice"] == invoice.public_id and i.status in CHARGEABLE]  # fmt: skip
            assert len(chargeable) <= 1

    @invariant()
    def invoices_are_never_overpaid_through_an_attempt(self) -> None:
        with self.engine.connect() as conn:
            for invoice in self.invoices:
                amount, paid, status = conn.execute(
                    sa.text("SELECT amount, amount_paid, status FROM invoices WHERE id = :i"), {"i": invoice.id}
                ).one()
                assert status != "overpaid" and paid <= amount
                applied = conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(attempts.c.principal_applied), 0)).where(
                        attempts.c.invoice_id == invoice.id
                    )
                ).scalar_one()
                taken_back = conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(refunds.c.principal_part), 0))
                    .join(attempts, attempts.c.id == refunds.c.attempt_id)
                    .where(attempts.c.invoice_id == invoice.id, refunds.c.status == "succeeded")
                ).scalar_one()
                assert applied - taken_back <= paid


def test_payments_keep_their_rules_under_any_interleaving(sqlite_template: Path, tmp_path: Path) -> None:
    Payments.template, Payments.directory = sqlite_template, tmp_path
    run_state_machine_as_test(
        Payments,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_the_fake_provider_refuses_to_cancel_a_success() -> None:
    """The model's provider must behave like Stripe where the rules depend on it."""
    provider = FakeProvider(Clock())
    created = provider.create_payment(amount=100, description="d", metadata={"invoice": "x"}, idempotency_key="k")
    assert provider.create_payment(amount=100, description="d", metadata={"invoice": "x"}, idempotency_key="k").id == created.id
    provider.intents[created.id].status = "succeeded"
    try:
        provider.cancel_payment(created.id)
    except ProviderError as error:
        assert error.reason == "unexpected_state" and error.payment is not None
    else:
        raise AssertionError("a succeeded intent was cancelled")
