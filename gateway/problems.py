"""Every error leaves nofu as RFC 9457 problem details with a stable ``code``.

Domain packages raise their own errors carrying a ``code`` (e.g. ``ledger.unbalanced``,
``invoice.not_found``); they know nothing of HTTP. This module is the one place that maps them
to statuses. Unexpected exceptions become a 500 with a reference id and no stack trace; the
trace goes to the log under the same id.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException, ValidationException
from litestar.exceptions.http_exceptions import NotFoundException, MethodNotAllowedException

log = logging.getLogger("nofu.problems")

MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise from a handler to answer with a specific problem."""

    def __init__(
        self, status: int, code: str, title: str, detail: str = "", headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail or title)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.headers = headers or {}
        self.extra = extra


def _status_table() -> list[tuple[type[Exception], int]]:
    """Domain error classes → HTTP status, most specific first. Anything else with a ``code`` is
    a request the server understood but refuses: 400."""
    import ledger.errors as le
    from invoices import errors as ie
    from invoices.tokens import TokenError
    from gateway.payments import errors as pe
    from webhooks import errors as we

    return [
        (pe.PaymentNotFound, 404),
        (pe.ReceiptNotFound, 404),
        (pe.UnknownProviderPayment, 404),
        (pe.PaymentConflict, 409),
        (pe.RefundableMismatch, 412),
        (pe.ProviderMismatch, 502),
        (pe.ProviderNotConfigured, 503),
        (le.EntryNotFound, 404),
        (le.IdempotencyConflict, 409),
        (le.AlreadyReversed, 409),
        (le.AccountConflict, 409),
        (le.ClosedPeriod, 409),
        (ie.InvoiceNotFound, 404),
        (ie.InvoiceConflict, 409),
        (ie.ImportTooLarge, 413),
        (we.PayloadTooLarge, 413),
        (we.UnsupportedMediaType, 415),
        (we.NotConfigured, 503),
        (we.EventNotFound, 404),
        (we.ReplayRefused, 409),
        (we.BackfillFailed, 502),
        (TokenError, 400),
    ]


_STATUS_TABLE: list[tuple[type[Exception], int]] | None = None


def status_for(exc: Exception) -> int:
    global _STATUS_TABLE
    if _STATUS_TABLE is None:
        _STATUS_TABLE = _status_table()
    explicit = getattr(exc, "http_status", None)
    if isinstance(explicit, int):
        return explicit
    for cls, status in _STATUS_TABLE:
        if isinstance(exc, cls):
            return status
    return 400


_RESERVED = frozenset({"type", "title", "status", "code", "detail", "instance"})


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str = "",
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    **fields: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"type": f"/problems/{code}", "title": title, "status": status, "code": code}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    for key, value in {**(extra or {}), **fields}.items():
        if value is not None:
            # A domain error's detail may use a name the problem object reserves (e.g. status).
            body[f"{key}_value" if key in _RESERVED else key] = value
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _domain_error(request: Request, exc: Exception) -> Response:
    code: str = getattr(exc, "code")
    message = getattr(exc, "message", None) or str(exc)
    detail = getattr(exc, "detail", None)
    extra = {k: v for k, v in detail.items()} if isinstance(detail, dict) else {}
    errors = getattr(exc, "errors", None)
    if isinstance(errors, tuple | list) and errors and dataclasses.is_dataclass(errors[0]):
        extra["errors"] = [dataclasses.asdict(e) for e in errors]
    return problem_response(status_for(exc), code, message, instance=request.url.path, extra=extra)


def _problem(request: Request, exc: Problem) -> Response:
    return problem_response(
        exc.status, exc.code, exc.title, exc.detail, instance=request.url.path, headers=exc.headers, **exc.extra
    )


def _validation(request: Request, exc: ValidationException) -> Response:
    return problem_response(
        400,
        "request.invalid",
        "The request is not valid",
        str(exc.detail),
        instance=request.url.path,
        errors=exc.extra if isinstance(exc.extra, list) else None,
    )


_HTTP_CODES = {
    401: "auth.unauthorized",
    403: "auth.forbidden",
    404: "http.not_found",
    405: "http.method_not_allowed",
    413: "request.too_large",
    415: "request.unsupported_media_type",
    429: "request.rate_limited",
}


def _http(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    return problem_response(
        status,
        _HTTP_CODES.get(status, f"http.{status}"),
        exc.detail or "Error",
        instance=request.url.path,
        headers=exc.headers,
    )


def _unexpected(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _http(request, exc)
    if hasattr(exc, "code") and isinstance(getattr(exc, "code"), str) and "." in getattr(exc, "code"):
        return _domain_error(request, exc)
    reference = uuid.uuid4().hex[:12]
    log.exception("unexpected error %s on %s %s", reference, request.method, request.url.path)
    return problem_response(
        500,
        "internal_error",
        "Internal error",
        "Something went wrong on our side. Nothing was charged twice; please try again later.",
        reference=reference,
    )


EXCEPTION_HANDLERS = {
    Problem: _problem,
    ValidationException: _validation,
    NotAuthorizedException: _http,
    PermissionDeniedException: _http,
    NotFoundException: _http,
    MethodNotAllowedException: _http,
    HTTPException: _http,
    Exception: _unexpected,
}
