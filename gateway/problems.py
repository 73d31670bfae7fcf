"""Every error leaves nofu as RFC 9457 problem details with a stable ``code``.

Domain packages raise their own errors carrying a ``code`` (e.g. ``ledger.unbalanced``,
``invoice.not_found``); they know nothing of HTTP. This module is the one place that maps them
to statuses. Unexpected exceptions become a 500 with a reference id and no stack trace; the
trace goes to the log under the same id.
"""

from __future__ import annotations

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


# Codes whose meaning is "the state does not allow it" or "not there", by suffix; the rest of a
# domain error is a request the server understood but cannot accept (422).
_STATUS_BY_SUFFIX = {
    "idempotency_conflict": 409,
    "already_reversed": 409,
    "conflict": 409,
    "account_conflict": 409,
    "stale": 412,
    "precondition_failed": 412,
    "not_found": 404,
    "entry_not_found": 404,
    "rate_limited": 429,
    "forbidden": 403,
    "unauthorized": 401,
}


def status_for(code: str) -> int:
    suffix = code.rsplit(".", 1)[-1]
    for key, status in _STATUS_BY_SUFFIX.items():
        if suffix == key or suffix.endswith("_" + key):
            return status
    return 422


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str = "",
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"type": f"/problems/{code}", "title": title, "status": status, "code": code}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _domain_error(request: Request, exc: Exception) -> Response:
    code: str = getattr(exc, "code")
    message = getattr(exc, "message", None) or str(exc)
    detail = getattr(exc, "detail", None)
    extra = {k: v for k, v in detail.items()} if isinstance(detail, dict) else {}
    return problem_response(status_for(code), code, message, instance=request.url.path, **extra)


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
