"""Settings of one sandbox instance (the Stripe account it pretends to be)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# The API version stripe-python 16.1 pins; events are rendered "at" this version.
STRIPE_API_VERSION = "2026-10-28.endive"


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Everything a sandbox needs to know up front; runtime knobs live behind /sandbox/*.

    Attributes:
        api_key: the secret key clients must send (`Authorization: Bearer sk_test_…`).
        webhook_url: where events are POSTed; None = record events, deliver nothing.
        webhook_secret: the `whsec_…` secret used to sign deliveries.
        fee_rate: card processing fee as a fraction of the amount (Stripe Japan: 3.6 %).
        fee_rounding: Decimal rounding applied to `amount × fee_rate` to get whole yen.
        additional_api_keys: further keys accepted (e.g. a restricted or rolled key);
            idempotency keys are scoped per API key.
        minimum_amount: smallest chargeable amount; Stripe's minimum for JPY is ¥50.
        available_after_business_days: a charge's funds become available this many JST
            business days after the charge.
        payout_arrival_business_days: a payout's `arrival_date` is this many business days
            after it is created.
        holidays: extra non-business days (Japanese public holidays are not built in).
        webhook_retry_delays: seconds to wait before each retry of a failed delivery;
            its length is the number of retries. Stripe retries for 3 days; tests scale it down.
        webhook_timeout: seconds before a delivery attempt counts as a connection failure.
        enabled_events: event types sent to the endpoint; "*" means all, "charge.*" a prefix.
        public_base_url: base of links handed to browsers (the PayPay page); None = the
            Host header of the request that produced the link.
        api_version: reported in events and the `Stripe-Version` header.
        idempotency_ttl: seconds (on the sandbox clock) a saved idempotent response is kept.
    """

    api_key: str = "sk_test_nofu_sandbox"
    webhook_url: str | None = None
    webhook_secret: str = "whsec_nofu_sandbox_secret"
    fee_rate: Decimal = Decimal("0.036")
    fee_rounding: str = ROUND_HALF_UP
    additional_api_keys: frozenset[str] = frozenset()
    minimum_amount: int = 50
    available_after_business_days: int = 1
    payout_arrival_business_days: int = 1
    holidays: frozenset[date] = frozenset()
    webhook_retry_delays: tuple[float, ...] = (60.0, 300.0, 1800.0, 3600.0, 10800.0)
    webhook_timeout: float = 10.0
    enabled_events: tuple[str, ...] = ("*",)
    public_base_url: str | None = None
    api_version: str = STRIPE_API_VERSION
    idempotency_ttl: int = 24 * 60 * 60

    def __post_init__(self) -> None:
        if not self.api_key.startswith("sk_test_"):
            raise ValueError("the sandbox only accepts test-mode keys (sk_test_…)")
        if not self.webhook_secret.startswith("whsec_"):
            raise ValueError("webhook secrets start with whsec_")
        if not (Decimal(0) <= self.fee_rate < Decimal(1)):
            raise ValueError("fee_rate must be a fraction in [0, 1)")
        if self.minimum_amount < 1:
            raise ValueError("minimum_amount must be at least 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SandboxConfig:
        """Settings from NOFU_SANDBOX_* variables (for `nofu sandbox`); unset ones keep defaults.

        NOFU_SANDBOX_API_KEY, NOFU_SANDBOX_WEBHOOK_URL, NOFU_SANDBOX_WEBHOOK_SECRET,
        NOFU_SANDBOX_FEE_RATE (e.g. "0.036"), NOFU_SANDBOX_PUBLIC_URL.
        """
        values: dict[str, object] = {}
        names = {
            "api_key": "NOFU_SANDBOX_API_KEY",
            "webhook_url": "NOFU_SANDBOX_WEBHOOK_URL",
            "webhook_secret": "NOFU_SANDBOX_WEBHOOK_SECRET",
            "public_base_url": "NOFU_SANDBOX_PUBLIC_URL",
        }
        for field_name, variable in names.items():
            if environ.get(variable):
                values[field_name] = environ[variable]
        if environ.get("NOFU_SANDBOX_FEE_RATE"):
            try:
                values["fee_rate"] = Decimal(environ["NOFU_SANDBOX_FEE_RATE"])
            except InvalidOperation:
                raise ValueError("NOFU_SANDBOX_FEE_RATE must be a decimal fraction such as 0.036") from None
        return cls(**values)  # type: ignore[arg-type]

    def accepts_key(self, key: str) -> bool:
        """True if `key` is one of this account's secret keys."""
        return key == self.api_key or key in self.additional_api_keys
