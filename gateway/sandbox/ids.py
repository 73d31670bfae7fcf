"""Stripe-looking identifiers: a type prefix and a random alphanumeric tail."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def random_token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_id(prefix: str) -> str:
    """`pi_3Pg…`-style id; 24 random characters make collisions practically impossible."""
    return f"{prefix}_{random_token(24)}"


def new_request_id() -> str:
    return f"req_{random_token(14)}"


def client_secret_for(payment_intent_id: str) -> str:
    return f"{payment_intent_id}_secret_{random_token(25)}"
