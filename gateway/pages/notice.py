"""The printable notice (納付書 / 納税通知書) for one invoice."""

from __future__ import annotations

from litestar.response import Template
from markupsafe import Markup

from gateway.services import Services
from invoices.model import Invoice, invoice_payment_code


def notice_page(services: Services, invoice: Invoice) -> Template:
    ctx = services.invoices
    code = invoice_payment_code(services.keys.qr, invoice)
    url = services.payment_url(code.token)
    svg = services.qr.svg(url).decode("utf-8")
    if svg.startswith("<?xml"):
        svg = svg.split("?>", 1)[1]
    return Template(
        template_name="notice.html",
        context={
            "municipality": services.settings.municipality_name,
            "invoice": invoice,
            "entry": ctx.catalog.get(invoice.tax_code),
            "payer": invoice.payer(ctx.pii),
            "code": code,
            "payment_url": url,
            "manual_url": services.settings.public_base_url.rstrip("/") + "/p",
            "qr_svg": Markup(svg),
        },
    )
