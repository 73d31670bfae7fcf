"""A Stripe-compatible sandbox: a local HTTP server speaking the subset of Stripe's API nofu
uses, so the same provider adapter (the official `stripe` SDK) runs against it and against
real Stripe.

    with SandboxServer(SandboxConfig(webhook_url=...)) as server:
        client = server.stripe_client()            # stripe.StripeClient(base_addresses=...)
        pi = client.v1.payment_intents.create(params={...})
        server.control.run_payouts(through="paid")

State is in memory (thread-safe, one lock): restarting the sandbox loses every object.
Covered: PaymentIntents (create/retrieve/update/confirm/cancel/list), test cards and a
PayPay-style redirect, Charges, Refunds, BalanceTransactions, Balance, automatic Payouts,
Events and signed webhook deliveries with retries and injectable faults, a controllable
clock. Control endpoints live under /sandbox/* (see control.py).
"""

from gateway.sandbox.app import SandboxApp, create_sandbox_app
from gateway.sandbox.config import STRIPE_API_VERSION, SandboxConfig
from gateway.sandbox.control_client import SandboxControl, SandboxControlError
from gateway.sandbox.delivery import DeliveryAttempt, DeliveryFaults, DeliveryRule
from gateway.sandbox.engine import Sandbox
from gateway.sandbox.server import SandboxServer, serve
from gateway.sandbox.signing import signature_header

__all__ = [
    "STRIPE_API_VERSION",
    "DeliveryAttempt",
    "DeliveryFaults",
    "DeliveryRule",
    "Sandbox",
    "SandboxApp",
    "SandboxConfig",
    "SandboxControl",
    "SandboxControlError",
    "SandboxServer",
    "create_sandbox_app",
    "serve",
    "signature_header",
]
