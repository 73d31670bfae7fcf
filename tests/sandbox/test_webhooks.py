"""Webhook delivery: Stripe's signature, retries, and the fault controls."""

from __future__ import annotations

import socket
import time

import pytest
import stripe

from gateway.sandbox import SandboxControlError, SandboxServer
from tests.sandbox.support import (  # noqa: F401
    CARD_ONLY,
    FAST_RETRIES,
    SECRET,
    WebhookReceiver,
    client,
    hooked,
    make_config,
    pay,
    receiver,
    server,
    shared_server,
)

PAYMENT_EVENTS = ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded", "charge.updated"]


def _create(client: stripe.StripeClient, amount: int = 1000) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(params={"amount": amount, "currency": "jpy", **CARD_ONLY})


def _attempts(server: SandboxServer, event_id: str) -> list[tuple[int, str]]:
    return [(a["attempt"], a["outcome"]) for a in server.control.deliveries()["attempts"] if a["event_id"] == event_id]


def test_deliveries_verify_with_the_stripe_sdk(hooked: SandboxServer, receiver: WebhookReceiver, client: stripe.StripeClient) -> None:
    pay(client, 3000)
    deliveries = receiver.wait_for(4)
    assert hooked.control.wait_for_deliveries()
    assert sorted(d.event_type for d in deliveries) == sorted(PAYMENT_EVENTS)
    for delivery in deliveries:
        assert delivery.signature.startswith("t=") and ",v1=" in delivery.signature
        event = stripe.Webhook.construct_event(delivery.body, delivery.signature, SECRET)
        assert event.id == delivery.event_id
        assert client.v1.events.retrieve(event.id).pending_webhooks == 0

    delivery = deliveries[0]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivery.body.replace(b"jpy", b"usd"), delivery.signature, SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivery.body, delivery.signature, "whsec_someone_else")


def test_failed_deliveries_are_retried_with_backoff(hooked: SandboxServer, receiver: WebhookReceiver, client: stripe.StripeClient) -> None:
    receiver.statuses = [500, 503]
    pi = _create(client)
    [delivery] = receiver.wait_for(1)
    assert hooked.control.wait_for_deliveries()
    assert _attempts(hooked, delivery.event_id) == [(1, "failed"), (2, "failed"), (3, "delivered")]
    times = [a["at"] for a in hooked.control.deliveries()["attempts"]]
    assert times[1] - times[0] >= FAST_RETRIES[0] and times[2] - times[1] >= FAST_RETRIES[1]
    assert [a["status_code"] for a in hooked.control.deliveries()["attempts"]] == [500, 503, 200]
    assert delivery.event_type == "payment_intent.created"
    assert stripe.Webhook.construct_event(delivery.body, delivery.signature, SECRET).data.object.id == pi.id


def test_unreachable_endpoint_is_abandoned_after_the_retries(hooked: SandboxServer, client: stripe.StripeClient) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    hooked.control.set_webhook_endpoint(f"http://127.0.0.1:{closed_port}/hooks")
    _create(client)
    assert hooked.control.wait_for_deliveries(timeout=5)
    [event] = client.v1.events.list().data
    assert _attempts(hooked, event.id) == [(1, "failed"), (2, "failed"), (3, "failed"), (4, "abandoned")]
    assert "ConnectError" in hooked.control.deliveries()["attempts"][0]["error"]
    assert client.v1.events.retrieve(event.id).pending_webhooks == 1
    assert [e.id for e in client.v1.events.list(params={"delivery_success": False}).data] == [event.id]


def test_duplicate_rule(hooked: SandboxServer, receiver: WebhookReceiver, client: stripe.StripeClient) -> None:
    hooked.control.set_delivery_faults(rules=[{"action": "duplicate", "event_type": "payment_intent.created"}])
    _create(client)
    first, second = receiver.wait_for(2)
    assert first.event_id == second.event_id
    for delivery in (first, second):
        stripe.Webhook.construct_event(delivery.body, delivery.signature, SECRET)
    _create(client)  # the rule was for one event only
    receiver.wait_for(3)
    assert hooked.control.wait_for_deliveries()
    assert len(receiver.deliveries) == 3


def test_drop_rule_loses_the_delivery_but_not_the_event(hooked: SandboxServer, receiver: WebhookReceiver, client: stripe.StripeClient) -> None:
    hooked.control.set_delivery_faults(rules=[{"action": "drop", "event_type": "charge.succeeded"}])
    pay(client, 1000)
    receiver.wait_for(3)
    assert hooked.control.wait_for_deliveries()
    assert "charge.succeeded" not in receiver.types()
    [dropped] = client.v1.events.list(params={"type": "charge.succeeded"}).data
    assert dropped.pending_webhooks == 1  # a backfill from GET /v1/events finds it
    assert _attempts(hooked, dropped.id) == [(0, "dropped")]


def test_delay_rule_lets_later_events_overtake(hooked: SandboxServer, receiver: WebhookReceiver, client: stripe.StripeClient) -> None:
    hooked.control.set_delivery_faults(rules=[{"action": "delay", "event_type": "payment_intent.created", "delay_seconds": 1.0}])
    started = time.monotonic()
    first = _create(client, 1001)
    second = _create(client, 1002)  # its created event is not delayed: the rule fires once
    deliveries = receiver.wait_for(2)
    objects = [stripe.Webhook.construct_event(d.body, d.signature, SECRET).data.object.id for d in deliveries]
    assert objects == [second.id, first.id]
    assert time.monotonic() - started >= 1.0


