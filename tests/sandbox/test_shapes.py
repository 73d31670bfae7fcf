"""Every object the sandbox returns has Stripe's shape, checked against Stripe's own
examples (/work/shared/stripe/fixtures3.json) and the stripe SDK's field annotations.

Rules (see shape_problems):
- top level: exactly the fixture's keys;
- nested hashes: at least the fixture's keys (Stripe abbreviates polymorphic sub-objects);
  hashes keyed by `type` (payment_method_details, destination_details, payment_method) carry
  the key named by their own type instead of the fixture's;
- values: the fixture's JSON type, or null where the SDK annotates the field Optional.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from stripe import StripeObject

from gateway.sandbox import SandboxServer
from tests.sandbox.support import API_KEY, MONDAY_10_JST, client, pay, server, shared_server  # noqa: F401

FIXTURES: dict[str, Any] = json.loads(Path("/work/shared/stripe/fixtures3.json").read_text())["resources"]
SDK_CLASSES: dict[str, type[StripeObject]] = {
    "payment_intent": stripe.PaymentIntent,
    "charge": stripe.Charge,
    "balance_transaction": stripe.BalanceTransaction,
    "refund": stripe.Refund,
    "payout": stripe.Payout,
    "event": stripe.Event,
    "balance": stripe.Balance,
    "payment_method": stripe.PaymentMethod,
}
FREE_FORM = {"metadata", "previous_attributes"}


def _annotations(cls: type | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for klass in reversed((cls or object).__mro__):
        merged.update(getattr(klass, "__annotations__", {}))
    return merged


def _nullable(annotation: Any) -> bool | None:
    """True/False from the SDK's annotation; None when the SDK does not annotate the field."""
    if annotation is None:
        return None
    text = str(annotation)
    return "Optional" in text or "NoneType" in text


def _nested_class(annotation: Any) -> type | None:
    candidates = [annotation, *typing.get_args(annotation)]
    for arg in list(candidates):
        candidates.extend(typing.get_args(arg))  # List[FeeDetail], Optional[List[...]]
    for arg in candidates:
        if isinstance(arg, type) and issubclass(arg, StripeObject):
            return arg
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _expected_keys(ours: dict[str, Any], fixture: dict[str, Any]) -> set[str]:
    keys = set(fixture)
    fixture_type = fixture.get("type")
    if isinstance(fixture_type, str) and isinstance(fixture.get(fixture_type), dict) and "type" in ours:
        keys.discard(fixture_type)
        keys.add(ours["type"])
    return keys


def shape_problems(ours: Any, fixture: Any, cls: type | None, path: str, top: bool = True) -> list[str]:
    problems: list[str] = []
    if isinstance(fixture, dict) and isinstance(ours, dict):
        expected = _expected_keys(ours, fixture)
        missing = expected - set(ours)
        extra = set(ours) - expected
        if missing:
            problems.append(f"{path}: missing keys {sorted(missing)}")
        if top and extra:
            problems.append(f"{path}: keys Stripe does not have {sorted(extra)}")
        hints = _annotations(cls)
        for key in sorted(set(fixture) & set(ours)):
            if key in FREE_FORM or (key == "object" and path.endswith(".data")):
                continue  # an event's data.object is checked against its own type's fixture
            annotation = hints.get(key)
            problems += _value_problems(ours[key], fixture[key], annotation, f"{path}.{key}")
        return problems
    return _value_problems(ours, fixture, None, path)


def _value_problems(ours: Any, fixture: Any, annotation: Any, path: str) -> list[str]:
    if fixture is None:
        return []
    if ours is None:
        return [] if _nullable(annotation) else [f"{path}: null, but Stripe's field is not nullable"]
    if _json_type(ours) != _json_type(fixture):
        return [f"{path}: {_json_type(ours)} where Stripe has {_json_type(fixture)}"]
    nested = _nested_class(annotation)
    if isinstance(fixture, dict):
        return shape_problems(ours, fixture, nested, path, top=False)
    if isinstance(fixture, list) and fixture and ours:
        problems: list[str] = []
        for index, item in enumerate(ours):
            problems += _value_problems(item, fixture[0], nested, f"{path}[{index}]")
        return problems
    return []


def check_object(obj: dict[str, Any], path: str = "") -> list[str]:
    """Shape problems of a Stripe object of any supported type, events' data.object too."""
    kind = obj["object"]
    label = path or f"{kind}({obj.get('id', '')})"
    if kind == "list":
        problems = [] if set(obj) == {"object", "data", "has_more", "url"} else [f"{label}: list keys {sorted(obj)}"]
        for item in obj["data"]:
            problems += check_object(item)
        return problems
    problems = shape_problems(obj, FIXTURES[kind], SDK_CLASSES[kind], label)
    if kind == "event":
        problems += check_object(obj["data"]["object"], f"{label}.data.object")
    if kind == "charge":
        problems += check_object(obj["refunds"], f"{label}.refunds")
    return problems


