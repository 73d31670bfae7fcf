"""Stripe's error envelope and the statuses the SDK maps to its exception classes.

    StripeApiError (status, body {"error": {...}})
    ├── 400 invalid_request_error  → stripe.InvalidRequestError
    ├── 400 idempotency_error      → stripe.IdempotencyError
    ├── 401 invalid_request_error  → stripe.AuthenticationError (Stripe uses that type on 401)
    ├── 402 card_error             → stripe.CardError
    └── 404 invalid_request_error, code resource_missing → stripe.InvalidRequestError
"""

from __future__ import annotations

from typing import Any


class StripeApiError(Exception):
    """An error response, rendered exactly as Stripe renders it.

    `saved_by_idempotency` says whether the idempotency layer stores this response: Stripe
    saves results once an endpoint began executing (a decline is a result), not parameter
    validation failures, which the client may simply correct and retry.
    """

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: dict[str, Any] | None = None,
        saved_by_idempotency: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.extra = extra or {}
        self.saved_by_idempotency = saved_by_idempotency

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = doc_url(self.code)
        if self.decline_code is not None:
            error["decline_code"] = self.decline_code
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def doc_url(code: str) -> str:
    return f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"


def invalid_request(
    message: str, *, param: str | None = None, code: str | None = None, status: int = 400
) -> StripeApiError:
    return StripeApiError(status, "invalid_request_error", message, code=code, param=param)


def resource_missing(label: str, object_id: str, *, param: str = "id") -> StripeApiError:
    """404 for a path id, 400 when the missing object was named in a parameter (as Stripe)."""
    status = 404 if param == "id" else 400
    return StripeApiError(
        status,
        "invalid_request_error",
        f"No such {label}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


def unknown_parameter(name: str) -> StripeApiError:
    return invalid_request(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")


def missing_parameter(name: str) -> StripeApiError:
    return invalid_request(f"Missing required param: {name}.", param=name, code="parameter_missing")


def unexpected_state(message: str, *, extra: dict[str, Any] | None = None) -> StripeApiError:
    return StripeApiError(
        400,
        "invalid_request_error",
        message,
        code="payment_intent_unexpected_state",
        extra=extra,
    )
