"""PaymentIntents through the real stripe SDK against a running sandbox."""

from __future__ import annotations

import httpx
import pytest
import stripe

from gateway.sandbox import SandboxServer
from tests.sandbox.support import API_KEY, CARD_ONLY, client, pay, server, shared_server  # noqa: F401

pytestmark = pytest.mark.usefixtures("server")


def test_create_then_confirm_with_visa_succeeds_with_a_charge_and_fee(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(
        params={"amount": 12300, "currency": "jpy", "metadata": {"invoice": "INV-1"}, **CARD_ONLY}
    )
    assert pi.status == "requires_payment_method"
    assert pi.client_secret.startswith(f"{pi.id}_secret_")
    assert pi.metadata["invoice"] == "INV-1"

    confirmed = client.v1.payment_intents.confirm(
        pi.id, params={"payment_method": "pm_card_visa", "expand": ["latest_charge.balance_transaction"]}
    )
    assert confirmed.status == "succeeded"
    assert confirmed.amount_received == 12300
    charge = confirmed.latest_charge
    assert charge.id.startswith("ch_") and charge.paid and charge.status == "succeeded"
    assert charge.payment_method_details.card.last4 == "4242"
    txn = charge.balance_transaction
    assert (txn.type, txn.reporting_category, txn.amount) == ("charge", "charge", 12300)
    assert txn.fee == 443  # 12,300 × 3.6 % = 442.8 → 443
    assert txn.net == 12300 - 443
    assert txn.fee_details[0].type == "stripe_fee" and txn.fee_details[0].amount == 443
    assert txn.source == charge.id


def test_payment_method_at_creation_waits_for_confirmation(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(
        params={"amount": 500, "currency": "jpy", "payment_method": "pm_card_jcb", **CARD_ONLY}
    )
    assert pi.status == "requires_confirmation"
    assert pi.payment_method.startswith("pm_") and pi.payment_method != "pm_card_jcb"
    assert client.v1.payment_intents.confirm(pi.id).status == "succeeded"


@pytest.mark.parametrize(
    ("pm", "code", "decline_code", "message"),
    [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline", "Your card was declined."),
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds",
         "Your card has insufficient funds."),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card", "Your card has expired."),
    ],
)
def test_declines_raise_card_error_and_leave_last_payment_error(
    client: stripe.StripeClient, pm: str, code: str, decline_code: str, message: str
) -> None:
    with pytest.raises(stripe.CardError) as raised:
        pay(client, 3000, pm)
    error = raised.value
    assert error.http_status == 402
    assert error.code == code
    assert error.error.decline_code == decline_code
    assert error.user_message == message
    assert error.request_id.startswith("req_")
    pi_in_error = error.error.payment_intent
    assert pi_in_error.status == "requires_payment_method"

    pi = client.v1.payment_intents.retrieve(pi_in_error.id, params={"expand": ["latest_charge"]})
    assert pi.status == "requires_payment_method"
    assert pi.payment_method is None
    assert pi.last_payment_error.code == code
    assert pi.last_payment_error.decline_code == decline_code
    assert pi.latest_charge.status == "failed"
    assert pi.latest_charge.failure_code == code
    assert pi.latest_charge.balance_transaction is None

    # a declined intent can be retried with another card
    assert client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"}).status == "succeeded"


def test_update_merges_metadata_and_empty_value_removes_a_key(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(
        params={"amount": 800, "currency": "jpy", "metadata": {"a": "1", "b": "2"}, **CARD_ONLY}
    )
    updated = client.v1.payment_intents.update(pi.id, params={"metadata": {"b": "", "c": "3"}, "description": "住民票"})
    assert updated.metadata.to_dict() == {"a": "1", "c": "3"}
    assert updated.description == "住民票"


def test_cancel_and_refusals_around_final_states(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(params={"amount": 800, "currency": "jpy", **CARD_ONLY})
    canceled = client.v1.payment_intents.cancel(pi.id, params={"cancellation_reason": "duplicate"})
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "duplicate")
    assert canceled.canceled_at is not None
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert raised.value.code == "payment_intent_unexpected_state"

    paid = pay(client, 900)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.cancel(paid.id)
    assert raised.value.code == "payment_intent_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.confirm(paid.id)
    assert raised.value.code == "payment_intent_unexpected_state"
    assert "already succeeded" in raised.value.user_message


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (0, "parameter_invalid_integer"),
        (-5, "parameter_invalid_integer"),
        (49, "amount_too_small"),
        (100_000_000, "amount_too_large"),
        ("12.5", "parameter_invalid_integer"),
    ],
)
def test_amount_bounds_are_refused_like_stripe(client: stripe.StripeClient, amount: object, code: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.create(params={"amount": amount, "currency": "jpy", **CARD_ONLY})  # type: ignore[typeddict-item]
    assert raised.value.http_status == 400
    assert (raised.value.code, raised.value.param) == (code, "amount")


def test_amount_limits_themselves_are_accepted(client: stripe.StripeClient) -> None:
    assert pay(client, 50).status == "succeeded"
    assert pay(client, 99_999_999).amount == 99_999_999


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"amount": 100, "currency": "usd"}, "parameter_invalid", "currency"),
        ({"amount": 100}, "parameter_missing", "currency"),
        ({"currency": "jpy"}, "parameter_missing", "amount"),
        ({"amount": 100, "currency": "jpy", "amout": 1}, "parameter_unknown", "amout"),
        ({"amount": 100, "currency": "jpy", "payment_method_types": ["konbini"]}, "parameter_invalid",
         "payment_method_types[0]"),
        ({"amount": 100, "currency": "jpy", "metadata": {"k" * 41: "v"}}, "parameter_invalid", f"metadata[{'k' * 41}]"),
        ({"amount": 100, "currency": "jpy", "metadata": {"k": "v" * 501}}, "parameter_invalid", "metadata[k]"),
        ({"amount": 100, "currency": "jpy", "payment_method_types": ["card"],
          "automatic_payment_methods": {"enabled": True}}, "parameters_exclusive", "payment_method_types"),
        ({"amount": 100, "currency": "jpy", "payment_method": "pm_nope"}, "resource_missing", "payment_method"),
    ],
)
def test_bad_create_params_are_refused_with_stable_codes(
    client: stripe.StripeClient, params: dict[str, object], code: str, param: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.create(params=params)  # type: ignore[arg-type]
    assert (raised.value.code, raised.value.param) == (code, param)


def test_automatic_payment_methods_need_a_return_url_like_stripe(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(params={"amount": 1000, "currency": "jpy"})
    assert pi.automatic_payment_methods.enabled is True
    assert pi.payment_method_types == ["card", "paypay"]
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert (raised.value.code, raised.value.param) == ("parameter_missing", "return_url")
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"
    done = client.v1.payment_intents.confirm(
        pi.id, params={"payment_method": "pm_card_visa", "return_url": "https://nofu.example/done"}
    )
    assert done.status == "succeeded"

    never = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "jpy", "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"}}
    )
    assert never.payment_method_types == ["card"]
    assert client.v1.payment_intents.confirm(never.id, params={"payment_method": "pm_card_visa"}).status == "succeeded"


