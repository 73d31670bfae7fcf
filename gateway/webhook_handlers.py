"""What nofu does with Stripe's events: the handlers the gateway registers with ``webhooks``.

Payments (``payment_intent.*`` and ``charge.*``) move money only through the payment service. A
succeeded PaymentIntent whose time is known needs nothing from the provider: its money is recorded
inside the event's own transaction with ``PaymentService.settle_in`` (the attempt locked, checked
against the intent, settled), so the event's outcome commits with the books — one commit per
event. Everything else goes through ``PaymentService.apply_provider_outcome``, which runs its own
transactions and may call the provider (a decline cancels the intent there), so the handlers hand
it to the processor as an ``Outside`` step; it is idempotent by attempt and provider id, so running
it again after a worker died changes nothing. Whatever the handler can decide from our own rows it
decides inside the event's transaction:

- an event for a payment whose money is already recorded is ``skipped`` (``payment_intent.succeeded``
  and ``charge.succeeded`` for the same payment post once: both map to the same attempt);
- an event older than the state we hold (a decline for an attempt that is already terminal) is
  ``skipped`` as stale;
- an event for a payment nofu does not know yet waits (``NotYet``) and is retried;
- a PaymentIntent that is not nofu's (no ``attempt_id`` in its metadata) is ``ignored``.

Those decisions (``_no_change``) are also made for a whole claimed batch at once by
``PaymentEvents.triage``, which the processor runs before the handlers: one read of the batch's
attempts instead of a transaction per event for the events that change nothing (most of them: of
a card payment's four events, one records the money). The handler and the triage share the
decision, so an event comes out the same whichever path decides it.

``charge.*`` events map to their PaymentIntent. A captured, succeeded charge proves the payment
succeeded and settles it (with the charge's time as the payment time); a failed charge is a case
of doubt — the resident may have paid with another card meanwhile — so the processor asks the
provider for the PaymentIntent's current state and applies that.

Refunds (``refund.*`` and the refunds listed in ``charge.refunded``) are booked inside the event's
transaction with the payment package's own ``refunds.complete`` / ``refunds.fail``; a refund nofu
did not make (no ``refund_id`` in its metadata) is refused for staff: money left the account
without a refund record, and only a person can say which invoice it belongs to.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import stripe
from sqlalchemy.engine import Connection, Engine

from gateway.payments import records
from gateway.payments import refunds as refund_steps
from gateway.payments.errors import ProviderMismatch, UnknownProviderPayment
from gateway.payments.model import Attempt, RefundStatus
from gateway.payments.schema import attempts, refunds
from gateway.payments.service import PaymentService
from gateway.payments.state import AttemptStatus
from gateway.providers.errors import ProviderError
from gateway.providers.model import ProviderPayment, ProviderRefund
from gateway.providers.stripe import StripeProvider
from gateway.settings import Settings
from ledger.db import execute
from webhooks import (
    BackfillFailed,
    BackgroundProcessor,
    HandlerRegistry,
    InboxEvent,
    Intake,
    NotYet,
    Outcome,
    Outside,
    Processor,
    Refuse,
    RetryPolicy,
    Triage,
)
from webhooks.committer import GroupCommitter
from webhooks.processor import DEFAULT_BATCH, DEFAULT_LEASE

log = logging.getLogger("nofu.webhooks")



@dataclass(frozen=True)
class Seen:
    """What a handler needs to know of an attempt to decide, read cheaply in the event's
    transaction (the service reads the whole attempt when it acts)."""

    id: int
    public_id: str
    status: AttemptStatus
    amount_received: int
    provider_payment_id: str | None
    version: int

    @classmethod
    def of(cls, row: sa.Row) -> Seen:
        return cls(row.id, row.public_id, AttemptStatus(row.status), row.amount_received, row.provider_payment_id, row.version)


_SEEN = sa.select(
    attempts.c.id, attempts.c.public_id, attempts.c.status, attempts.c.amount_received,
    attempts.c.provider_payment_id, attempts.c.version,
)  # fmt: skip
# Built once: building a statement and its cache key per call costs about half of running it.
_SEEN_BY_PROVIDER_ID = _SEEN.where(attempts.c.provider_payment_id == sa.bindparam("p_id"))
_SEEN_BY_PUBLIC_ID = _SEEN.where(attempts.c.public_id == sa.bindparam("p_id"))
_SEEN_BY_PROVIDER_IDS = _SEEN.where(attempts.c.provider_payment_id.in_(sa.bindparam("p_ids", expanding=True)))
_SEEN_BY_PUBLIC_IDS = _SEEN.where(attempts.c.public_id.in_(sa.bindparam("p_ids", expanding=True)))
Prepared = tuple[Seen, Attempt]


@dataclass(frozen=True)
class Subject:
    """The payment a ``payment_intent.*`` or ``charge.*`` event is about: the PaymentIntent's id,
    the metadata nofu put on it, and what the event says of it (None: a failed charge, which
    leaves the intent's state in doubt)."""

    payment_id: str
    metadata: Mapping[str, Any]
    payment: ProviderPayment | None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _id_of(value: Any) -> str | None:
    """An id, whether the field holds it or an expanded object."""
    if isinstance(value, Mapping):
        return _text(value.get("id"))
    return _text(value)


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    found = obj.get("metadata")
    return found if isinstance(found, Mapping) else {}


class PaymentEvents:
    """The handlers, bound to one payment service (see the module docstring)."""

    def __init__(self, payments: PaymentService) -> None:
        self.payments = payments

    def register(self, registry: HandlerRegistry) -> HandlerRegistry:
        registry.register("payment_intent.*", self.on_payment_intent)
        registry.register("charge.*", self.on_charge)
        registry.register("refund.*", self.on_refund)
        registry.register_triage(self.triage)
        return registry

    # --- payments ---------------------------------------------------------------------------

    def _attempt(self, conn: Connection, payment_id: str, metadata: Mapping[str, Any]) -> Seen | None:
        """The attempt an object belongs to: by the provider's id, else by the attempt id nofu
        put in its metadata (an intent whose create answer was lost)."""
        found = execute(conn, _SEEN_BY_PROVIDER_ID, {"p_id": payment_id}).first()
        attempt_id = _text(metadata.get("attempt_id"))
        if found is None and attempt_id is not None:
            found = execute(conn, _SEEN_BY_PUBLIC_ID, {"p_id": attempt_id}).first()
        return None if found is None else Seen.of(found)

    def _apply(self, before: Seen, payment: ProviderPayment | None, payment_id: str) -> Prepared:
        """The Outside step: apply the given outcome, or (None) the provider's current state."""
        try:
            if payment is None:
                if self.payments.provider is None:
                    raise NotYet("no payment provider is configured to ask")
                payment = self.payments.provider.retrieve_payment(payment_id)
            return before, self.payments.apply_provider_outcome(payment)
        except UnknownProviderPayment as exc:
            raise NotYet(f"no payment attempt knows {payment_id} yet") from exc
        except ProviderMismatch as exc:
            raise Refuse(f"the provider's payment {payment_id} does not match its attempt: {exc.message}") from exc
        except ProviderError as exc:
            if exc.retryable or exc.reason == "unexpected_state":
                raise
            raise Refuse(f"the provider refused a call about {payment_id}: [{exc.code}] {exc}") from exc

    def _settle(self, conn: Connection, payment: ProviderPayment, seen: Seen) -> Outcome:
        """Record a succeeded payment's money in the event's own transaction: nothing is needed
        from the provider, and the event's outcome commits with the books (one commit)."""
        try:
            after = self.payments.settle_in(conn, seen.id, payment)
        except ProviderMismatch as exc:
            raise Refuse(f"the provider's payment {payment.id} does not match its attempt: {exc.message}") from exc
        if after is None:
            # Another event recorded it between our first look and the lock.
            return Outcome.skipped(f"{seen.public_id}: the money of {payment.id} is already recorded")
        note = f"{after.public_id}: {seen.status.value} → {after.status.value}, ¥{after.amount_received:,} recorded"
        return Outcome.applied(note, f"payment:{after.public_id}:received")

    @staticmethod
    def _result(conn: Connection, prepared: Prepared) -> Outcome:
        """What the outside step did. Money received and a final status are one-time effects
        (named for the inbox, which keeps each on one event); other moves are plain updates."""
        before, after = prepared
        # Serialise with another event's re-run for the same attempt, so the inbox's check of
        # who applied an effect sees the other's committed answer.
        conn.execute(sa.select(attempts.c.id).where(attempts.c.id == after.id).with_for_update())
        if after.version == before.version and after.amount_received == before.amount_received:
            return Outcome.skipped(f"{after.public_id}: nothing to change ({after.status.value})")
        note = f"{after.public_id}: {before.status.value} → {after.status.value}"
        if after.amount_received and not before.amount_received:
            return Outcome.applied(note + f", ¥{after.amount_received:,} recorded", f"payment:{after.public_id}:received")
        if after.status.terminal and after.status is not before.status:
            return Outcome.applied(note, f"payment:{after.public_id}:{after.status.value}")
        return Outcome.applied(note)

    @staticmethod
    def _subject(event: InboxEvent) -> Subject | Outcome | None:
        """What a ``payment_intent.*`` or ``charge.*`` event says about which payment, or its
        outcome when the payload alone decides it; None when only its handler can tell (a
        refunded charge, a PaymentIntent that does not parse)."""
        obj = event.data_object
        if event.type.startswith("payment_intent."):
            try:
                payment = ProviderPayment.from_stripe(obj)
            except ValueError:
                return None
            if payment.status == "succeeded" and payment.succeeded_at is None and event.created is not None:
                # The intent's snapshot does not expand its charge; the event is as close as it gets.
                payment = dataclasses.replace(payment, succeeded_at=event.created)
            return Subject(payment.id, _metadata(obj), payment)
        payment_id = _id_of(obj.get("payment_intent"))
        if payment_id is None:
            return Outcome.ignored("a charge without a PaymentIntent is not a nofu payment")
        if event.type == "charge.refunded":
            return None
        status = obj.get("status")
        if status == "succeeded" and obj.get("captured") is not False and obj.get("paid") is not False:
            return Subject(payment_id, _metadata(obj), _payment_from_charge(obj, payment_id))
        if status == "failed":
            # In doubt (the resident may have paid with another card since): ask the provider.
            return Subject(payment_id, _metadata(obj), None)
        return Outcome.skipped(f"{event.type}: nothing for nofu in a {status} charge")

    @staticmethod
    def _no_change(subject: Subject, seen: Seen | None) -> Outcome | None:
        """The outcome of an event that changes nothing, decided from the attempt as read —
        only from facts that stay true (money recorded, a terminal status, not our payment) or
        that carry nothing to apply; None when the event must be acted on or wait."""
        payment = subject.payment
        if seen is None:
            if _text(subject.metadata.get("attempt_id")):
                return None  # ours, not known yet: wait
            return Outcome.ignored(f"{subject.payment_id} is not a nofu payment (no attempt_id in its metadata)")
        if payment is not None and payment.status == "succeeded":
            if seen.amount_received:
                return Outcome.skipped(f"{seen.public_id}: the money of {payment.id} is already recorded")
            return None
        if seen.status.terminal:
            return Outcome.skipped(f"stale: {seen.public_id} is already {seen.status.value}")
        if (
            payment is not None
            and payment.status in ("requires_payment_method", "requires_confirmation")
            and not (payment.error_code or payment.decline_code or payment.error_message)
            and seen.status is AttemptStatus.CREATED
            and seen.provider_payment_id == payment.id
        ):
            return Outcome.skipped(f"{seen.public_id}: nothing to change (created)")
        return None

    def _handle(self, conn: Connection, subject: Subject | Outcome) -> Outcome:
        if isinstance(subject, Outcome):
            return subject
        seen = self._attempt(conn, subject.payment_id, subject.metadata)
        decided = self._no_change(subject, seen)
        if decided is not None:
            return decided
        if seen is None:
            raise NotYet(f"no payment attempt knows {subject.payment_id} yet")
        payment = subject.payment
        if payment is None:
            raise Outside(lambda: self._apply(seen, None, subject.payment_id), f"ask the provider about {subject.payment_id}")
        if payment.status == "succeeded" and payment.succeeded_at is not None and seen.provider_payment_id == payment.id:
            return self._settle(conn, payment, seen)
        raise Outside(lambda: self._apply(seen, payment, payment.id), f"apply {payment.status} of {payment.id}")

    def on_payment_intent(self, conn: Connection, event: InboxEvent) -> Outcome:
        if event.prepared is not None:
            return self._result(conn, event.prepared)
        subject = self._subject(event)
        if subject is None:
            raise Refuse("data.object is not a PaymentIntent")
        return self._handle(conn, subject)

    def on_charge(self, conn: Connection, event: InboxEvent) -> Outcome:
        if event.prepared is not None:
            return self._result(conn, event.prepared)
        subject = self._subject(event)
        if subject is None:
            return self._refunds_of_charge(conn, event.data_object)
        return self._handle(conn, subject)

    def triage(self, conn: Connection, events: list[InboxEvent]) -> Triage:
        """Decide a claimed batch's payment events that change nothing, with one read of their
        attempts (two when some are known only by the attempt id in their metadata). Of several
        events about one payment that must be acted on, the first is left to its handler and the
        rest are looked at again after it (its effect usually decides them)."""
        decided: dict[int, Outcome] = {}
        subjects: list[tuple[InboxEvent, Subject]] = []
        for event in events:
            if not event.type.startswith(("payment_intent.", "charge.")):
                continue
            subject = self._subject(event)
            if isinstance(subject, Outcome):
                decided[event.id] = subject
            elif subject is not None:
                subjects.append((event, subject))
        seen = self._attempts(conn, [subject for _, subject in subjects])
        acting: set[str] = set()
        again: set[int] = set()
        for event, subject in subjects:
            outcome = self._no_change(subject, seen.get(subject.payment_id))
            if outcome is not None:
                decided[event.id] = outcome
            elif subject.payment_id in acting:
                again.add(event.id)
            else:
                acting.add(subject.payment_id)
        return Triage(decided, frozenset(again))

    def _attempts(self, conn: Connection, subjects: list[Subject]) -> dict[str, Seen]:
        """``_attempt`` for many payments at once, by payment id. (``_attempt`` keeps its own
        one-row statements: an expanding ``IN`` costs about 50 µs more a call, on the money path.)"""
        if not subjects:
            return {}
        ids = sorted({subject.payment_id for subject in subjects})
        found = {row.provider_payment_id: Seen.of(row) for row in conn.execute(_SEEN_BY_PROVIDER_IDS, {"p_ids": ids})}
        by_attempt = {
            attempt_id: subject.payment_id
            for subject in subjects
            if subject.payment_id not in found and (attempt_id := _text(subject.metadata.get("attempt_id")))
        }
        if by_attempt:
            for row in conn.execute(_SEEN_BY_PUBLIC_IDS, {"p_ids": sorted(by_attempt)}):
                found[by_attempt[row.public_id]] = Seen.of(row)
        return found

    # --- refunds ----------------------------------------------------------------------------

    def on_refund(self, conn: Connection, event: InboxEvent) -> Outcome:
        return self._refund(conn, event.data_object)

    def _refunds_of_charge(self, conn: Connection, charge: Mapping[str, Any]) -> Outcome:
        listed = charge.get("refunds")
        data = listed.get("data") if isinstance(listed, Mapping) else None
        if not isinstance(data, list) or not data:
            return Outcome.skipped("charge.refunded lists no refunds: refund events carry them")
        outcomes = [self._refund(conn, item) for item in data if isinstance(item, Mapping)]
        applied = [o for o in outcomes if o.kind.value == "applied"]
        if applied:
            # One effect key per event: with two refunds booked by one event, the first is named.
            return Outcome.applied("; ".join(o.note for o in applied), applied[0].effect)
        return Outcome.skipped("; ".join(o.note for o in outcomes))

    def _refund_row(self, conn: Connection, refund: ProviderRefund, metadata: Mapping[str, Any]) -> Any:
        row = conn.execute(sa.select(refunds.c.id).where(refunds.c.provider_refund_id == refund.id)).first()
        if row is None and _text(metadata.get("refund_id")):
            row = conn.execute(sa.select(refunds.c.id).where(refunds.c.public_id == metadata["refund_id"])).first()
        return None if row is None else records.lock_refund(conn, row.id)

    def _refund(self, conn: Connection, obj: Mapping[str, Any]) -> Outcome:
        try:
            refund = ProviderRefund.from_stripe(obj)
        except (ValueError, TypeError):
            raise Refuse("data.object is not a Refund") from None
        metadata = _metadata(obj)
        row = self._refund_row(conn, refund, metadata)
        if row is None:
            if _text(metadata.get("refund_id")):
                raise NotYet(f"refund {metadata['refund_id']} is not known yet")
            raise Refuse(f"refund {refund.id} was not made by nofu: book it by hand (which invoice?)")
        now = self.payments.clock()
        if refund.status == "succeeded":
            if row.status is RefundStatus.SUCCEEDED:
                return Outcome.skipped(f"{row.public_id}: already booked")
            refund_steps.complete(conn, self.payments.ctx, row.id, refund.id, now=now)
            return Outcome.applied(f"{row.public_id}: ¥{row.amount:,} refund booked", f"refund:{row.public_id}:succeeded")
        if refund.status in ("failed", "canceled"):
            if row.status is RefundStatus.PENDING:
                refund_steps.fail(
                    conn, row.id, f"provider.refund_{refund.status}", refund.failure_reason or refund.status, now=now
                )
                return Outcome.applied(
                    f"{row.public_id}: refund {refund.status}, amount refundable again", f"refund:{row.public_id}:failed"
                )
            if row.status is RefundStatus.SUCCEEDED:
                # Stripe can fail a refund after it succeeded (a closed card): the money came back.
                raise Refuse(f"{row.public_id} was booked as refunded but the provider says {refund.status}")
            return Outcome.skipped(f"{row.public_id}: already {row.status.value}")
        if row.status is RefundStatus.PENDING and row.provider_refund_id is None:
            refund_steps.remember_provider_id(conn, row.id, refund.id, now=now)
            return Outcome.applied(f"{row.public_id}: provider refund {refund.id} noted ({refund.status})")
        return Outcome.skipped(f"{row.public_id}: {refund.status} at the provider, {row.status.value} here")


def _payment_from_charge(charge: Mapping[str, Any], payment_id: str) -> ProviderPayment:
    """What a captured, succeeded charge proves about its PaymentIntent: it succeeded, for the
    charge's amount, at the charge's time."""
    amount = charge.get("amount")
    created = charge.get("created")
    metadata = _metadata(charge)
    return ProviderPayment(
        id=payment_id,
        status="succeeded",
        amount=amount if isinstance(amount, int) and not isinstance(amount, bool) else -1,
        currency=str(charge.get("currency") or "").lower(),
        amount_received=amount if isinstance(amount, int) and not isinstance(amount, bool) else 0,
        metadata={str(k): str(v) for k, v in metadata.items()},
        succeeded_at=(
            datetime.fromtimestamp(created, tz=UTC)
            if isinstance(created, int) and not isinstance(created, bool)
            else None
        ),
        latest_charge=_text(charge.get("id")),
        livemode=bool(charge.get("livemode")),
    )


def build_registry(payments: PaymentService) -> HandlerRegistry:
    """Every handler nofu has, registered (event types without one are stored and ignored)."""
    return PaymentEvents(payments).register(HandlerRegistry())


def provider_events(payments: PaymentService, since: datetime) -> Iterator[Mapping[str, Any]]:
    """Every event the provider lists created at or after ``since`` (Stripe keeps 30 days),
    newest first, as plain dicts — the SDK pages through ``GET /v1/events``. A provider failure
    mid-way raises ``BackfillFailed`` (``webhook.backfill_failed``); what was stored stays, and
    running the backfill again continues safely."""
    provider = payments.provider
    if not isinstance(provider, StripeProvider):
        raise BackfillFailed("backfill needs the Stripe provider (set NOFU_STRIPE_SECRET_KEY or NOFU_STRIPE_API_BASE)")
    try:
        listing = provider.client.v1.events.list(params={"created": {"gte": int(since.timestamp())}, "limit": 100})
        for event in listing.auto_paging_iter():
            yield event.to_dict()
    except stripe.StripeError as exc:
        raise BackfillFailed(f"the provider's event list failed: {exc.user_message or exc}", request_id=exc.request_id) from exc


@dataclass
class WebhookRuntime:
    """The webhook pieces of one app process: the intake, the processor, and the processor's
    background thread when it runs in the app (``NOFU_WEBHOOK_INPROCESS=1``, the default)."""

    intake: Intake
    processor: Processor
    background: BackgroundProcessor | None
    committer: GroupCommitter

    def start(self) -> None:
        self.committer.start()
        if self.background is not None:
            self.background.start()

    def stop(self) -> None:
        if self.background is not None:
            self.background.stop()
        self.committer.stop()


def build_processor(
    engine: Engine,
    payments: PaymentService,
    settings: Settings,
    *,
    worker_id: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    lease: timedelta = DEFAULT_LEASE,
    clock: Callable[[], datetime] | None = None,
) -> Processor:
    return Processor(
        engine,
        build_registry(payments),
        policy=RetryPolicy(max_attempts=settings.webhook_attempts),
        worker_id=worker_id,
        batch_size=batch_size,
        lease=lease,
        **({"clock": clock} if clock is not None else {}),
    )


def build_webhooks(settings: Settings, engine: Engine, payments: PaymentService) -> WebhookRuntime:
    processor = build_processor(engine, payments, settings)
    background = BackgroundProcessor(processor) if settings.webhook_in_process else None
    committer = GroupCommitter(engine, on_stored=processor.wake if background else None)
    intake = Intake(engine, settings.stripe_webhook_secrets, committer=committer)
    return WebhookRuntime(intake=intake, processor=processor, background=background, committer=committer)
