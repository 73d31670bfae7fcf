"""Settings from the environment: each field ``x`` is read from ``NOFU_X``; the defaults and
meanings are below and in README.md. An invalid value stops the program at start with one line
naming the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from urllib.parse import urlsplit

import sqlalchemy as sa


class SettingsError(Exception):
    """An invalid setting. ``str(error)`` is the single line shown to the operator."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///var/nofu.sqlite3"
    public_base_url: str = "http://127.0.0.1:8000"
    municipality_name: str = "サンプル市"
    # development: missing keys are generated into var/dev-keys.env (with a warning);
    # production: every key must be given.
    environment: str = "development"
    # Ed25519 keys for QR payment tokens, "kid:<b64 seed>,…", first signs (invoices/tokens.py).
    qr_signing_keys: str = ""
    # Retired QR keys kept for verification only, "kid:<b64 public key>,…".
    qr_verify_keys: str = ""
    # AES-256-GCM keys for personal data at rest, "kid:<b64 32 bytes>,…", first encrypts.
    pii_keys: str = ""
    # Where generated development keys are kept.
    dev_keys_file: str = "var/dev-keys.env"
    # Stripe (gateway/providers): the secret key (sk_…/rk_…), the publishable key for Stripe.js,
    # the webhook signing secrets ("whsec_…,whsec_…": several while rotating), and the API base
    # address: empty = real Stripe, else the sandbox's URL (e.g. http://127.0.0.1:12111).
    stripe_secret_key: str = ""
    stripe_publishable_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = ""
    # HMAC keys for receipt verification codes, "kid:<b64 32 bytes>,…", first signs; empty =
    # derived from the PII keys (gateway/payments/receipts.py).
    receipt_keys: str = ""
    # A payment attempt not completed within this many minutes expires and releases the invoice.
    payment_attempt_minutes: str = "30"
    # How often (seconds) the app sweeps expired attempts and pending refunds; 0 = never.
    payment_sweep_seconds: str = "60"
    # Webhooks (docs/webhooks.md): "1" runs the event processor inside the app (default); "0"
    # leaves it to separate `nofu worker` processes. Attempts before an event is dead-lettered.
    webhook_inprocess: str = "1"
    webhook_max_attempts: str = "16"
    # "1": keep rendered invoice pages until their invoice or its payments change
    # (gateway/pages/page_cache.py); "0": read and render every request.
    page_cache: str = "1"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, str] = {}
        for field in fields(cls):
            name = "NOFU_" + field.name.upper()
            if name in env:
                values[field.name] = env[name].strip()
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        try:
            backend = sa.engine.make_url(self.database_url).get_backend_name()
        except Exception:
            raise SettingsError(
                f"NOFU_DATABASE_URL: {self.database_url!r} is not a database URL "
                "(e.g. sqlite:///var/nofu.sqlite3 or postgresql://user@host/db)"
            ) from None
        if backend not in ("sqlite", "postgresql"):
            raise SettingsError(
                f"NOFU_DATABASE_URL: {backend!r} is not supported; use sqlite or postgresql"
            )
        base = urlsplit(self.public_base_url)
        if base.scheme not in ("http", "https") or not base.netloc:
            raise SettingsError(
                f"NOFU_PUBLIC_BASE_URL: {self.public_base_url!r} must be an http(s) URL "
                "such as https://pay.example-city.lg.jp"
            )
        if not self.municipality_name:
            raise SettingsError("NOFU_MUNICIPALITY_NAME: must not be empty")
        if self.environment not in ("development", "production"):
            raise SettingsError(
                f"NOFU_ENVIRONMENT: {self.environment!r} must be development or production"
            )
        if self.page_cache not in ("0", "1"):
            raise SettingsError("NOFU_PAGE_CACHE: must be 1 (cache invoice pages until they change) or 0 (never)")
        self._validate_payments()
        self._validate_webhooks()
        if self.environment == "production":
            for name in ("qr_signing_keys", "pii_keys"):
                if not getattr(self, name):
                    raise SettingsError(
                        f"NOFU_{name.upper()}: required in production (generate one with `nofu keys generate`)"
                    )

    @property
    def stripe_webhook_secrets(self) -> tuple[str, ...]:
        """Every configured webhook signing secret (the first is the current one)."""
        return tuple(part.strip() for part in self.stripe_webhook_secret.split(",") if part.strip())

    @property
    def attempt_minutes(self) -> int:
        return int(self.payment_attempt_minutes)

    @property
    def sweep_seconds(self) -> int:
        return int(self.payment_sweep_seconds)

    @property
    def webhook_in_process(self) -> bool:
        return self.webhook_inprocess == "1"

    @property
    def page_cache_on(self) -> bool:
        return self.page_cache == "1"

    @property
    def webhook_attempts(self) -> int:
        return int(self.webhook_max_attempts)

    def _validate_webhooks(self) -> None:
        if self.webhook_inprocess not in ("0", "1"):
            raise SettingsError("NOFU_WEBHOOK_INPROCESS: must be 1 (process events in the app) or 0 (only in `nofu worker`)")
        value = self.webhook_max_attempts
        if not value.isdigit() or not 1 <= int(value) <= 1000:
            raise SettingsError("NOFU_WEBHOOK_MAX_ATTEMPTS: must be a whole number from 1 to 1000")

    def _validate_payments(self) -> None:
        key = self.stripe_secret_key
        if key and not key.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
            raise SettingsError("NOFU_STRIPE_SECRET_KEY: must be a Stripe secret key (sk_test_… or sk_live_…)")
        if self.stripe_publishable_key and not self.stripe_publishable_key.startswith(("pk_test_", "pk_live_")):
            raise SettingsError("NOFU_STRIPE_PUBLISHABLE_KEY: must be a Stripe publishable key (pk_…)")
        for secret in self.stripe_webhook_secrets:
            if not secret.startswith("whsec_"):
                raise SettingsError("NOFU_STRIPE_WEBHOOK_SECRET: each secret starts with whsec_ (comma-separated)")
        if self.stripe_api_base:
            base = urlsplit(self.stripe_api_base)
            if base.scheme not in ("http", "https") or not base.netloc:
                raise SettingsError(
                    f"NOFU_STRIPE_API_BASE: {self.stripe_api_base!r} must be the sandbox's URL "
                    "(e.g. http://127.0.0.1:12111) or empty for real Stripe"
                )
            if self.environment == "production":
                raise SettingsError("NOFU_STRIPE_API_BASE: the sandbox cannot be used in production")
            if key.startswith(("sk_live_", "rk_live_")):
                raise SettingsError("NOFU_STRIPE_API_BASE: a live key must never be sent to the sandbox")
        for name, low, high in (("payment_attempt_minutes", 1, 24 * 60), ("payment_sweep_seconds", 0, 3600)):
            value = getattr(self, name)
            if not value.isdigit() or not low <= int(value) <= high:
                raise SettingsError(f"NOFU_{name.upper()}: must be a whole number from {low} to {high}")
