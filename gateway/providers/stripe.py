"""The Stripe adapter: the official SDK, the same code for real Stripe and for the sandbox (only
the base address and the keys differ).

Invariants:
- Creating a PaymentIntent and creating a Refund always send OUR idempotency key (one per
  attempt, one per refund), so a retried request — by the SDK (``max_network_retries=2``) or by
  us after a lost response — returns the first result and can never charge or refund twice.
- Amounts are integer yen with ``currency="jpy"`` (zero-decimal); the notice number and our
  attempt id travel in ``metadata`` so every object at the provider names what it pays.
- Every SDK error leaves this module as a :class:`ProviderError` with a stable reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import stripe

from gateway.providers.errors import ProviderError, decline_reason
from gateway.providers.model import ProviderPayment, ProviderRefund

log = logging.getLogger("nofu.providers")

SANDBOX_DEFAULT_KEY = "sk_test_nofu_sandbox"
TIMEOUT_SECONDS = 30  # connect + read; a resident is waiting
# latest_charge tells when the money was taken (the payment date that counts for 延滞金).
_EXPAND = ["latest_charge"]


def _payment_in_error(error: stripe.StripeError) -> ProviderPayment | None:
    body: Any = error.json_body if isinstance(error.json_body, dict) else {}
    inner: Any = body.get("error") if isinstance(body.get("error"), dict) else {}
    intent = inner.get("payment_intent")
    if isinstance(intent, dict):
        try:
            return ProviderPayment.from_stripe(intent)
        except ValueError:
            return None
    return None


def translate(error: stripe.StripeError) -> ProviderError:
    """The ProviderError for an SDK error (see ``gateway.providers.errors`` for the table)."""
    code = getattr(error, "code", None)
    inner = error.error
    decline_code = getattr(inner, "decline_code", None) if inner is not None else None
    common: dict[str, Any] = {
        "payment": _payment_in_error(error),
        "provider_code": code,
        "decline_code": decline_code,
        "request_id": error.request_id,
        "provider_status": error.http_status,
    }
    message = error.user_message or str(error)
    if isinstance(error, stripe.CardError):
        return ProviderError(decline_reason(code, decline_code, "card_error"), message, **common)
    if isinstance(error, stripe.APIConnectionError):
        return ProviderError("network", message, **common)
    if isinstance(error, stripe.RateLimitError):
        return ProviderError("rate_limited", message, **common)
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return ProviderError("misconfigured", message, **common)
    if isinstance(error, stripe.IdempotencyError):
        return ProviderError("idempotency_conflict", message, **common)
    if isinstance(error, stripe.InvalidRequestError):
        if code == "payment_intent_unexpected_state":
            return ProviderError("unexpected_state", message, **common)
        if code == "payment_intent_authentication_failure":
            return ProviderError("authentication_failed", message, **common)
        return ProviderError("invalid_request", message, **common)
    if error.http_status is not None and error.http_status >= 500 or isinstance(error, stripe.APIError):
        return ProviderError("unavailable", message, **common)
    return ProviderError("invalid_request", message, **common)


class StripeProvider:
    """``PaymentProvider`` over ``stripe.StripeClient``.

    ``api_base`` set means the sandbox (``NOFU_STRIPE_API_BASE``); empty means real Stripe.
    """

    def __init__(
        self,
        secret_key: str,
        *,
        publishable_key: str | None = None,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout: float = TIMEOUT_SECONDS,
        client: stripe.StripeClient | None = None,
    ) -> None:
        if not secret_key:
            raise ValueError("a Stripe secret key is required")
        self.name = "sandbox" if api_base else "stripe"
        self.test_mode = bool(api_base) or secret_key.startswith(("sk_test_", "rk_test_"))
        self.publishable_key = publishable_key or None
        self.api_base = api_base or None
        self.client = client or stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    def _call(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except stripe.StripeError as error:
            translated = translate(error)
            log.info(
                "provider refused %s: %s (%s)", what, translated.code, translated.provider_code,
                extra={"provider_request_id": translated.request_id},
            )
            raise translated from error

    def create_payment(
        self, *, amount: int, description: str, metadata: Mapping[str, str], idempotency_key: str
    ) -> ProviderPayment:
        """A PaymentIntent for ``amount`` yen, automatic payment methods (card, wallets, PayPay
        where the account has it); the same key always returns the same intent."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise ValueError("amount must be a positive whole number of yen")
        intent = self._call(
            "create payment",
            self.client.v1.payment_intents.create,
            params={
                "amount": amount,
                "currency": "jpy",
                "description": description[:1000],
                "metadata": dict(metadata),
                "automatic_payment_methods": {"enabled": True},
            },
            options={"idempotency_key": idempotency_key},
        )
        return ProviderPayment.from_stripe(intent)

    def retrieve_payment(self, payment_id: str) -> ProviderPayment:
        intent = self._call(
            "retrieve payment", self.client.v1.payment_intents.retrieve, payment_id, params={"expand": _EXPAND}
        )
        return ProviderPayment.from_stripe(intent)

    def confirm_payment(self, payment_id: str, *, payment_method: str, return_url: str) -> ProviderPayment:
        """Confirm with a payment method id (the sandbox's and Stripe's test methods:
        ``pm_card_visa`` …, ``pm_paypay``); a decline raises ProviderError carrying the intent."""
        intent = self._call(
            "confirm payment",
            self.client.v1.payment_intents.confirm,
            payment_id,
            params={"payment_method": payment_method, "return_url": return_url, "expand": _EXPAND},
        )
        return ProviderPayment.from_stripe(intent)

    def cancel_payment(self, payment_id: str, *, reason: str = "abandoned") -> ProviderPayment:
        """Cancel so the intent can never take money; an intent that already succeeded (or is
        processing) raises ``provider.unexpected_state``."""
        intent = self._call(
            "cancel payment",
            self.client.v1.payment_intents.cancel,
            payment_id,
            params={"cancellation_reason": reason},
        )
        return ProviderPayment.from_stripe(intent)

    def refund(
        self, payment_id: str, *, amount: int, idempotency_key: str, metadata: Mapping[str, str]
    ) -> ProviderRefund:
        refund = self._call(
            "refund",
            self.client.v1.refunds.create,
            params={"payment_intent": payment_id, "amount": amount, "metadata": dict(metadata)},
            options={"idempotency_key": idempotency_key},
        )
        return ProviderRefund.from_stripe(refund)

    def retrieve_refund(self, refund_id: str) -> ProviderRefund:
        return ProviderRefund.from_stripe(self._call("retrieve refund", self.client.v1.refunds.retrieve, refund_id))
