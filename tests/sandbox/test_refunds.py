"""Refunds: full, partial, and the refusals Stripe gives."""

from __future__ import annotations

import pytest
import stripe

from tests.sandbox.support import client, pay, server, shared_server  # noqa: F401


def test_full_refund_by_payment_intent(client: stripe.StripeClient) -> None:
    pi = pay(client, 3000)
    refund = client.v1.refunds.create(
        params={"payment_intent": pi.id, "reason": "duplicate", "expand": ["balance_transaction"]}
    )
    assert refund.id.startswith("re_")
    assert (refund.amount, refund.status, refund.reason) == (3000, "succeeded", "duplicate")
    txn = refund.balance_transaction
    assert (txn.type, txn.reporting_category, txn.amount, txn.fee, txn.net) == ("refund", "refund", -3000, 0, -3000)
    assert txn.source == refund.id

    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (3000, True)
    assert [r.id for r in charge.refunds.data] == [refund.id]

    event = client.v1.events.list(params={"type": "charge.refunded"}).data[0]
    assert event.data.object.amount_refunded == 3000
    assert event.data.previous_attributes.amount_refunded == 0
    assert event.data.previous_attributes.refunded is False
    assert client.v1.events.list(params={"type": "refund.created"}).data[0].data.object.id == refund.id


def test_partial_refunds_add_up_and_over_refund_is_refused(client: stripe.StripeClient) -> None:
    pi = pay(client, 10000)
    first = client.v1.refunds.create(params={"charge": pi.latest_charge, "amount": 4000})
    second = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 5000})
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (9000, False)

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1001})
    assert (raised.value.code, raised.value.param) == ("amount_too_large", "amount")
    assert "¥1,000" in raised.value.user_message

    rest = client.v1.refunds.create(params={"payment_intent": pi.id})
    assert rest.amount == 1000
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1})
    assert raised.value.code == "charge_already_refunded"

    listed = client.v1.refunds.list(params={"payment_intent": pi.id}).data
    assert [r.id for r in listed] == [rest.id, second.id, first.id]
    assert sum(r.amount for r in listed) == 10000


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "parameter_missing"),
        ({"payment_intent": "pi_missing"}, "resource_missing"),
        ({"charge": "ch_missing"}, "resource_missing"),
        ({"amount": 0}, "parameter_invalid_integer"),
        ({"reason": "because"}, "parameter_invalid"),
    ],
)
def test_bad_refund_requests(client: stripe.StripeClient, params: dict[str, object], code: str) -> None:
    pi = pay(client, 1000)
    if params and "payment_intent" not in params and "charge" not in params:
        params = {"payment_intent": pi.id, **params}
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create(params=params)  # type: ignore[arg-type]
    assert raised.value.code == code


def test_unpaid_intents_and_failed_charges_cannot_be_refunded(client: stripe.StripeClient) -> None:
    open_pi = client.v1.payment_intents.create(params={"amount": 1000, "currency": "jpy", "payment_method_types": ["card"]})
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create(params={"payment_intent": open_pi.id})
    assert raised.value.code == "payment_intent_unexpected_state"

    with pytest.raises(stripe.CardError) as declined:
        pay(client, 1000, "pm_card_chargeDeclined")
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create(params={"charge": declined.value.error.charge})
    assert raised.value.code == "charge_not_refundable"


def test_refund_metadata_update_emits_refund_updated(client: stripe.StripeClient) -> None:
    refund = client.v1.refunds.create(params={"payment_intent": pay(client, 1000).id, "metadata": {"case": "A"}})
    updated = client.v1.refunds.update(refund.id, params={"metadata": {"case": "B"}})
    assert updated.metadata.to_dict() == {"case": "B"}
    event = client.v1.events.list(params={"type": "refund.updated"}).data[0]
    assert event.data.previous_attributes.metadata.to_dict() == {"case": "A"}
    assert client.v1.refunds.retrieve(refund.id).metadata["case"] == "B"
