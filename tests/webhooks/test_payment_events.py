"""Stripe's events for real payments and refunds, made by the sandbox and delivered over HTTP to
the running app, in every order and multiplicity; on SQLite and PostgreSQL. nofu's books end the
same whatever the delivery did, and every effect happens once."""

from __future__ import annotations

import json
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.payments import AttemptStatus, PaymentService
from gateway.sandbox import SandboxServer
from gateway.webhook_handlers import provider_events
from invoices.model import Status
from invoices.service import get_invoice
from ledger.clock import utc_now
from ledger.db import read_transaction
from tests.payments.support import API_KEY, CLERK, assert_books_ok, issue
from tests.webhooks.flow import (  # noqa: F401 (fixtures)
    AppServer,
    app,
    browser_pays,
    clock,
    processor,
    sandbox,
    service,
    settings,
)
from tests.webhooks.support import rows
from webhooks import InboxEvent, Processor, Triage, backfill


def queued(sandbox: SandboxServer) -> list[str]:
    return list(sandbox.control.deliveries()["queued"])


def status_of(engine: Engine, number: str) -> tuple[Status, int]:
    with read_transaction(engine) as conn:
        invoice = get_invoice(conn, number)
    return invoice.status, invoice.amount_paid


def settlement_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM receipts")).scalar_one()


def test_a_browser_payment_is_recorded_once_from_its_events(
    engine: Engine, app: AppServer, sandbox: SandboxServer, service: PaymentService, processor: Processor
) -> None:
    invoice = issue(engine)
    attempt_id = browser_pays(sandbox, service, invoice.public_id)
    assert service.get_attempt(attempt_id).status is AttemptStatus.CREATED  # nothing told nofu yet
    types = [a["event_type"] for a in sandbox.control.flush_deliveries()]
    assert {"charge.succeeded", "payment_intent.succeeded", "charge.updated"} <= set(types)
    processor.drain()
    assert service.get_attempt(attempt_id).status is AttemptStatus.SUCCEEDED
    assert status_of(engine, invoice.notice_number) == (Status.PAID, invoice.amount)
    by_type = {r.event_type: r for r in rows(engine)}
    # The charge event came first and recorded the money; the intent's event found it there.
    assert by_type["charge.succeeded"].state == "applied"
    assert by_type["payment_intent.succeeded"].state == "skipped"
    assert "already recorded" in by_type["payment_intent.succeeded"].outcome
    assert settlement_count(engine) == 1
    assert_books_ok(engine)


def test_reversed_and_duplicated_deliveries_end_the_same(
    engine: Engine, app: AppServer, sandbox: SandboxServer, service: PaymentService, processor: Processor
) -> None:
    invoice = issue(engine)
    browser_pays(sandbox, service, invoice.public_id)
    events = queued(sandbox)
    attempts_made = sandbox.control.flush_deliveries(order="reverse", duplicate=events)
    assert len(attempts_made) == 2 * len(events)
    processor.drain()
    assert len(rows(engine)) == len(events)
    assert status_of(engine, invoice.notice_number) == (Status.PAID, invoice.amount)
    # Reversed, the last event (charge.updated: the charge with its balance transaction) came first
    # and recorded the money; the earlier ones about the same payment found it there.
    assert [r.event_type for r in rows(engine) if r.state == "applied"] == ["charge.updated"]
    skipped = {r.event_type for r in rows(engine) if r.state == "skipped"}
    assert {"charge.succeeded", "payment_intent.succeeded"} <= skipped
    assert settlement_count(engine) == 1
    assert_books_ok(engine)


def test_dropped_deliveries_heal_by_backfill(
    engine: Engine, app: AppServer, sandbox: SandboxServer, service: PaymentService, processor: Processor
) -> None:
    invoice = issue(engine)
    since = utc_now() - timedelta(minutes=1)
    browser_pays(sandbox, service, invoice.public_id)
    sandbox.control.flush_deliveries(drop=queued(sandbox))  # Stripe never managed to deliver
    assert rows(engine) == []
    report = backfill(engine, provider_events(service, since))
    assert report.added == report.seen > 0 and report.present == 0
    processor.drain()
    assert status_of(engine, invoice.notice_number) == (Status.PAID, invoice.amount)
    assert {r.source for r in rows(engine)} == {"backfill"}
    again = backfill(engine, provider_events(service, since))
    assert (again.added, again.present) == (0, report.seen)
    assert settlement_count(engine) == 1
    assert_books_ok(engine)


def test_a_late_decline_after_a_success_on_the_same_intent_is_stale(
    engine: Engine, app: AppServer, sandbox: SandboxServer, service: PaymentService, processor: Processor
) -> None:
    invoice = issue(engine)
    first = browser_pays(sandbox, service, invoice.public_id, "pm_card_chargeDeclined")
    decline_events = queued(sandbox)
    second = browser_pays(sandbox, service, invoice.public_id)  # same attempt: nofu knew nothing yet
    assert first == second
    success_events = [e for e in queued(sandbox) if e not in decline_events]
    sandbox.control.flush_deliveries(success_events)
    processor.drain()
    sandbox.control.flush_deliveries(decline_events)  # the decline arrives last
    processor.drain()
    assert service.get_attempt(first).status is AttemptStatus.SUCCEEDED
    late = [r for r in rows(engine) if r.event_type in ("charge.failed", "payment_intent.payment_failed")]
    assert late and all(r.state == "skipped" and "stale" in r.outcome for r in late)
    assert status_of(engine, invoice.notice_number) == (Status.PAID, invoice.amount)
    assert_books_ok(engine)


