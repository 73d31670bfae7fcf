"""Provider failures as one small error type, with what to tell the resident (Japanese first,
English second) and whether trying again is safe.

``ProviderError.code`` is stable (``provider.<reason>``):

=============================== ============================================== ======== =====
code                            when                                           retry    HTTP
=============================== ============================================== ======== =====
provider.card_declined          the issuer declined (generic and most others)  new card 402
provider.insufficient_funds     decline_code insufficient_funds                new card 402
provider.expired_card           code expired_card                              new card 402
provider.card_details           incorrect number / CVC / expiry                new card 402
provider.authentication_failed  3-D Secure or the wallet (PayPay) rejected     new try  402
provider.processing_error       the provider could not process the card        yes      402
provider.network                no answer (timeout, connection), after the     yes      503
                                SDK's own retries with the same idempotency key
provider.rate_limited           429                                            yes      503
provider.unavailable            5xx from the provider after retries            yes      503
provider.unexpected_state       the intent is not in a state for this call     no       409
                                (``payment`` carries the intent when known)
provider.invalid_request        a request the provider refused (our bug)       no       502
provider.idempotency_conflict   our key was reused with other parameters       no       502
provider.misconfigured          authentication / permission failure            no       503
=============================== ============================================== ======== =====

"Retry" means a request with the same idempotency key may be repeated: it cannot create a second
charge. Declines are final for that card; the resident may start again with another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.providers.model import ProviderPayment


@dataclass(frozen=True)
class Message:
    ja: str
    en: str


MESSAGES: dict[str, Message] = {
    "card_declined": Message(
        "カードが承認されませんでした。別のカードか別のお支払い方法をお試しください。",
        "Your card was declined. Please try another card or payment method.",
    ),
    "insufficient_funds": Message(
        "カードの利用可能額が不足しています。別のカードをお試しください。",
        "Your card has insufficient funds. Please try another card.",
    ),
    "expired_card": Message(
        "カードの有効期限が切れています。別のカードをお試しください。",
        "Your card has expired. Please try another card.",
    ),
    "card_details": Message(
        "カード番号・有効期限・セキュリティコードをご確認のうえ、もう一度お試しください。",
        "Please check the card number, expiry date and security code, then try again.",
    ),
    "authentication_failed": Message(
        "本人認証（またはアプリでの承認）が完了しませんでした。もう一度お試しください。",
        "The payment was not approved (authentication or app approval failed). Please try again.",
    ),
    "processing_error": Message(
        "決済の処理中にエラーが発生しました。しばらくしてからもう一度お試しください。",
        "An error occurred while processing the payment. Please try again in a moment.",
    ),
    "network": Message(
        "決済サービスに接続できませんでした。しばらくしてからもう一度お試しください。二重に請求されることはありません。",
        "We could not reach the payment service. Please try again in a moment; you will not be charged twice.",
    ),
    "rate_limited": Message(
        "ただいま混み合っています。しばらくしてからもう一度お試しください。",
        "The payment service is busy. Please try again in a moment.",
    ),
    "unavailable": Message(
        "決済サービスが一時的に利用できません。しばらくしてからもう一度お試しください。",
        "The payment service is temporarily unavailable. Please try again later.",
    ),
    "unexpected_state": Message(
        "このお支払いはすでに処理されています。画面を更新してください。",
        "This payment has already been processed. Please reload the page.",
    ),
    "invalid_request": Message(
        "お支払いを開始できませんでした。お手数ですが窓口にお問い合わせください。",
        "The payment could not be started. Please contact the municipal office.",
    ),
    "idempotency_conflict": Message(
        "お支払いを開始できませんでした。お手数ですが窓口にお問い合わせください。",
        "The payment could not be started. Please contact the municipal office.",
    ),
    "misconfigured": Message(
        "現在オンライン決済をご利用いただけません。お手数ですが窓口にお問い合わせください。",
        "Online payment is not available right now. Please contact the municipal office.",
    ),
}

RETRYABLE = frozenset({"processing_error", "network", "rate_limited", "unavailable"})
DECLINES = frozenset({"card_declined", "insufficient_funds", "expired_card", "card_details", "authentication_failed"})
_HTTP = {
    **{reason: 402 for reason in (*DECLINES, "processing_error")},
    "network": 503,
    "rate_limited": 503,
    "unavailable": 503,
    "misconfigured": 503,
    "unexpected_state": 409,
    "invalid_request": 502,
    "idempotency_conflict": 502,
}


def message_for(reason: str, lang: str = "ja") -> str:
    """The resident-facing message for a failure reason (``card_declined`` …); unknown reasons
    read as a generic processing error."""
    message = MESSAGES.get(reason, MESSAGES["processing_error"])
    return message.en if lang == "en" else message.ja


def decline_reason(code: str | None, decline_code: str | None, error_type: str | None = None) -> str:
    """A failure reason from Stripe's ``code`` / ``decline_code`` (``last_payment_error`` or a
    ``CardError``)."""
    if decline_code in ("insufficient_funds",) or code == "insufficient_funds":
        return "insufficient_funds"
    if code == "expired_card" or decline_code == "expired_card":
        return "expired_card"
    if code in ("incorrect_number", "invalid_number", "incorrect_cvc", "invalid_cvc", "invalid_expiry_month",
                "invalid_expiry_year", "incorrect_zip") or decline_code in ("incorrect_cvc", "incorrect_number"):  # fmt: skip
        return "card_details"
    if code == "payment_intent_authentication_failure" or decline_code == "authentication_required":
        return "authentication_failed"
    if code == "processing_error" or decline_code == "processing_error":
        return "processing_error"
    if code == "card_declined" or error_type == "card_error" or decline_code:
        return "card_declined"
    return "processing_error"


class ProviderError(Exception):
    """A provider call failed.

    Attributes:
        reason: ``card_declined``, ``network`` … (``code`` is ``provider.<reason>``).
        retryable: the same request (same idempotency key) may be sent again.
        http_status: what nofu answers its own caller with.
        payment: the PaymentIntent the provider returned with the error (a decline carries it).
        provider_code, decline_code, request_id: from the provider, for staff and logs.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        payment: ProviderPayment | None = None,
        provider_code: str | None = None,
        decline_code: str | None = None,
        request_id: str | None = None,
        provider_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.code = f"provider.{reason}"
        self.message = message
        self.payment = payment
        self.provider_code = provider_code
        self.decline_code = decline_code
        self.request_id = request_id
        self.provider_status = provider_status
        self.retryable = reason in RETRYABLE
        self.http_status = _HTTP.get(reason, 502)
        self.detail: dict[str, Any] = {
            k: v
            for k, v in {
                "reason": reason,
                "retryable": self.retryable,
                "message_ja": message_for(reason, "ja"),
                "message_en": message_for(reason, "en"),
                "provider_code": provider_code,
                "decline_code": decline_code,
                "provider_request_id": request_id,
            }.items()
            if v is not None
        }

    @property
    def declined(self) -> bool:
        return self.reason in DECLINES

    def resident_message(self, lang: str = "ja") -> str:
        return message_for(self.reason, lang)
