"""Stripe's test payment methods and the PayPay-style redirect method.

As on Stripe, confirming with a test id (`pm_card_visa`) clones it into a fresh
PaymentMethod (`pm_…`) whose behaviour the PaymentIntent then follows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.sandbox.errors import invalid_request, resource_missing
from gateway.sandbox.forms import Params
from gateway.sandbox.ids import new_id
from gateway.sandbox.params import get_hash, get_str, reject_unknown
from gateway.sandbox.records import CardDetails, PaymentMethodRecord, TestOutcome

if TYPE_CHECKING:
    from gateway.sandbox.engine import Sandbox

SUPPORTED_TYPES = ("card", "paypay")
REDIRECT_TYPES = frozenset({"paypay"})

_SUCCEED = TestOutcome("succeed")
_REDIRECT = TestOutcome("redirect")


def _card(brand: str, last4: str, fingerprint: str, *, funding: str = "credit", country: str = "US") -> CardDetails:
    return CardDetails(brand, last4, 12, 2034, funding, country, fingerprint)


# Test ids documented by Stripe (docs.stripe.com/testing) and what each one does.
TEST_CARDS: dict[str, tuple[CardDetails, TestOutcome]] = {
    "pm_card_visa": (_card("visa", "4242", "Xt5EWLLDS7FJjR1c"), _SUCCEED),
    "pm_card_mastercard": (_card("mastercard", "4444", "Mc5aPqPCyL1ZwR3d"), _SUCCEED),
    "pm_card_jcb": (_card("jcb", "0505", "Jc8nVbD2kQ0mTy7e", country="JP"), _SUCCEED),
    "pm_card_chargeDeclined": (
        _card("visa", "0002", "Dc2hRt6mWq9LsK4f"),
        TestOutcome("decline", "card_declined", "generic_decline", "Your card was declined."),
    ),
    "pm_card_chargeDeclinedInsufficientFunds": (
        _card("visa", "9995", "If7pXz3nBv5HcQ1g"),
        TestOutcome(
            "decline", "card_declined", "insufficient_funds", "Your card has insufficient funds."
        ),
    ),
    "pm_card_chargeDeclinedExpiredCard": (
        _card("visa", "0069", "Ex4kLm8rTs2DfG6h"),
        TestOutcome("decline", "expired_card", "expired_card", "Your card has expired.", "exp_month"),
    ),
}
TEST_REDIRECTS: dict[str, str] = {"pm_paypay": "paypay"}


def resolve_payment_method(sb: Sandbox, pm_id: str, *, param: str = "payment_method") -> PaymentMethodRecord:
    """A stored PaymentMethod, or a fresh clone of a test id."""
    now = sb.clock.now()
    if pm_id in TEST_CARDS:
        card, outcome = TEST_CARDS[pm_id]
        return sb.store.add(
            PaymentMethodRecord(new_id("pm"), now, sb.store.next_seq(), "card", outcome, card)
        )
    if pm_id in TEST_REDIRECTS:
        return sb.store.add(
            PaymentMethodRecord(new_id("pm"), now, sb.store.next_seq(), TEST_REDIRECTS[pm_id], _REDIRECT)
        )
    stored = sb.store.get(pm_id, PaymentMethodRecord)
    if stored is None:
        raise resource_missing("PaymentMethod", pm_id, param=param)
    return stored


def payment_method_from_data(sb: Sandbox, params: Params) -> PaymentMethodRecord:
    """`payment_method_data[type]=paypay`: a PaymentMethod created inline.

    Raw card numbers are refused, as Stripe refuses them unless the account is allowed to
    send PANs; use the `pm_card_*` test ids instead.
    """
    data = get_hash(params, "payment_method_data") or {}
    reject_unknown(data, ("type", "billing_details", "metadata", "paypay"))
    pm_type = get_str(data, "type", required=True)
    if pm_type not in REDIRECT_TYPES:
        raise invalid_request(
            f"payment_method_data[type]={pm_type} is not supported by the sandbox; "
            "use a test PaymentMethod such as pm_card_visa or payment_method_data[type]=paypay.",
            param="payment_method_data[type]",
            code="parameter_invalid",
        )
    metadata = get_hash(data, "metadata") or {}
    return sb.store.add(
        PaymentMethodRecord(
            new_id("pm"), sb.clock.now(), sb.store.next_seq(), pm_type, _REDIRECT,
            metadata={str(k): str(v) for k, v in metadata.items()},
        )
    )
