"""The webhook signature is Stripe's: the SDK's verifier accepts it."""

from __future__ import annotations

import json
import time

import pytest
import stripe

from gateway.sandbox import signature_header

SECRET = "whsec_test_signing"


def _payload() -> bytes:
    return json.dumps({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
                       "data": {"object": {"id": "pi_1", "object": "payment_intent"}}}, indent=2).encode()


def test_the_sdk_verifies_our_signature() -> None:
    payload = _payload()
    header = signature_header(SECRET, int(time.time()), payload)
    event = stripe.Webhook.construct_event(payload, header, SECRET)
    assert (event.id, event.type) == ("evt_1", "payment_intent.succeeded")


def test_stale_tampered_or_foreign_signatures_fail() -> None:
    payload = _payload()
    stale = signature_header(SECRET, int(time.time()) - 301, payload)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, stale, SECRET)
    fresh = signature_header(SECRET, int(time.time()), payload)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload + b" ", fresh, SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, fresh, "whsec_other")


def test_header_format() -> None:
    header = signature_header(SECRET, 1_700_000_000, b"{}")
    timestamp, signature = header.split(",")
    assert timestamp == "t=1700000000"
    assert signature.startswith("v1=") and len(signature) == 3 + 64
