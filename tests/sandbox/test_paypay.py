"""The PayPay-style redirect flow, driving the sandbox's approval page with httpx."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import stripe

from gateway.sandbox import SandboxServer
from tests.sandbox.support import client, server, shared_server  # noqa: F401

RETURN_URL = "https://nofu.example/pay/return?slip=42"


def _start(client: stripe.StripeClient, **params: object) -> stripe.PaymentIntent:
    pi = client.v1.payment_intents.create(
        params={"amount": 4500, "currency": "jpy", "payment_method_types": ["paypay"], "description": "粗大ごみ"}
    )
    return client.v1.payment_intents.confirm(pi.id, params={"return_url": RETURN_URL, **params})  # type: ignore[arg-type]


def _redirect_query(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("https://nofu.example/pay/return?")
    return parse_qs(urlsplit(location).query)


def test_approve_redirects_back_and_succeeds(server: SandboxServer, client: stripe.StripeClient) -> None:
    pi = _start(client, payment_method_data={"type": "paypay"})
    assert pi.status == "requires_action"
    assert pi.next_action.type == "redirect_to_url"
    page_url = pi.next_action.redirect_to_url.url
    assert page_url == f"{server.url}/sandbox/paypay/{pi.id}"
    assert pi.next_action.redirect_to_url.return_url == RETURN_URL

    page = httpx.get(page_url)
    assert page.status_code == 200
    assert "承認する / Approve" in page.text and "拒否する / Reject" in page.text
    assert "¥4,500" in page.text

    query = _redirect_query(httpx.post(f"{page_url}/approve", data={"decision": "approve"}))
    assert query == {
        "slip": ["42"],
        "payment_intent": [pi.id],
        "payment_intent_client_secret": [pi.client_secret],
        "redirect_status": ["succeeded"],
    }
    done = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
    assert done.status == "succeeded"
    assert done.next_action is None
    assert done.latest_charge.payment_method_details.type == "paypay"
    assert done.latest_charge.balance_transaction.startswith("txn_")
    types = [e.type for e in client.v1.events.list(params={"limit": 20}).data][::-1]
    assert types == [
        "payment_intent.created",
        "payment_intent.requires_action",
        "payment_intent.processing",
        "charge.succeeded",
        "payment_intent.succeeded",
        "charge.updated",
    ]


def test_reject_returns_to_requires_payment_method(server: SandboxServer, client: stripe.StripeClient) -> None:
    pi = _start(client, payment_method="pm_paypay")
    page_url = pi.next_action.redirect_to_url.url
    query = _redirect_query(httpx.post(f"{page_url}/reject", data={"decision": "reject"}))
    assert query["redirect_status"] == ["failed"]

    failed = client.v1.payment_intents.retrieve(pi.id)
    assert failed.status == "requires_payment_method"
    assert failed.payment_method is None
    assert failed.latest_charge is None
    assert failed.last_payment_error.code == "payment_intent_authentication_failure"
    assert failed.last_payment_error.payment_method.type == "paypay"
    assert client.v1.events.list(params={"type": "payment_intent.payment_failed"}).data[0].data.object.id == pi.id

    # the resident can try again
    again = client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_paypay", "return_url": RETURN_URL})
    assert again.status == "requires_action"


def test_the_page_refuses_a_payment_that_is_not_waiting(server: SandboxServer, client: stripe.StripeClient) -> None:
    pi = _start(client, payment_method="pm_paypay")
    page_url = pi.next_action.redirect_to_url.url
    assert httpx.post(f"{page_url}/approve").status_code == 303
    second = httpx.post(f"{page_url}/reject")
    assert second.status_code == 409
    assert 'data-code="redirect_not_pending"' in second.text
    assert httpx.get(page_url).status_code == 409
    assert httpx.get(f"{server.url}/sandbox/paypay/pi_unknown").status_code == 404
    assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"


def test_paypay_needs_a_return_url(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(params={"amount": 4500, "currency": "jpy", "payment_method_types": ["paypay"]})
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_paypay"})
    assert (raised.value.code, raised.value.param) == ("parameter_missing", "return_url")


def test_raw_card_data_is_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.create(
            params={"amount": 4500, "currency": "jpy", "payment_method_types": ["card"], "confirm": True,
                    "payment_method_data": {"type": "card"}}
        )
    assert (raised.value.code, raised.value.param) == ("parameter_invalid", "payment_method_data[type]")


def test_public_base_url_is_used_for_the_page_link() -> None:
    from tests.sandbox.support import make_config

    with SandboxServer(make_config(public_base_url="https://sandbox.nofu.example")) as running:
        pi = _start(running.stripe_client(), payment_method="pm_paypay")
        assert pi.next_action.redirect_to_url.url == f"https://sandbox.nofu.example/sandbox/paypay/{pi.id}"
