"""Public verification of a 支払完了証明: anyone holding a receipt (a resident, an employer, a
landlord) can check it is genuine.

    GET /receipts                         the form (number + code); with both, → the next URL
    GET /receipts/{number}?code=…         genuine: what the receipt must say; else 404   (30/hour)

A wrong code and an unknown number get the same answer (``receipt.not_genuine``). The code is 80
bits (2⁻⁸⁰ to guess), so the per-client limit is about load, not secrecy. Only what the paper
receipt states is shown back, so the checker can compare; nothing about the payer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from gateway.pages.limits import RECEIPT_CHECK_LIMIT
from gateway.pages.render import render
from gateway.payments import ReceiptNotFound, format_code
from gateway.services import Services

_MAX_INPUT = 64


def _clean_number(text: str) -> str:
    return text.strip().upper()[:_MAX_INPUT]


class ReceiptCheckHandlers:
    """Route handlers mixed into ``ResidentController``."""

    @get("/receipts", sync_to_thread=False)
    def receipt_form(
        self, request: Request[Any, Any, Any], number: FromQuery[str] = "", code: FromQuery[str] = ""
    ) -> Response[Any]:
        if number.strip() and code.strip():
            query = urlencode({"code": code.strip()[:_MAX_INPUT]})
            return Redirect(path=f"/receipts/{quote(_clean_number(number), safe='')}?{query}", status_code=303)
        return render(request, "verify.html", {"number": number[:_MAX_INPUT], "result": None})

    @get("/receipts/{number:str}", middleware=[RECEIPT_CHECK_LIMIT.middleware], sync_to_thread=True)
    def receipt_check(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        number: FromPath[str],
        code: FromQuery[str] = "",
    ) -> Response[Any]:
        number = _clean_number(number)
        if not code.strip():
            return render(request, "verify.html", {"number": number, "result": None})
        try:
            receipt = services.payments.get_receipt(number, code[:_MAX_INPUT])
        except ReceiptNotFound:
            return render(
                request, "verify.html", {"number": number, "result": "not_genuine"},
                status=404, code="receipt.not_genuine",
            )
        return render(
            request,
            "verify.html",
            {
                "number": number,
                "result": "genuine",
                "receipt": receipt,
                "entry": services.invoices.catalog.get(receipt.tax_code),
                "code_display": format_code(receipt.verification_code),
            },
            code="receipt.genuine",
        )
