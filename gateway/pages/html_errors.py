"""Errors on resident pages become pages, never JSON and never a stack trace.

The staff API answers RFC 9457 problem details (``gateway.problems``); a resident on a phone
gets a short page in their language with a way back instead. Each page carries a stable code
in ``<meta name="nofu-code">``:

    page.not_found          404  no such page (or an invoice that is not there)
    page.bad_request        400  a malformed request
    page.csrf_failed        403  the form's CSRF token is missing or wrong (page expired)
    page.rate_limited       429  too many requests from this client (Retry-After is set)
    <domain code>           4xx  a payment or invoice error (``payment.not_found`` …), by its
                                 status in ``gateway.problems.status_for``
    page.internal_error     500  anything unexpected; the trace is logged under a reference
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

from litestar import Request
from litestar.exceptions import (
    HTTPException,
    NotFoundException,
    PermissionDeniedException,
    TooManyRequestsException,
    ValidationException,
)

from gateway.pages.render import render
from gateway.payments.errors import PaymentError
from invoices.errors import InvoiceError

log = logging.getLogger("nofu.pages")


def page_not_found(request: Request[Any, Any, Any], _: Exception) -> Any:
    return render(
        request, "message.html", {"title_key": "notfound.title", "text_key": "notfound.text"},
        status=404, code="page.not_found",
    )


def page_bad_request(request: Request[Any, Any, Any], _: Exception) -> Any:
    return render(
        request, "message.html", {"title_key": "bad_request.title", "text_key": "bad_request.text"},
        status=400, code="page.bad_request",
    )


def page_forbidden(request: Request[Any, Any, Any], exc: Exception) -> Any:
    # The only 403 a resident route raises is the CSRF middleware's.
    return render(
        request, "message.html", {"title_key": "csrf.title", "text_key": "csrf.text"},
        status=403, code="page.csrf_failed",
    )


def page_rate_limited(request: Request[Any, Any, Any], exc: Exception) -> Any:
    headers = getattr(exc, "headers", None) or {}
    reset = headers.get("RateLimit-Reset")
    seconds = int(reset) if reset and reset.isdigit() else 3600
    return render(
        request,
        "message.html",
        {
            "title_key": "limited.title",
            "text_key": "limited.text",
            "retry_minutes": max(1, math.ceil(seconds / 60)),
        },
        status=429,
        code="page.rate_limited",
        headers={"Retry-After": str(max(1, seconds))},
    )


def page_http_error(request: Request[Any, Any, Any], exc: Exception) -> Any:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return page_not_found(request, exc)
    if status == 403:
        return page_forbidden(request, exc)
    if status == 429:
        return page_rate_limited(request, exc)
    if 400 <= status < 500:
        return page_bad_request(request, exc)
    return page_internal_error(request, exc)


def page_domain_error(request: Request[Any, Any, Any], exc: Exception) -> Any:
    """A payment or invoice error with a stable ``code``: its page, by status."""
    from gateway.problems import status_for

    status = status_for(exc)
    code = str(getattr(exc, "code", "page.bad_request"))
    if status == 404:
        keys = {"title_key": "notfound.title", "text_key": "notfound.text"}
    elif status < 500:
        keys = {"title_key": "bad_request.title", "text_key": "bad_request.text"}
    else:
        return page_internal_error(request, exc)
    log.info("resident request refused: %s", code)
    return render(request, "message.html", keys, status=status, code=code)


def page_internal_error(request: Request[Any, Any, Any], exc: Exception) -> Any:
    reference = uuid.uuid4().hex[:12]
    log.exception("unexpected error %s on %s %s", reference, request.method, request.url.path, exc_info=exc)
    return render(
        request,
        "message.html",
        {"title_key": "error.title", "text_key": "error.text", "reference": reference},
        status=500,
        code="page.internal_error",
    )


HTML_EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    PaymentError: page_domain_error,
    InvoiceError: page_domain_error,
    NotFoundException: page_not_found,
    ValidationException: page_bad_request,
    PermissionDeniedException: page_forbidden,
    TooManyRequestsException: page_rate_limited,
    HTTPException: page_http_error,
    Exception: page_internal_error,
}
