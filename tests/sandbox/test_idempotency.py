"""Idempotency-Key handling, as Stripe documents it."""

from __future__ import annotations

import httpx
import pytest
import stripe

from gateway.sandbox import SandboxConfig, SandboxServer
from tests.sandbox.support import API_KEY, CARD_ONLY, client, make_config, server, shared_server  # noqa: F401

PARAMS = {"amount": 1500, "currency": "jpy", "metadata": {"invoice": "INV-9"}, **CARD_ONLY}


def test_same_key_same_params_replays_the_stored_response(client: stripe.StripeClient) -> None:
    first = client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "slip-9-attempt-1"})  # type: ignore[arg-type]
    again = client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "slip-9-attempt-1"})  # type: ignore[arg-type]
    assert again.id == first.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert again.last_response.headers.get("Original-Request") == first.last_response.request_id
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert len(client.v1.payment_intents.list().data) == 1
    assert len(client.v1.events.list(params={"type": "payment_intent.created"}).data) == 1


def test_same_key_other_params_is_an_idempotency_error(client: stripe.StripeClient) -> None:
    client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "k-1"})  # type: ignore[arg-type]
    with pytest.raises(stripe.IdempotencyError) as raised:
        client.v1.payment_intents.create(
            params={**PARAMS, "amount": 1600}, options={"idempotency_key": "k-1"}  # type: ignore[arg-type]
        )
    assert raised.value.http_status == 400
    assert raised.value.error.type == "idempotency_error"

    pi = client.v1.payment_intents.list().data[0]
    with pytest.raises(stripe.IdempotencyError):  # same key on another endpoint
        client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"}, options={"idempotency_key": "k-1"})


def test_a_decline_is_replayed_without_charging_again(client: stripe.StripeClient) -> None:
    params = {"amount": 2000, "currency": "jpy", "confirm": True, "payment_method": "pm_card_chargeDeclined", **CARD_ONLY}
    with pytest.raises(stripe.CardError) as first:
        client.v1.payment_intents.create(params=params, options={"idempotency_key": "decl"})  # type: ignore[arg-type]
    with pytest.raises(stripe.CardError) as second:
        client.v1.payment_intents.create(params=params, options={"idempotency_key": "decl"})  # type: ignore[arg-type]
    assert second.value.headers.get("Idempotent-Replayed") == "true"
    assert second.value.error.payment_intent.id == first.value.error.payment_intent.id
    assert len(client.v1.charges.list().data) == 1


def test_validation_failures_are_not_saved(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.create(params={**PARAMS, "amount": 10}, options={"idempotency_key": "fixable"})  # type: ignore[arg-type]
    fixed = client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "fixable"})  # type: ignore[arg-type]
    assert fixed.status == "requires_payment_method"


def test_keys_longer_than_255_characters_are_refused(client: stripe.StripeClient) -> None:
    client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "k" * 255})  # type: ignore[arg-type]
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "k" * 256})  # type: ignore[arg-type]
    assert raised.value.code == "idempotency_key_too_long"


def test_keys_are_scoped_per_api_key() -> None:
    other_key = "sk_test_nofu_rolled_key"
    with SandboxServer(make_config(additional_api_keys=frozenset({other_key}))) as running:
        first = running.stripe_client().v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "shared"})  # type: ignore[arg-type]
        second = running.stripe_client(api_key=other_key).v1.payment_intents.create(
            params={**PARAMS, "amount": 1700}, options={"idempotency_key": "shared"}  # type: ignore[arg-type]
        )
        assert second.id != first.id and second.amount == 1700


def test_keys_expire_after_the_ttl_on_the_sandbox_clock(server: SandboxServer, client: stripe.StripeClient) -> None:
    server.control.set_clock(1_780_000_000)
    first = client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "old"})  # type: ignore[arg-type]
    server.control.advance_clock(24 * 60 * 60)
    fresh = client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "old"})  # type: ignore[arg-type]
    assert fresh.id != first.id


def test_get_requests_ignore_the_key(server: SandboxServer) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "g"}
    assert httpx.get(f"{server.url}/v1/payment_intents", headers=headers).status_code == 200
    again = httpx.get(f"{server.url}/v1/payment_intents", headers=headers)
    assert "idempotent-replayed" not in again.headers


def test_config_refuses_live_keys() -> None:
    with pytest.raises(ValueError, match="sk_test_"):
        SandboxConfig(api_key="sk_live_nope")


def test_config_from_environment() -> None:
    config = SandboxConfig.from_env(
        {"NOFU_SANDBOX_API_KEY": "sk_test_env", "NOFU_SANDBOX_FEE_RATE": "0.0325",
         "NOFU_SANDBOX_WEBHOOK_URL": "http://127.0.0.1:8000/webhooks/stripe", "UNRELATED": "x"}
    )
    assert (config.api_key, str(config.fee_rate), config.webhook_url) == (
        "sk_test_env", "0.0325", "http://127.0.0.1:8000/webhooks/stripe",
    )
    assert SandboxConfig.from_env({}) == SandboxConfig()
    with pytest.raises(ValueError, match="NOFU_SANDBOX_FEE_RATE"):
        SandboxConfig.from_env({"NOFU_SANDBOX_FEE_RATE": "3.6%"})
