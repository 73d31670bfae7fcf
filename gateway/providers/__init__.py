"""Payment providers: the adapter nofu charges residents through.

- ``model``: ``ProviderPayment`` / ``ProviderRefund`` (immutable values read from Stripe-shaped
  objects) and the ``PaymentProvider`` interface.
- ``errors``: ``ProviderError`` with stable ``provider.*`` codes and resident-facing messages.
- ``stripe``: ``StripeProvider``, the official SDK against real Stripe or the sandbox.
- ``build_provider(settings)``: the provider the settings describe, or None.
"""

from __future__ import annotations

from gateway.providers.errors import MESSAGES, ProviderError, decline_reason, message_for
from gateway.providers.model import PaymentProvider, ProviderPayment, ProviderRefund
from gateway.providers.stripe import SANDBOX_DEFAULT_KEY, StripeProvider
from gateway.settings import Settings

__all__ = [
    "MESSAGES",
    "SANDBOX_DEFAULT_KEY",
    "PaymentProvider",
    "ProviderError",
    "ProviderPayment",
    "ProviderRefund",
    "StripeProvider",
    "build_provider",
    "decline_reason",
    "message_for",
]


def build_provider(settings: Settings) -> StripeProvider | None:
    """Real Stripe when ``NOFU_STRIPE_SECRET_KEY`` is set without ``NOFU_STRIPE_API_BASE``; the
    sandbox at ``NOFU_STRIPE_API_BASE`` (with the sandbox's default key unless one is given);
    None when neither is set (payments are then refused with ``payment.provider_not_configured``)."""
    base = settings.stripe_api_base
    if not settings.stripe_secret_key and not base:
        return None
    return StripeProvider(
        settings.stripe_secret_key or SANDBOX_DEFAULT_KEY,
        publishable_key=settings.stripe_publishable_key or None,
        api_base=base or None,
    )