def test_the_checker_catches_wrong_shapes() -> None:
    good = json.loads(json.dumps(FIXTURES["refund"]))
    assert check_object(good) == []
    missing = {k: v for k, v in good.items() if k != "charge"}
    assert "missing keys ['charge']" in check_object(missing)[0]
    assert "Stripe does not have ['surprise']" in check_object({**good, "surprise": 1})[0]
    assert "str where Stripe has number" in check_object({**good, "amount": "100"})[0]
    assert "not nullable" in check_object({**good, "amount": None})[0]
    assert check_object({**good, "reason": "duplicate"}) == []  # the fixture's null is nullable


def _get(server: SandboxServer, path: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(f"{server.url}{path}", params=params, headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 200, response.text
    return response.json()


def _everything(server: SandboxServer, client: stripe.StripeClient) -> list[dict[str, Any]]:
    """Drive every path that produces objects, then fetch them raw from the wire."""
    server.control.set_clock(MONDAY_10_JST)
    paid = pay(client, 10000)
    client.v1.refunds.create(params={"payment_intent": paid.id, "amount": 1000})
    with pytest.raises(stripe.CardError):
        pay(client, 2000, "pm_card_chargeDeclinedExpiredCard")
    paypay = client.v1.payment_intents.create(
        params={"amount": 3000, "currency": "jpy", "payment_method_types": ["paypay"], "confirm": True,
                "payment_method": "pm_paypay", "return_url": "https://nofu.example/r"}
    )
    awaiting = client.v1.payment_intents.create(
        params={"amount": 3000, "currency": "jpy", "confirm": True, "payment_method": "pm_paypay",
                "return_url": "https://nofu.example/r"}
    )
    httpx.post(paypay.next_action.redirect_to_url.url + "/approve")
    client.v1.payment_intents.cancel(client.v1.payment_intents.create(params={"amount": 900, "currency": "jpy"}).id)
    server.control.advance_clock(24 * 3600)
    [payout] = server.control.run_payouts(through="paid")
    server.control.set_payout_status(payout["id"], "failed")

    objects: list[dict[str, Any]] = []
    for path in ("/v1/payment_intents", "/v1/charges", "/v1/refunds", "/v1/balance_transactions", "/v1/payouts", "/v1/events"):
        listed = _get(server, path, limit=100)
        objects.append(listed)
        objects += [_get(server, f"{path}/{item['id']}") for item in listed["data"]]
    objects.append(_get(server, "/v1/balance"))
    pi = _get(server, f"/v1/payment_intents/{paid.id}")
    objects.append(_get(server, f"/v1/payment_methods/{pi['payment_method']}"))
    objects.append(_get(server, f"/v1/payment_methods/{_get(server, f'/v1/payment_intents/{awaiting.id}')['payment_method']}"))
    return objects


def test_every_returned_object_has_stripes_shape(server: SandboxServer, client: stripe.StripeClient) -> None:
    objects = _everything(server, client)
    kinds = {o["object"] for o in objects} | {
        e["data"]["object"]["object"] for o in objects if o["object"] == "event" for e in [o]
    }
    assert kinds >= {"list", "payment_intent", "charge", "refund", "balance_transaction", "payout", "event",
                     "balance", "payment_method"}
    event_types = {o["type"] for o in objects if o["object"] == "event"}
    assert event_types >= {
        "payment_intent.created", "payment_intent.succeeded", "payment_intent.payment_failed",
        "payment_intent.requires_action", "payment_intent.processing", "payment_intent.canceled",
        "charge.succeeded", "charge.updated", "charge.failed", "charge.refunded", "refund.created",
        "payout.created", "payout.updated", "payout.paid", "payout.failed",
    }
    statuses = {(o["object"], o.get("status")) for o in objects}
    assert {("payment_intent", s) for s in ("succeeded", "requires_payment_method", "requires_action", "canceled")} <= statuses
    assert {("payout", "failed"), ("charge", "failed"), ("charge", "succeeded")} <= statuses
    problems = sorted({problem for obj in objects for problem in check_object(obj)})
    assert problems == []


def test_card_error_body_has_stripes_error_shape(server: SandboxServer) -> None:
    response = httpx.post(
        f"{server.url}/v1/payment_intents",
        headers={"Authorization": f"Bearer {API_KEY}"},
        data={"amount": "2000", "currency": "jpy", "confirm": "true", "payment_method": "pm_card_chargeDeclined",
              "payment_method_types[0]": "card"},
    )
    assert response.status_code == 402
    error = response.json()["error"]
    assert {"type", "code", "decline_code", "message", "doc_url", "charge", "payment_intent", "payment_method"} <= set(error)
    assert error["doc_url"] == "https://stripe.com/docs/error-codes/card-declined"
    assert check_object(error["payment_intent"]) == []
    assert check_object(error["payment_method"]) == []
