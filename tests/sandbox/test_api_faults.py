"""Injected API failures: lost responses and outages, and how idempotency saves the day."""

from __future__ import annotations

import pytest
import stripe

from gateway.sandbox import SandboxControlError, SandboxServer
from tests.sandbox.support import client, pay, server, shared_server  # noqa: F401


def test_a_lost_response_is_recovered_by_the_sdk_retry(server: SandboxServer, client: stripe.StripeClient) -> None:
    server.control.fail_api_requests(1, when="after", match="POST /v1/payment_intents")
    pi = pay(client, 1000)  # the SDK retries the 500 with its own Idempotency-Key
    assert pi.status == "succeeded"
    assert pi.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(client.v1.payment_intents.list().data) == 1
    assert len(client.v1.charges.list().data) == 1


def test_without_retries_the_payment_happened_although_the_client_saw_an_error(server: SandboxServer) -> None:
    no_retry = server.stripe_client(max_network_retries=0)
    server.control.fail_api_requests(1, when="after", status=502)
    with pytest.raises(stripe.APIError) as raised:
        pay(no_retry, 1000)
    assert raised.value.http_status == 502
    [charge] = no_retry.v1.charges.list().data
    assert charge.paid


def test_an_outage_changes_nothing(server: SandboxServer) -> None:
    no_retry = server.stripe_client(max_network_retries=0)
    server.control.fail_api_requests(2, when="before", match="POST")
    with pytest.raises(stripe.APIError):
        pay(no_retry, 1000)
    assert no_retry.v1.payment_intents.list().data == []  # GETs are not matched
    with pytest.raises(stripe.APIError):
        pay(no_retry, 1000)
    assert pay(no_retry, 1000).status == "succeeded"  # both faults used up


def test_bad_fault_definitions_are_refused(server: SandboxServer) -> None:
    with pytest.raises(SandboxControlError) as raised:
        server.control.fail_api_requests(1, status=404)
    assert raised.value.code == "api_fault_invalid"
    with pytest.raises(SandboxControlError) as raised:
        server.control.fail_api_requests(1, when="during")
    assert raised.value.code == "api_fault_invalid"