def test_reorder_rule_holds_an_event_until_the_next_one_went_out(
    hooked: SandboxServer, receiver: WebhookReceiver, client: stripe.StripeClient
) -> None:
    hooked.control.set_delivery_faults(rules=[{"action": "reorder", "event_type": "charge.succeeded", "delay_seconds": 5}])
    started = time.monotonic()
    pay(client, 1000)
    receiver.wait_for(4)
    types = receiver.types()
    assert types.index("charge.succeeded") > types.index("payment_intent.succeeded")
    assert time.monotonic() - started < 4  # released by the next delivery, not by the 5 s window


def test_seeded_probabilities_are_reproducible(hooked: SandboxServer, receiver: WebhookReceiver, client: stripe.StripeClient) -> None:
    def dropped_positions() -> list[int]:
        hooked.control.set_delivery_faults(drop=0.5, seed=1234)
        for amount in range(1000, 1012):
            _create(client, amount)
        assert hooked.control.wait_for_deliveries()
        attempts = hooked.control.deliveries()["attempts"]
        order = [e.id for e in client.v1.events.list(params={"limit": 100}).data][::-1]
        dropped = {a["event_id"] for a in attempts if a["outcome"] == "dropped"}
        return [i for i, event_id in enumerate(order) if event_id in dropped]

    first = dropped_positions()
    hooked.sandbox.reset()
    hooked.control.set_webhook_endpoint(receiver.url)
    assert dropped_positions() == first
    assert 0 < len(first) < 12


def test_duplicate_probability_one_sends_everything_twice(hooked: SandboxServer, receiver: WebhookReceiver, client: stripe.StripeClient) -> None:
    hooked.control.set_delivery_faults(duplicate=1.0, seed=1)
    pay(client, 1000)
    receiver.wait_for(8)
    assert hooked.control.wait_for_deliveries()
    assert sorted(receiver.types()) == sorted(PAYMENT_EVENTS * 2)


def test_manual_mode_queues_until_flushed_in_the_order_asked(
    hooked: SandboxServer, receiver: WebhookReceiver, client: stripe.StripeClient
) -> None:
    hooked.control.set_delivery_mode("manual")
    pay(client, 1000)
    queued = hooked.control.deliveries()["queued"]
    assert len(queued) == 4 and receiver.deliveries == []

    attempts = hooked.control.flush_deliveries(order="reverse")
    assert [a["outcome"] for a in attempts] == ["delivered"] * 4
    assert receiver.types() == PAYMENT_EVENTS[::-1]
    assert hooked.control.deliveries()["queued"] == []


def test_manual_flush_picks_drops_and_duplicates(hooked: SandboxServer, receiver: WebhookReceiver, client: stripe.StripeClient) -> None:
    hooked.control.set_delivery_mode("manual")
    pay(client, 1000)
    created, charge_succeeded, succeeded, charge_updated = hooked.control.deliveries()["queued"]
    hooked.control.flush_deliveries([succeeded, created], drop=[charge_updated], duplicate=[succeeded])
    assert [d.event_id for d in receiver.deliveries] == [succeeded, succeeded, created]
    assert hooked.control.deliveries()["queued"] == [charge_succeeded]

    with pytest.raises(SandboxControlError) as raised:
        hooked.control.flush_deliveries([charge_updated])
    assert raised.value.code == "delivery_not_queued"

    receiver.statuses = [500]
    [failed] = hooked.control.flush_deliveries()
    assert (failed["attempt"], failed["outcome"], failed["status_code"]) == (1, "failed", 500)
    [retried] = hooked.control.flush_deliveries()
    assert (retried["event_id"], retried["attempt"], retried["outcome"]) == (charge_succeeded, 2, "delivered")


def test_switching_back_to_automatic_releases_the_queue(hooked: SandboxServer, receiver: WebhookReceiver, client: stripe.StripeClient) -> None:
    hooked.control.set_delivery_mode("manual")
    _create(client)
    hooked.control.set_delivery_mode("automatic")
    receiver.wait_for(1)


def test_enabled_events_limit_what_is_sent(receiver: WebhookReceiver) -> None:
    config = make_config(webhook_url=receiver.url, enabled_events=("charge.*",))
    with SandboxServer(config) as running:
        pay(running.stripe_client(), 1000)
        assert running.control.wait_for_deliveries()
        assert sorted(receiver.types()) == ["charge.succeeded", "charge.updated"]


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda c: c.set_delivery_faults(drop=2.0), "delivery_probability_invalid"),
        (lambda c: c.set_delivery_faults(rules=[{"action": "explode"}]), "delivery_action_invalid"),
        (lambda c: c.set_delivery_faults(rules=[{"action": "drop", "colour": "red"}]), "control_invalid"),
        (lambda c: c.set_delivery_faults(retry_delays=[-1]), "delivery_delay_invalid"),
        (lambda c: c.set_delivery_mode("sometimes"), "delivery_mode_invalid"),
        (lambda c: c.flush_deliveries(order="random"), "delivery_order_invalid"),
        (lambda c: c.set_webhook_endpoint("http://x.example", secret="plain"), "webhook_secret_invalid"),
    ],
)
def test_bad_delivery_controls_are_refused(server: SandboxServer, call: object, code: str) -> None:
    with pytest.raises(SandboxControlError) as raised:
        call(server.control)  # type: ignore[operator]
    assert raised.value.code == code
