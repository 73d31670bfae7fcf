"""What nofu knows of a provider's objects: immutable values read from Stripe-shaped data, and
the interface a payment provider offers (the Stripe adapter implements it for Stripe and for the
sandbox alike; tests may use another implementation)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Protocol

# PaymentIntent statuses (Stripe): what each means to nofu is decided in gateway.payments.
PI_STATUSES = (
    "requires_payment_method",
    "requires_confirmation",
    "requires_action",
    "processing",
    "requires_capture",
    "canceled",
    "succeeded",
)


def _plain(obj: Any) -> dict[str, Any]:
    """A plain dict from a StripeObject (not a dict since stripe-python 15) or a parsed JSON dict."""
    if isinstance(obj, Mapping):
        return dict(obj)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    raise TypeError(f"not a Stripe object: {type(obj).__name__}")


def _stamp(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return datetime.fromtimestamp(value, timezone.utc)


def _hash(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class ProviderPayment:
    """A PaymentIntent as the provider reported it.

    Attributes:
        id: ``pi_…``.
        status: the PaymentIntent status (see ``PI_STATUSES``).
        amount, currency: what the intent charges (integer yen, ``jpy``).
        amount_received: what it has collected.
        client_secret: lets the browser confirm it (Stripe.js); never logged.
        metadata: what nofu put there (``notice_number``, ``attempt_id``).
        created: when the intent was created.
        succeeded_at: when the charge succeeded (the latest charge's creation), when known.
        latest_charge: ``ch_…`` id, if any.
        error_code, decline_code, error_message, error_type: ``last_payment_error``, if any.
        redirect_url: where to send the browser for a ``redirect_to_url`` next action.
        cancellation_reason: set on a canceled intent.
        livemode: False for test keys and the sandbox.
    """

    id: str
    status: str
    amount: int
    currency: str
    amount_received: int = 0
    client_secret: str | None = field(default=None, repr=False)
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    created: datetime | None = None
    succeeded_at: datetime | None = None
    latest_charge: str | None = None
    error_code: str | None = None
    decline_code: str | None = None
    error_message: str | None = None
    error_type: str | None = None
    redirect_url: str | None = None
    cancellation_reason: str | None = None
    livemode: bool = False

    @classmethod
    def from_stripe(cls, obj: Any) -> ProviderPayment:
        """From a PaymentIntent: a ``StripeObject`` (SDK) or a dict (a webhook's ``data.object``)."""
        data = _plain(obj)
        if data.get("object", "payment_intent") != "payment_intent" or not _text(data.get("id")):
            raise ValueError("not a PaymentIntent")
        charge = data.get("latest_charge")
        charge_id, succeeded_at = charge, None
        if isinstance(charge, Mapping):  # expanded: it says when the money was taken
            charge_id = charge.get("id")
            succeeded_at = _stamp(charge.get("created")) if charge.get("status") == "succeeded" else None
        error = _hash(data.get("last_payment_error"))
        redirect = _hash(_hash(data.get("next_action")).get("redirect_to_url"))
        metadata = _hash(data.get("metadata"))
        amount = data.get("amount")
        received = data.get("amount_received")
        return cls(
            id=data["id"],
            status=str(data.get("status")),
            amount=amount if isinstance(amount, int) and not isinstance(amount, bool) else -1,
            currency=str(data.get("currency") or "").lower(),
            amount_received=received if isinstance(received, int) and not isinstance(received, bool) else 0,
            client_secret=_text(data.get("client_secret")),
            metadata=MappingProxyType({str(k): str(v) for k, v in metadata.items()}),
            created=_stamp(data.get("created")),
            succeeded_at=succeeded_at,
            latest_charge=_text(charge_id),
            error_code=_text(error.get("code")),
            decline_code=_text(error.get("decline_code")),
            error_message=_text(error.get("message")),
            error_type=_text(error.get("type")),
            redirect_url=_text(redirect.get("url")),
            cancellation_reason=_text(data.get("cancellation_reason")),
            livemode=bool(data.get("livemode")),
        )


@dataclass(frozen=True)
class ProviderRefund:
    """A Refund as the provider reported it (``status``: pending, succeeded, failed, canceled,
    requires_action)."""

    id: str
    status: str
    amount: int
    payment_id: str | None
    failure_reason: str | None = None

    @classmethod
    def from_stripe(cls, obj: Any) -> ProviderRefund:
        data = _plain(obj)
        if not _text(data.get("id")):
            raise ValueError("not a Refund")
        return cls(
            id=data["id"],
            status=str(data.get("status")),
            amount=int(data.get("amount") or 0),
            payment_id=_text(data.get("payment_intent")),
            failure_reason=_text(data.get("failure_reason")),
        )


class PaymentProvider(Protocol):
    """What the payment service needs from a provider. Every call may raise
    ``gateway.providers.ProviderError``; ``create_payment`` and ``refund`` are idempotent per key."""

    name: str  # "stripe" or "sandbox" (stored on each attempt)
    test_mode: bool  # test keys or the sandbox: test payment methods are allowed
    publishable_key: str | None

    def create_payment(
        self, *, amount: int, description: str, metadata: Mapping[str, str], idempotency_key: str
    ) -> ProviderPayment: ...

    def retrieve_payment(self, payment_id: str) -> ProviderPayment: ...

    def confirm_payment(self, payment_id: str, *, payment_method: str, return_url: str) -> ProviderPayment: ...

    def cancel_payment(self, payment_id: str, *, reason: str = "abandoned") -> ProviderPayment: ...

    def refund(
        self, payment_id: str, *, amount: int, idempotency_key: str, metadata: Mapping[str, str]
    ) -> ProviderRefund: ...

    def retrieve_refund(self, refund_id: str) -> ProviderRefund: ...
