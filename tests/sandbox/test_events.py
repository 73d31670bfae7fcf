"""Events: one per state change, snapshots, filters, and Stripe's envelope."""

from __future__ import annotations

import pytest
import stripe

from gateway.sandbox import STRIPE_API_VERSION, SandboxServer
from tests.sandbox.support import CARD_ONLY, client, pay, server, shared_server  # noqa: F401


def test_sdk_pins_the_api_version_the_sandbox_reports() -> None:
    assert stripe.api_version == STRIPE_API_VERSION


def test_a_card_payment_records_its_events_in_order_with_snapshots(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(
        params={"amount": 2500, "currency": "jpy", **CARD_ONLY}, options={"idempotency_key": "evt-test"}
    )
    client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    events = client.v1.events.list().data
    assert [e.type for e in events][::-1] == [
        "payment_intent.created", "charge.succeeded", "payment_intent.succeeded", "charge.updated",
    ]
    created, charge_succeeded, succeeded, charge_updated = events[::-1]
    assert created.data.object.status == "requires_payment_method"  # the snapshot, not the current state
    assert created.request.idempotency_key == "evt-test"
    assert created.request.id == pi.last_response.request_id
    assert created.api_version == STRIPE_API_VERSION
    assert created.pending_webhooks == 0  # no endpoint configured
    assert succeeded.data.object.status == "succeeded"
    # automatic_async: the balance transaction arrives with charge.updated
    assert charge_succeeded.data.object.balance_transaction is None
    assert charge_updated.data.object.balance_transaction.startswith("txn_")
    assert charge_updated.data.previous_attributes.to_dict() == {"balance_transaction": None}
    assert "previous_attributes" not in succeeded.data
    assert client.v1.events.retrieve(created.id).data.object.status == "requires_payment_method"


def test_event_filters(server: SandboxServer, client: stripe.StripeClient) -> None:
    server.control.set_clock(1_780_000_000)
    pay(client, 1000)
    server.control.advance_clock(3600)
    with pytest.raises(stripe.CardError):
        pay(client, 1000, "pm_card_chargeDeclined")
    assert {e.type for e in client.v1.events.list(params={"type": "charge.*"}).data} == {
        "charge.succeeded", "charge.updated", "charge.failed",
    }
    both = client.v1.events.list(params={"types": ["charge.failed", "payment_intent.payment_failed"]}).data
    assert [e.type for e in both] == ["payment_intent.payment_failed", "charge.failed"]
    later = client.v1.events.list(params={"created": {"gte": 1_780_003_600}}).data
    assert {e.type for e in later} == {"payment_intent.created", "charge.failed", "payment_intent.payment_failed"}
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.events.list(params={"type": "charge.failed", "types": ["charge.succeeded"]})
    assert raised.value.code == "parameters_exclusive"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.events.retrieve("evt_missing")
    assert missing.value.code == "resource_missing"


def test_events_older_than_30_days_are_not_listed(server: SandboxServer, client: stripe.StripeClient) -> None:
    server.control.set_clock(1_780_000_000)
    old = client.v1.payment_intents.create(params={"amount": 1000, "currency": "jpy", **CARD_ONLY})
    server.control.advance_clock(31 * 24 * 3600)
    client.v1.payment_intents.create(params={"amount": 1000, "currency": "jpy", **CARD_ONLY})
    listed = client.v1.events.list().data
    assert len(listed) == 1 and listed[0].data.object.id != old.id


def test_cancel_and_decline_events(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(params={"amount": 1000, "currency": "jpy", **CARD_ONLY})
    client.v1.payment_intents.cancel(pi.id)
    assert client.v1.events.list(params={"type": "payment_intent.canceled"}).data[0].data.object.status == "canceled"
    with pytest.raises(stripe.CardError) as raised:
        pay(client, 1000, "pm_card_chargeDeclinedInsufficientFunds")
    failed = client.v1.events.list(params={"type": "payment_intent.payment_failed"}).data[0].data.object
    assert failed.last_payment_error.decline_code == "insufficient_funds"
    assert failed.id == raised.value.error.payment_intent.id
    charge_failed = client.v1.events.list(params={"type": "charge.failed"}).data[0].data.object
    assert (charge_failed.status, charge_failed.outcome.type) == ("failed", "issuer_declined")
