"""The provider adapter without a network: error mapping, resident messages, reading Stripe
objects, and the settings that choose real Stripe or the sandbox."""

from __future__ import annotations

import json
from typing import Any

import pytest
import stripe

from gateway.providers import MESSAGES, ProviderError, ProviderPayment, ProviderRefund, StripeProvider, build_provider
from gateway.providers.errors import DECLINES, RETRYABLE, decline_reason, message_for
from gateway.providers.stripe import translate
from gateway.settings import Settings, SettingsError

INTENT = {
    "id": "pi_123",
    "object": "payment_intent",
    "status": "requires_payment_method",
    "amount": 12300,
    "currency": "jpy",
    "amount_received": 0,
    "client_secret": "pi_123_secret_abc",
    "metadata": {"attempt_id": "pa_" + "a" * 24, "notice_number": "2026-00000001-1"},
    "created": 1_780_000_000,
    "latest_charge": {"id": "ch_1", "status": "succeeded", "created": 1_780_000_050},
    "last_payment_error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
                           "message": "Your card has insufficient funds."},  # fmt: skip
    "next_action": {"type": "redirect_to_url", "redirect_to_url": {"url": "http://sb/paypay/pi_123"}},
    "livemode": False,
}


def _error(cls: type[stripe.StripeError], status: int, error: dict[str, Any], *args: Any) -> stripe.StripeError:
    body = {"error": error}
    headers = {"request-id": "req_1"}
    if cls in (stripe.CardError, stripe.InvalidRequestError):
        return cls(error.get("message"), error.get("param"), error.get("code"), json.dumps(body), status, body, headers)
    return cls(error.get("message"), json.dumps(body), status, body, headers)