def test_paypay_is_refused_on_a_card_only_intent(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(params={"amount": 1000, "currency": "jpy", **CARD_ONLY})
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_paypay", "return_url": "https://x.example"})
    assert raised.value.code == "payment_intent_incompatible_payment_method"


def test_missing_and_unknown_objects(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.retrieve("pi_doesnotexist")
    assert (raised.value.http_status, raised.value.code) == (404, "resource_missing")


def test_authentication(server: SandboxServer) -> None:
    bad = stripe.StripeClient("sk_test_wrong", base_addresses={"api": server.url})
    with pytest.raises(stripe.AuthenticationError) as raised:
        bad.v1.payment_intents.list()
    assert raised.value.http_status == 401
    assert "sk_test_" in raised.value.user_message

    response = httpx.get(f"{server.url}/v1/payment_intents")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.headers["request-id"].startswith("req_")

    basic = httpx.get(f"{server.url}/v1/payment_intents", auth=(API_KEY, ""))
    assert basic.status_code == 200
    garbled = httpx.get(f"{server.url}/v1/payment_intents", headers={"Authorization": "Basic %%%"})
    assert garbled.status_code == 401


def test_every_response_has_a_request_id(server: SandboxServer) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    for response in (
        httpx.get(f"{server.url}/v1/payment_intents", headers=headers),
        httpx.get(f"{server.url}/v1/nothing_here", headers=headers),
        httpx.post(f"{server.url}/v1/payment_intents", headers=headers, data={"amount": "x"}),
    ):
        assert response.headers["request-id"].startswith("req_")
    assert httpx.get(f"{server.url}/v1/nothing_here", headers=headers).status_code == 404
