"""The resident's pages: what a phone opens after scanning the QR on a notice.

    GET  /p                   manual entry form (通知書番号 + 確認番号)
    POST /p                   find the invoice by both, redirect to its /p/{token}  (10/hour)
    GET  /p/{token}           the invoice: amounts due today (JST), late fee, state
    … plus the payment routes (``gateway.pages.paying``) and the public receipt check
    (``gateway.pages.receipt_check``), mixed into the one ``ResidentController`` so every
    resident route shares its HTML error pages.

Handlers only translate HTTP: tokens are checked in ``token_access``, manual entry in
``manual_entry``, the view built in ``invoice_view``. Errors render pages (``html_errors``),
never JSON or traces.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.to_thread
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, URLEncodedBody
from litestar.response import Redirect, Template
from litestar.types import ASGIApp

from gateway.pages.html_errors import HTML_EXCEPTION_HANDLERS
from gateway.pages.invoice_page import invoice_page as render_invoice_page
from gateway.pages.limits import MANUAL_ENTRY_LIMIT
from gateway.pages.manual_entry import (
    STORE_NAME,
    EntryRefused,
    FailureCounter,
    find_by_codes,
    notice_digits_or_refuse,
)
from gateway.pages.paying import PaymentHandlers
from gateway.pages.receipt_check import ReceiptCheckHandlers
from gateway.pages.render import refusal, render
from gateway.pages.token_access import TokenRefused
from gateway.services import Services
from invoices.model import Invoice, invoice_payment_code
from ledger.db import read_transaction

log = logging.getLogger("nofu.pages")


def token_url(services: Services, invoice: Invoice) -> str:
    """The path of the invoice's current resident page (relative: the host is the request's)."""
    return "/p/" + invoice_payment_code(services.keys.qr, invoice).token


class ResidentController(PaymentHandlers, ReceiptCheckHandlers, Controller):
    path = "/"
    include_in_schema = False
    exception_handlers = HTML_EXCEPTION_HANDLERS

    @get("/p", sync_to_thread=False)
    def entry_form(self, request: Request[Any, Any, Any]) -> Template:
        return render(request, "entry.html", {"number": "", "error_key": None})

    @post("/p", middleware=[MANUAL_ENTRY_LIMIT.middleware], status_code=303)
    async def entry_submit(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        data: URLEncodedBody[dict[str, str]],
    ) -> Response[Any]:
        number = str(data.get("notice_number", ""))[:64]
        code = str(data.get("confirmation_code", ""))
        failures = FailureCounter(request.app.stores.get(STORE_NAME))
        digits = ""
        try:
            digits = notice_digits_or_refuse(number)
            if await failures.locked(digits):
                raise EntryRefused("entry.locked", "entry.locked")

            def lookup() -> Invoice:
                with read_transaction(services.engine) as conn:
                    return find_by_codes(conn, services.keys.qr, digits, code)

            invoice = await anyio.to_thread.run_sync(lookup)
        except EntryRefused as refused:
            if refused.code == "entry.no_match":
                await failures.record_failure(digits)
            log.info("manual entry refused: %s", refused.code)
            status = 429 if refused.code == "entry.locked" else 400
            return render(
                request, "entry.html", {"number": number, "error_key": refused.message_key},
                status=status, code=refused.code,
            )
        return Redirect(path=token_url(services, invoice), status_code=303)

    @get("/p/{token:str}", media_type=MediaType.HTML, opt={"exclude_from_csrf": True})
    async def invoice_page(self, request: Request[Any, Any, Any], token: FromPath[str]) -> ASGIApp:
        try:
            return await render_invoice_page(request, token)
        except TokenRefused as refused:
            return refusal(request, refused)