@pytest.mark.parametrize(
    ("error", "reason", "retryable", "http"),
    [
        (_error(stripe.CardError, 402, {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
                                        "message": "Your card was declined."}), "card_declined", False, 402),  # fmt: skip
        (_error(stripe.CardError, 402, {"type": "card_error", "code": "card_declined",
                                        "decline_code": "insufficient_funds"}), "insufficient_funds", False, 402),  # fmt: skip
        (_error(stripe.CardError, 402, {"type": "card_error", "code": "expired_card"}), "expired_card", False, 402),
        (_error(stripe.CardError, 402, {"type": "card_error", "code": "incorrect_cvc"}), "card_details", False, 402),
        (_error(stripe.CardError, 402, {"type": "card_error", "code": "processing_error"}), "processing_error", True, 402),
        (stripe.APIConnectionError("timed out", should_retry=True), "network", True, 503),
        (_error(stripe.RateLimitError, 429, {"type": "invalid_request_error", "code": "rate_limit"}), "rate_limited", True, 503),
        (_error(stripe.APIError, 500, {"type": "api_error"}), "unavailable", True, 503),
        (_error(stripe.AuthenticationError, 401, {"type": "invalid_request_error"}), "misconfigured", False, 503),
        (_error(stripe.IdempotencyError, 400, {"type": "idempotency_error"}), "idempotency_conflict", False, 502),
        (_error(stripe.InvalidRequestError, 400, {"type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                                                  "payment_intent": INTENT}), "unexpected_state", False, 409),  # fmt: skip
        (_error(stripe.InvalidRequestError, 400, {"type": "invalid_request_error", "code": "amount_too_small"}),
         "invalid_request", False, 502),  # fmt: skip
    ],
)
def test_sdk_errors_map_to_one_small_error_type(error: stripe.StripeError, reason: str, retryable: bool, http: int) -> None:
    mapped = translate(error)
    assert isinstance(mapped, ProviderError)
    assert (mapped.reason, mapped.code, mapped.retryable, mapped.http_status) == (reason, f"provider.{reason}", retryable, http)
    assert mapped.detail["message_ja"] == message_for(reason, "ja")
    assert mapped.detail["message_en"] == message_for(reason, "en")


def test_a_decline_carries_the_intent_it_happened_to() -> None:
    error = _error(stripe.CardError, 402, {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
                                           "payment_intent": INTENT})  # fmt: skip
    mapped = translate(error)
    assert mapped.declined and mapped.payment is not None and mapped.payment.id == "pi_123"
    assert mapped.decline_code == "insufficient_funds" and mapped.request_id == "req_1"


def test_every_reason_has_a_japanese_and_an_english_message() -> None:
    for reason, message in MESSAGES.items():
        assert message.ja and message.en and message.ja != message.en, reason
        assert any("\u3040" <= ch <= "\u30ff" for ch in message.ja), reason  # kana: written in Japanese
    assert DECLINES | RETRYABLE <= set(MESSAGES)
    assert message_for("something_new", "en") == MESSAGES["processing_error"].en


@pytest.mark.parametrize(
    ("code", "decline_code", "expected"),
    [
        ("card_declined", "generic_decline", "card_declined"),
        ("card_declined", "insufficient_funds", "insufficient_funds"),
        ("card_declined", "do_not_honor", "card_declined"),
        ("expired_card", None, "expired_card"),
        ("incorrect_number", None, "card_details"),
        ("payment_intent_authentication_failure", None, "authentication_failed"),
        (None, None, "processing_error"),
    ],
)
def test_decline_reasons(code: str | None, decline_code: str | None, expected: str) -> None:
    assert decline_reason(code, decline_code) == expected


def test_a_payment_intent_is_read_from_a_dict_or_an_sdk_object() -> None:
    from_dict = ProviderPayment.from_stripe(INTENT)
    from_sdk = ProviderPayment.from_stripe(stripe.StripeObject.construct_from(INTENT, "sk_test_x"))
    assert from_dict == from_sdk
    assert (from_dict.amount, from_dict.currency, from_dict.latest_charge) == (12300, "jpy", "ch_1")
    assert from_dict.succeeded_at is not None and int(from_dict.succeeded_at.timestamp()) == 1_780_000_050
    assert (from_dict.error_code, from_dict.decline_code) == ("card_declined", "insufficient_funds")
    assert from_dict.redirect_url == "http://sb/paypay/pi_123"
    assert from_dict.metadata["attempt_id"] == "pa_" + "a" * 24
    assert "secret" not in repr(from_dict)
    # A webhook's unexpanded latest_charge gives no success time.
    assert ProviderPayment.from_stripe({**INTENT, "latest_charge": "ch_1"}).succeeded_at is None
    for bad in ({"object": "charge", "id": "ch_1"}, {"object": "payment_intent"}, "pi_123"):
        with pytest.raises((ValueError, TypeError)):
            ProviderPayment.from_stripe(bad)
    refund = ProviderRefund.from_stripe({"id": "re_1", "status": "succeeded", "amount": 100, "payment_intent": "pi_123"})
    assert (refund.id, refund.status, refund.amount, refund.payment_id) == ("re_1", "succeeded", 100, "pi_123")


def test_settings_choose_real_stripe_the_sandbox_or_nothing() -> None:
    assert build_provider(Settings()) is None
    sandbox = build_provider(Settings(stripe_api_base="http://127.0.0.1:12111"))
    assert sandbox is not None and (sandbox.name, sandbox.test_mode, sandbox.api_base) == ("sandbox", True, "http://127.0.0.1:12111")
    real = build_provider(Settings(stripe_secret_key="sk_live_abc", stripe_publishable_key="pk_live_abc"))
    assert real is not None and (real.name, real.test_mode, real.publishable_key) == ("stripe", False, "pk_live_abc")
    assert StripeProvider("sk_test_abc").test_mode
    with pytest.raises(ValueError):
        StripeProvider("")
    with pytest.raises(ValueError):
        StripeProvider("sk_test_abc").create_payment(amount=0, description="x", metadata={}, idempotency_key="k")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"NOFU_STRIPE_SECRET_KEY": "pk_test_wrong"}, "NOFU_STRIPE_SECRET_KEY"),
        ({"NOFU_STRIPE_PUBLISHABLE_KEY": "sk_test_wrong"}, "NOFU_STRIPE_PUBLISHABLE_KEY"),
        ({"NOFU_STRIPE_WEBHOOK_SECRET": "whsec_a,secret_b"}, "NOFU_STRIPE_WEBHOOK_SECRET"),
        ({"NOFU_STRIPE_API_BASE": "localhost:12111"}, "NOFU_STRIPE_API_BASE"),
        ({"NOFU_STRIPE_API_BASE": "http://127.0.0.1:1", "NOFU_STRIPE_SECRET_KEY": "sk_live_x"}, "NOFU_STRIPE_API_BASE"),
        ({"NOFU_STRIPE_API_BASE": "http://127.0.0.1:1", "NOFU_ENVIRONMENT": "production",
          "NOFU_QR_SIGNING_KEYS": "x", "NOFU_PII_KEYS": "y"}, "NOFU_STRIPE_API_BASE"),  # fmt: skip
        ({"NOFU_PAYMENT_ATTEMPT_MINUTES": "0"}, "NOFU_PAYMENT_ATTEMPT_MINUTES"),
        ({"NOFU_PAYMENT_SWEEP_SECONDS": "-1"}, "NOFU_PAYMENT_SWEEP_SECONDS"),
    ],
)
def test_bad_stripe_settings_stop_the_start_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    assert str(refused.value).startswith(variable)


def test_webhook_secrets_rotate_as_a_list() -> None:
    settings = Settings.from_env({"NOFU_STRIPE_WEBHOOK_SECRET": "whsec_new, whsec_old"})
    assert settings.stripe_webhook_secrets == ("whsec_new", "whsec_old")
