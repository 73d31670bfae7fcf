"""Thread safety: concurrent requests never pay one PaymentIntent twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import stripe

from gateway.sandbox import SandboxServer
from tests.sandbox.support import CARD_ONLY, client, server, shared_server  # noqa: F401


def test_concurrent_confirms_charge_exactly_once(server: SandboxServer, client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(params={"amount": 5000, "currency": "jpy", **CARD_ONLY})

    def confirm(attempt: int) -> str:
        own = server.stripe_client(max_network_retries=0)  # one client (connection pool) per thread
        try:
            own.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
            return "succeeded"
        except stripe.InvalidRequestError as error:
            return str(error.code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(confirm, range(8)))
    assert outcomes.count("succeeded") == 1
    assert set(outcomes) == {"succeeded", "payment_intent_unexpected_state"}
    assert len(client.v1.charges.list().data) == 1


def test_concurrent_creates_with_one_key_make_one_intent(server: SandboxServer, client: stripe.StripeClient) -> None:
    def create(attempt: int) -> str:
        own = server.stripe_client(max_network_retries=0)
        pi = own.v1.payment_intents.create(
            params={"amount": 5000, "currency": "jpy", **CARD_ONLY}, options={"idempotency_key": "same-slip"}
        )
        return pi.id

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(create, range(8)))
    assert len(ids) == 1
    assert len(client.v1.payment_intents.list().data) == 1
