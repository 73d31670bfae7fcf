"""Paying from the resident's phone: start (or join) the invoice's one attempt, pay it, see it done.

    POST /p/{token}/pay                               start_or_join → the attempt page   (30/min)
    GET  /p/{token}/attempts/{attempt}                the attempt: how to pay / waiting / failed / done
    POST /p/{token}/attempts/{attempt}/confirm        sandbox: pay with a test method     (30/min)
    POST /p/{token}/attempts/{attempt}/refresh        ask the provider again              (30/min)
    GET  /p/{token}/attempts/{attempt}/return         return_url after a redirect or Stripe.js
    GET  /p/{token}/attempts/{attempt}/receipt        支払完了証明 (printable)

Every route first checks the token (as ``GET /p/{token}`` does) and that the attempt belongs to the
invoice the token names. What the pages show about money is the payment service's state, which
only the provider's confirmation moves (``PaymentService.apply_provider_outcome``): the browser's
return to ``/return`` merely prompts us to ask the provider (``refresh``).

With the sandbox the attempt page offers the sandbox's test methods as plain forms (no script);
with real Stripe keys it mounts Stripe's Payment Element (``/static/resident.js`` + Stripe.js),
so card data goes to Stripe, never here. A redirect method (PayPay) is opened by a link: a form
post may not redirect to another origin under the CSP's ``form-action 'self'``.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, URLEncodedBody
from litestar.response import Redirect, Template

from gateway.pages.i18n import Translator
from gateway.pages.invoice_view import invoice_view
from gateway.pages.limits import PAYMENT_LIMIT
from gateway.pages.payment_status import attempt_of_invoice
from gateway.pages.render import refusal, render, translator
from gateway.pages.token_access import TokenRefused, invoice_for_token
from gateway.payments import (
    MIN_CHARGE,
    Attempt,
    AttemptNotActive,
    AttemptStatus,
    InvalidPaymentRequest,
    InvoiceNotPayable,
    PaymentNotFound,
    ProviderNotConfigured,
    format_code,
)
from gateway.providers import ProviderError
from gateway.services import Services
from invoices.model import Invoice
from ledger.db import read_transaction

log = logging.getLogger("nofu.pages")

# The sandbox's test methods offered as buttons: (form value, message key, provider method).
TEST_METHODS: Final = (
    ("card_success", "attempt.method.card_success", "pm_card_visa"),
    ("card_declined", "attempt.method.card_declined", "pm_card_chargeDeclined"),
    ("insufficient_funds", "attempt.method.insufficient_funds", "pm_card_chargeDeclinedInsufficientFunds"),
    ("expired_card", "attempt.method.expired_card", "pm_card_chargeDeclinedExpiredCard"),
    ("paypay", "attempt.method.paypay", "pm_paypay"),
)
_METHOD_IDS: Final = {value: pm for value, _, pm in TEST_METHODS}


def _invoice(request: Request[Any, Any, Any], services: Services, token: str) -> Invoice | Template:
    with read_transaction(services.engine) as conn:
        try:
            return invoice_for_token(conn, services.keys.qr, token)
        except TokenRefused as refused:
            return refusal(request, refused)


def _attempt(services: Services, invoice: Invoice, attempt_id: str) -> Attempt:
    """The attempt, only if it pays this invoice (else ``PaymentNotFound``, a 404 page)."""
    return attempt_of_invoice(services, invoice, attempt_id)


def _attempt_path(token: str, attempt_id: str, suffix: str = "") -> str:
    return f"/p/{token}/attempts/{attempt_id}{suffix}"


def _return_url(services: Services, token: str, attempt_id: str) -> str:
    return services.settings.public_base_url.rstrip("/") + _attempt_path(token, attempt_id, "/return")


def _provider_failure(request: Request[Any, Any, Any], error: ProviderError, token: str) -> Template:
    t = translator(request)
    log.warning("provider refused a resident request: %s", error.code)
    return render(
        request,
        "problem.html",
        {"title_key": "attempt.provider_error_title", "text": error.resident_message(t.lang), "back_url": f"/p/{token}"},
        status=error.http_status if error.http_status < 500 else 503,
        code=error.code,
    )


def _unavailable(request: Request[Any, Any, Any], code: str, text_key: str, status: int, token: str) -> Template:
    t = translator(request)
    return render(
        request, "problem.html",
        {"title_key": "attempt.provider_error_title", "text": t(text_key), "back_url": f"/p/{token}"},
        status=status, code=code,
    )


def payment_mode(services: Services, attempt: Attempt) -> str:
    """How the attempt page lets the resident pay: ``sandbox`` (test buttons), ``stripe``
    (Payment Element), or ``unavailable``."""
    provider = services.payments.provider
    if provider is None:
        return "unavailable"
    if provider.name == "sandbox":
        return "sandbox"
    if provider.publishable_key and attempt.client_secret:
        return "stripe"
    return "unavailable"


class PaymentHandlers:
    """Route handlers mixed into ``ResidentController`` (one controller, one set of error pages)."""

    @post("/p/{token:str}/pay", middleware=[PAYMENT_LIMIT.middleware], sync_to_thread=True, status_code=303)
    def start_payment(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        token: FromPath[str],
        data: URLEncodedBody[dict[str, str]],
    ) -> Response[Any]:
        found = _invoice(request, services, token)
        if isinstance(found, Template):
            return found
        try:
            attempt = services.payments.start_or_join(found.public_id, generation=found.token_generation)
        except InvoiceNotPayable as refused:
            if refused.code == "payment.amount_too_small":
                return _unavailable(request, refused.code, "attempt.too_small", 409, token)
            # Paid or cancelled meanwhile: the invoice page says which.
            return Redirect(path=f"/p/{token}", status_code=303)
        except ProviderNotConfigured as refused:
            return _unavailable(request, refused.code, "attempt.unavailable", 503, token)
        except ProviderError as error:
            return _provider_failure(request, error, token)
        seen = data.get("amount", "")
        suffix = "?changed=1" if seen.isdigit() and int(seen) != attempt.amount else ""
        return Redirect(path=_attempt_path(token, attempt.public_id) + suffix, status_code=303)

    @get("/p/{token:str}/attempts/{attempt_id:str}", sync_to_thread=True)
    def attempt_page(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        token: FromPath[str],
        attempt_id: FromPath[str],
    ) -> Response[Any]:
        found = _invoice(request, services, token)
        if isinstance(found, Template):
            return found
        attempt = _attempt(services, found, attempt_id)
        ctx = services.invoices
        view = invoice_view(ctx, found, ctx.today())
        context: dict[str, Any] = {"view": view, "token": token, "attempt": attempt}
        if attempt.status is AttemptStatus.SUCCEEDED:
            receipt = services.payments.receipt_for_attempt(attempt.public_id)
            return render(request, "done.html", {**context, "receipt": receipt})
        t: Translator = translator(request)
        mode = payment_mode(services, attempt)
        provider = services.payments.provider
        context.update(
            mode=mode,
            methods=TEST_METHODS,
            amount_changed=request.query_params.get("changed") == "1",
            failure=attempt.failure_text(t.lang),
            publishable_key=provider.publishable_key if provider is not None and mode == "stripe" else None,
            return_url=_return_url(services, token, attempt.public_id),
            min_charge=MIN_CHARGE,
        )
        return render(request, "attempt.html", context)

    @post(
        "/p/{token:str}/attempts/{attempt_id:str}/confirm",
        middleware=[PAYMENT_LIMIT.middleware],
        sync_to_thread=True,
        status_code=303,
    )
    def confirm_test_method(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        token: FromPath[str],
        attempt_id: FromPath[str],
        data: URLEncodedBody[dict[str, str]],
    ) -> Response[Any]:
        found = _invoice(request, services, token)
        if isinstance(found, Template):
            return found
        attempt = _attempt(services, found, attempt_id)
        method = _METHOD_IDS.get(data.get("method", ""))
        if method is None or payment_mode(services, attempt) != "sandbox":
            raise InvalidPaymentRequest("payment.invalid_method", "not a test payment method offered here")
        try:
            services.payments.confirm_with_test_method(
                attempt.public_id, method, return_url=_return_url(services, token, attempt.public_id)
            )
        except AttemptNotActive:
            pass  # a double tap: the first one decided; the attempt page shows how
        except ProviderError as error:
            if not error.declined:
                return _provider_failure(request, error, token)
            # A decline the service has already recorded on the attempt: the page shows it.
        return Redirect(path=_attempt_path(token, attempt.public_id), status_code=303)

    @post(
        "/p/{token:str}/attempts/{attempt_id:str}/refresh",
        middleware=[PAYMENT_LIMIT.middleware],
        sync_to_thread=True,
        status_code=303,
    )
    def refresh_attempt(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        token: FromPath[str],
        attempt_id: FromPath[str],
    ) -> Response[Any]:
        return self._refresh(request, services, token, attempt_id)

    @get("/p/{token:str}/attempts/{attempt_id:str}/return", middleware=[PAYMENT_LIMIT.middleware], sync_to_thread=True)
    def return_from_provider(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        token: FromPath[str],
        attempt_id: FromPath[str],
    ) -> Response[Any]:
        # Stripe appends payment_intent, payment_intent_client_secret and redirect_status:
        # ignored on purpose. What happened is asked of the provider, not read from the URL.
        return self._refresh(request, services, token, attempt_id)

    def _refresh(
        self, request: Request[Any, Any, Any], services: Services, token: str, attempt_id: str
    ) -> Response[Any]:
        found = _invoice(request, services, token)
        if isinstance(found, Template):
            return found
        attempt = _attempt(services, found, attempt_id)
        try:
            services.payments.refresh(attempt.public_id)
        except ProviderNotConfigured as refused:
            return _unavailable(request, refused.code, "attempt.unavailable", 503, token)
        except ProviderError as error:
            return _provider_failure(request, error, token)
        return Redirect(path=_attempt_path(token, attempt.public_id), status_code=303)

    @get("/p/{token:str}/attempts/{attempt_id:str}/receipt", sync_to_thread=True)
    def receipt_page(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        token: FromPath[str],
        attempt_id: FromPath[str],
    ) -> Response[Any]:
        found = _invoice(request, services, token)
        if isinstance(found, Template):
            return found
        attempt = _attempt(services, found, attempt_id)
        receipt = services.payments.receipt_for_attempt(attempt.public_id)
        if receipt is None:
            # Not confirmed by the provider (yet): no proof of payment exists.
            raise PaymentNotFound("no receipt for this attempt yet")
        ctx = services.invoices
        return render(
            request,
            "receipt.html",
            {
                "receipt": receipt,
                "entry": ctx.catalog.get(receipt.tax_code),
                "code_display": format_code(receipt.verification_code),
                "verify_url": services.settings.public_base_url.rstrip("/") + "/receipts",
                "token": token,
                "attempt": attempt,
            },
        )
