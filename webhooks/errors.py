"""Errors of the webhook package; each carries a stable ``code`` (``gateway/problems.py`` maps
them to HTTP statuses). Messages never echo the payload.

    WebhookError                     webhook.error
    ├── IntakeRefused                (nothing is stored)
    │   ├── SignatureMissing         webhook.signature_missing           400
    │   ├── SignatureInvalid         webhook.signature_invalid           400 (no secret matches,
    │   │                                                                     or an unreadable header)
    │   ├── TimestampOutsideTolerance webhook.timestamp_outside_tolerance 400
    │   ├── PayloadTooLarge          webhook.payload_too_large           413
    │   ├── UnsupportedMediaType     webhook.unsupported_media_type      415
    │   └── NotConfigured            webhook.not_configured              503 (no signing secret set)
    ├── EventNotFound                webhook.event_not_found             404
    ├── ReplayRefused                webhook.replay_refused              409 (pending, processing or poison)
    ├── InvalidQuery                 webhook.invalid_state | webhook.invalid_cursor |
    │                                webhook.invalid_limit | webhook.invalid_since   400
    └── BackfillFailed               webhook.backfill_failed             502 (the provider's list failed)
"""

from __future__ import annotations

from typing import Any, ClassVar


class WebhookError(Exception):
    code: ClassVar[str] = "webhook.error"

    def __init__(self, message: str, /, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = {k: v for k, v in detail.items() if v is not None}


class IntakeRefused(WebhookError):
    """The delivery is refused and nothing was stored."""

    code = "webhook.refused"


class SignatureMissing(IntakeRefused):
    code = "webhook.signature_missing"


class SignatureInvalid(IntakeRefused):
    code = "webhook.signature_invalid"


class TimestampOutsideTolerance(IntakeRefused):
    code = "webhook.timestamp_outside_tolerance"


class PayloadTooLarge(IntakeRefused):
    code = "webhook.payload_too_large"


class UnsupportedMediaType(IntakeRefused):
    code = "webhook.unsupported_media_type"


class NotConfigured(IntakeRefused):
    code = "webhook.not_configured"


class EventNotFound(WebhookError):
    code = "webhook.event_not_found"


class ReplayRefused(WebhookError):
    code = "webhook.replay_refused"


class InvalidQuery(WebhookError):
    code = "webhook.invalid_query"

    def __init__(self, code: str, message: str, /, **detail: Any) -> None:
        super().__init__(message, **detail)
        self.code = code  # type: ignore[misc]


class BackfillFailed(WebhookError):
    code = "webhook.backfill_failed"
