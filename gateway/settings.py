"""Settings from the environment. Every variable, its default and its meaning is listed in
``SETTINGS`` below and in README.md; an invalid value stops the program at start with one line
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
        if self.environment == "production":
            for name in ("qr_signing_keys", "pii_keys"):
                if not getattr(self, name):
                    raise SettingsError(
                        f"NOFU_{name.upper()}: required in production (generate one with `nofu keys generate`)"
                    )
