"""List endpoints: cursors, created filters, and the SDK's auto-pagination."""

from __future__ import annotations

import httpx
import pytest
import stripe

from gateway.sandbox import SandboxServer
from tests.sandbox.support import API_KEY, CARD_ONLY, client, server, shared_server  # noqa: F401

START = 1_780_000_000


def _create_many(server: SandboxServer, client: stripe.StripeClient, count: int) -> list[str]:
    """`count` intents, one per minute of sandbox time, some sharing a second; oldest first."""
    server.control.set_clock(START)
    ids = []
    for index in range(count):
        if index % 3 == 0:
            server.control.advance_clock(60)
        pi = client.v1.payment_intents.create(params={"amount": 100 + index, "currency": "jpy", **CARD_ONLY})
        ids.append(pi.id)
    return ids


def test_auto_paging_visits_everything_once_newest_first(server: SandboxServer, client: stripe.StripeClient) -> None:
    ids = _create_many(server, client, 25)
    first_page = client.v1.payment_intents.list(params={"limit": 10})
    assert len(first_page.data) == 10 and first_page.has_more
    assert first_page.url == "/v1/payment_intents"
    walked = [pi.id for pi in first_page.auto_paging_iter()]
    assert walked == ids[::-1]


def test_ending_before_walks_backwards(server: SandboxServer, client: stripe.StripeClient) -> None:
    ids = _create_many(server, client, 12)
    page = client.v1.payment_intents.list(params={"limit": 5, "ending_before": ids[2]})
    assert [pi.id for pi in page.data] == ids[7:2:-1]
    assert page.has_more
    walked = [pi.id for pi in page.auto_paging_iter()]
    assert walked == ids[3:]  # oldest to newest, as the SDK yields when ending_before is used


def test_created_filters(server: SandboxServer, client: stripe.StripeClient) -> None:
    ids = _create_many(server, client, 9)  # minutes 1,1,1,2,2,2,3,3,3
    minute_two = START + 120
    assert [p.id for p in client.v1.payment_intents.list(params={"created": minute_two}).data] == ids[5:2:-1]
    assert len(client.v1.payment_intents.list(params={"created": {"gte": minute_two}}).data) == 6
    assert len(client.v1.payment_intents.list(params={"created": {"gt": minute_two}}).data) == 3
    assert len(client.v1.payment_intents.list(params={"created": {"lt": minute_two}}).data) == 3
    assert len(client.v1.payment_intents.list(params={"created": {"lte": minute_two, "gt": START + 60}}).data) == 3


@pytest.mark.parametrize(
    ("query", "code", "param"),
    [
        ({"limit": "0"}, "parameter_invalid_integer", "limit"),
        ({"limit": "101"}, "parameter_invalid_integer", "limit"),
        ({"limit": "ten"}, "parameter_invalid_integer", "limit"),
        ({"starting_after": "pi_nope"}, "resource_missing", "starting_after"),
        ({"starting_after": "a", "ending_before": "b"}, "parameters_exclusive", "ending_before"),
        ({"created[after]": "1"}, "parameter_unknown", "created[after]"),
        ({"colour": "red"}, "parameter_unknown", "colour"),
    ],
)
def test_bad_list_queries(server: SandboxServer, query: dict[str, str], code: str, param: str) -> None:
    response = httpx.get(
        f"{server.url}/v1/payment_intents", params=query, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param)


def test_expand_on_list_items(client: stripe.StripeClient) -> None:
    client.v1.payment_intents.create(
        params={"amount": 700, "currency": "jpy", "confirm": True, "payment_method": "pm_card_visa", **CARD_ONLY}
    )
    page = client.v1.payment_intents.list(params={"expand": ["data.latest_charge.balance_transaction"]})
    assert page.data[0].latest_charge.balance_transaction.net == 700 - 25  # 25.2 → 25
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.list(params={"expand": ["data.nothing"]})
    assert raised.value.param == "expand"


def test_charges_list_filters_by_payment_intent(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(
        params={"amount": 700, "currency": "jpy", "confirm": True, "payment_method": "pm_card_visa", **CARD_ONLY}
    )
    client.v1.payment_intents.create(
        params={"amount": 800, "currency": "jpy", "confirm": True, "payment_method": "pm_card_visa", **CARD_ONLY}
    )
    charges = client.v1.charges.list(params={"payment_intent": pi.id}).data
    assert [c.id for c in charges] == [pi.latest_charge]
    assert len(client.v1.charges.list().data) == 2