def test_a_decline_releases_the_invoice_after_asking_the_provider(
    engine: Engine, app: AppServer, sandbox: SandboxServer, service: PaymentService, processor: Processor
) -> None:
    invoice = issue(engine)
    attempt_id = browser_pays(sandbox, service, invoice.public_id, "pm_card_chargeDeclinedInsufficientFunds")
    sandbox.control.flush_deliveries()
    processor.drain()
    failed = service.get_attempt(attempt_id)
    assert (failed.status, failed.failure_code) == (AttemptStatus.FAILED, "insufficient_funds")
    # The intent was cancelled at the provider before the invoice was released; paying again works.
    second = browser_pays(sandbox, service, invoice.public_id)
    assert second != attempt_id
    sandbox.control.flush_deliveries(order="shuffle", seed=3)
    processor.drain()
    assert status_of(engine, invoice.notice_number) == (Status.PAID, invoice.amount)
    assert_books_ok(engine)


def test_a_refund_whose_answer_was_lost_is_booked_from_its_event(
    engine: Engine, app: AppServer, sandbox: SandboxServer, service: PaymentService, processor: Processor
) -> None:
    invoice = issue(engine)
    attempt_id = browser_pays(sandbox, service, invoice.public_id)
    sandbox.control.flush_deliveries()
    processor.drain()
    sandbox.control.fail_api_requests(3, when="after", match="POST /v1/refunds")  # the SDK tries 3 times
    pending = service.refund(attempt_id, amount=2_300, expected_refundable=invoice.amount, reason="一部還付", actor=CLERK)
    assert pending.status.value == "pending" and pending.provider_refund_id is None
    sandbox.control.flush_deliveries(order="reverse")
    processor.drain()
    assert [r.status.value for r in service.refunds_of(attempt_id)] == ["succeeded"]
    assert status_of(engine, invoice.notice_number) == (Status.OPEN, invoice.amount - 2_300)
    refund_rows = [r for r in rows(engine) if r.event_type in ("refund.created", "charge.refunded")]
    assert sorted(r.state for r in refund_rows) == ["applied", "skipped"]
    assert_books_ok(engine)


def test_objects_that_are_not_nofus(
    engine: Engine, app: AppServer, sandbox: SandboxServer, service: PaymentService, processor: Processor
) -> None:
    client = sandbox.stripe_client(api_key=API_KEY)
    client.v1.payment_intents.create(params={"amount": 5000, "currency": "jpy", "payment_method_types": ["card"]})
    invoice = issue(engine)
    attempt_id = browser_pays(sandbox, service, invoice.public_id)
    sandbox.control.flush_deliveries()
    processor.drain()
    # A refund made in the provider's dashboard: money left without a refund record.
    intent = service.get_attempt(attempt_id).provider_payment_id
    client.v1.refunds.create(params={"payment_intent": intent, "amount": 100})
    sandbox.control.flush_deliveries()
    processor.drain()
    states = {(r.event_type, r.state) for r in rows(engine)}
    assert ("payment_intent.created", "ignored") in states  # the foreign intent
    dead = [r for r in rows(engine) if r.state == "dead"]
    # Both events that carry the foreign refund wait for staff, dead-lettered at once.
    assert sorted(r.event_type for r in dead) == ["charge.refunded", "refund.created"]
    assert all("not made by nofu" in r.last_error and r.attempts == 1 for r in dead)
    assert_books_ok(engine)


def test_the_triage_decides_as_the_handlers_would(
    engine: Engine, app: AppServer, sandbox: SandboxServer, service: PaymentService, processor: Processor
) -> None:
    """Several payments (paid, declined then paid, declined) delivered shuffled and duplicated in
    one batch: the events the triage finished without their handler carry the outcome their
    handler gives for them now (to the letter, except a created event, whose attempt has moved
    on since: skipped either way), and the books are as if each had been handled alone."""
    invoices = [issue(engine) for _ in range(4)]
    browser_pays(sandbox, service, invoices[0].public_id)
    browser_pays(sandbox, service, invoices[1].public_id, "pm_card_chargeDeclined")
    browser_pays(sandbox, service, invoices[1].public_id)
    browser_pays(sandbox, service, invoices[2].public_id, "pm_card_chargeDeclined")
    browser_pays(sandbox, service, invoices[3].public_id)
    events = queued(sandbox)
    sandbox.control.flush_deliveries(order="shuffle", duplicate=events[::3], seed=7)
    triaged: set[int] = set()
    triage = processor.registry.triage
    assert triage is not None

    def recording(conn: Connection, batch: list[InboxEvent]) -> Triage:
        found = triage(conn, batch)
        triaged.update(found.decided)
        return found

    processor.registry.triage = recording
    processor.batch_size = 50
    processor.drain()
    assert len(triaged) >= len(events) // 3, "the triage should have decided a good part of the batch"
    with engine.connect() as conn:
        for r in rows(engine):
            if r.id not in triaged:
                continue
            evt = InboxEvent(r.id, r.event_id, r.event_type, r.object_id, None, json.loads(r.payload), r.attempts)
            handler = processor.registry.handler_for(r.event_type)
            assert handler is not None
            with conn.begin() as tx:
                outcome = handler(conn, evt)
                tx.rollback()
            assert r.state == outcome.kind.value, (r.event_type, r.outcome, outcome)
            if not r.outcome.endswith("nothing to change (created)"):  # the attempt has moved on since
                assert r.outcome == outcome.note, r.event_type
    assert [status_of(engine, i.notice_number) for i in invoices] == [
        (Status.PAID, invoices[0].amount), (Status.PAID, invoices[1].amount), (Status.OPEN, 0), (Status.PAID, invoices[3].amount),
    ]  # fmt: skip
    assert settlement_count(engine) == 3
    assert_books_ok(engine)
