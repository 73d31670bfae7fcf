"""Staff API for invoices (``/api/v1/invoices``): issue (one, or many from CSV), read, list,
amend (更正), cancel, QR images and the printable notice.

Handlers only translate HTTP; the invoice service does the work inside one transaction together
with its ledger posting and the audit row naming the staff member.
"""

from __future__ import annotations

import tempfile
from datetime import date
from typing import Annotated, Any

import anyio
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody
from litestar.response import Template

from gateway.audit import record as audit
from gateway.auth import StaffIdentity, require
from gateway.problems import Problem
from gateway.services import Services
from invoices import service
from invoices.errors import ImportTooLarge, InvalidInvoice
from invoices.model import Invoice, invoice_payment_code
from ledger.db import read_transaction, run_transaction

ISSUE_FIELDS = {
    "tax_code", "fiscal_year", "installment", "due_date", "issue_date", "amount", "payer_ref",
    "payer_name", "payer_address", "payer_contact", "notice_number", "external_ref",
}  # fmt: skip


def _date(body: dict[str, Any], name: str) -> date | None:
    value = body.get(name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        raise InvalidInvoice("invoice.invalid_date", f"{name} is not a date (YYYY-MM-DD)", field=name) from None


def issue_request(body: Any) -> service.IssueRequest:
    """JSON → IssueRequest. Types are checked by the service, so errors carry its codes."""
    if not isinstance(body, dict):
        raise Problem(400, "request.invalid", "The body must be a JSON object")
    unknown = sorted(set(body) - ISSUE_FIELDS)
    if unknown:
        raise Problem(400, "request.unknown_fields", "Unknown fields", ", ".join(unknown), fields=unknown)
    missing = sorted({"tax_code", "fiscal_year", "due_date", "amount", "payer_ref", "payer_name"} - set(body))
    if missing:
        raise Problem(400, "request.missing_fields", "Missing fields", ", ".join(missing), fields=missing)
    fields = dict(body)
    fields["due_date"] = _date(body, "due_date")
    fields["issue_date"] = _date(body, "issue_date")
    return service.IssueRequest(**fields)


def invoice_json(services: NamedDependency[Services], invoice: Invoice, *, include_payer: bool = False) -> dict[str, Any]:
    ctx = services.invoices
    entry = ctx.catalog.get(invoice.tax_code)
    code = invoice_payment_code(services.keys.qr, invoice)
    due = service.amount_due(invoice, ctx.today(), ctx=ctx)
    body: dict[str, Any] = {
        "notice_number": invoice.display_number,
        "status": invoice.status.value,
        "tax_code": invoice.tax_code,
        "tax_name_ja": entry.name_ja,
        "tax_name_en": entry.name_en,
        "fiscal_year": invoice.fiscal_year,
        "installment": invoice.installment,
        "issue_date": invoice.issue_date,
        "due_date": invoice.due_date,
        "amount": invoice.amount,
        "amount_paid": invoice.amount_paid,
        "outstanding": invoice.outstanding,
        "overpaid": invoice.overpaid_amount,
        "payer_ref": invoice.payer_ref,
        "external_ref": invoice.external_ref,
        "version": invoice.version,
        "payment_url": services.payment_url(code.token),
        "confirmation_code": code.confirmation_code,
        "amount_due": {
            "on_date": due.on_date,
            "principal": due.principal,
            "late_fee": due.late_fee_amount,
            "late_fee_provisional": bool(due.late_fee and due.late_fee.provisional),
            "total": due.total,
            "late_fee_segments": [
                {"start": s.start, "end": s.end, "days": s.days, "rate_percent": str(s.rate), "amount": s.amount}
                for s in (due.late_fee.segments if due.late_fee else ())
                if s.days
            ],
        },
        "created_at": invoice.created_at,
        "updated_at": invoice.updated_at,
    }
    if include_payer:
        payer = invoice.payer(ctx.pii)
        body["payer"] = {"name": payer.name, "address": payer.address, "contact": payer.contact}
    return body


def _version(body: dict[str, Any]) -> int | None:
    value = body.get("expected_version")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise Problem(400, "request.invalid", "expected_version must be an integer", field="expected_version")
    return value


class InvoiceController(Controller):
    path = "/api/v1/invoices"
    tags = ["invoices"]

    @post("/", guards=[require("invoices:write")], sync_to_thread=True, status_code=201)
    def issue(
        self,
        services: NamedDependency[Services],
        staff: NamedDependency[StaffIdentity],
        data: JSONBody[dict[str, Any]],
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
    ) -> Response[dict[str, Any]]:
        """Issue one invoice (調定). Same `Idempotency-Key` + same body → the same invoice (200);
        same key + another body → 409."""
        request = issue_request(data)

        def work(conn):  # type: ignore[no-untyped-def]
            issued = service.issue_invoice(
                conn, services.invoices, request, actor=staff.actor.id, idempotency_key=idempotency_key
            )
            if issued.created:
                audit(conn, staff.actor, "invoice.issue", f"invoice:{issued.invoice.display_number}",
                      {"amount": issued.invoice.amount, "tax_code": issued.invoice.tax_code})
            return issued

        issued = run_transaction(services.engine, work)
        return Response(invoice_json(services, issued.invoice), status_code=201 if issued.created else 200)

    @post("/import", guards=[require("invoices:write")], status_code=200, request_max_body_size=None)
    async def import_csv(self, request: Request[Any, Any, Any], services: NamedDependency[Services], staff: NamedDependency[StaffIdentity]) -> dict[str, Any]:
        """Issue every row of a CSV body (UTF-8 with or without BOM, or Shift_JIS), all or nothing."""
        limit = service.MAX_BYTES
        spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                spool.close()
                raise ImportTooLarge(f"the file is larger than {limit:,} bytes; split it", limit=limit)
            spool.write(chunk)
        spool.seek(0)

        def work() -> service.ImportReport:
            with spool:
                report = service.import_invoices_csv(
                    services.engine, spool, ctx=services.invoices, actor=staff.actor.id
                )
            run_transaction(
                services.engine,
                lambda conn: audit(conn, staff.actor, "invoice.import", f"import:{report.import_id}",
                                   {"issued": report.issued, "skipped": report.skipped, "sha256": report.file_sha256}),
            )
            return report

        report = await anyio.to_thread.run_sync(work)
        return {
            "import_id": report.import_id,
            "rows": report.rows,
            "issued": report.issued,
            "skipped": report.skipped,
            "encoding": report.encoding,
            "file_sha256": report.file_sha256,
            "seconds": round(report.seconds, 3),
        }

    @get("/", guards=[require("invoices:read")], sync_to_thread=True)
    def list_(
        self,
        services: NamedDependency[Services],
        status: FromQuery[str | None] = None,
        tax_code: FromQuery[str | None] = None,
        fiscal_year: FromQuery[int | None] = None,
        due_from: FromQuery[date | None] = None,
        due_to: FromQuery[date | None] = None,
        payer_ref: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> dict[str, Any]:
        with read_transaction(services.engine) as conn:
            page = service.list_invoices(
                conn, status=status, tax_code=tax_code, fiscal_year=fiscal_year, due_from=due_from,
                due_to=due_to, payer_ref=payer_ref, cursor=cursor, limit=limit,
            )  # fmt: skip
        return {"items": [invoice_json(services, i) for i in page.items], "next_cursor": page.next_cursor}

    @get("/{number:str}", guards=[require("invoices:read")], sync_to_thread=True)
    def get_one(
        self, services: NamedDependency[Services], number: FromPath[str], include: FromQuery[str | None] = None
    ) -> dict[str, Any]:
        """One invoice; `?include=payer` adds the decrypted payer data, `?include=history` its changes."""
        parts = set((include or "").split(","))
        with read_transaction(services.engine) as conn:
            invoice = service.get_invoice(conn, number)
            body = invoice_json(services, invoice, include_payer="payer" in parts)
            if "history" in parts:
                body["history"] = [change.__dict__ for change in service.invoice_history(conn, number)]
        return body

    @post("/{number:str}/amend", guards=[require("invoices:write")], sync_to_thread=True, status_code=200)
    def amend(
        self, services: NamedDependency[Services], staff: NamedDependency[StaffIdentity], number: FromPath[str], data: JSONBody[dict[str, Any]]
    ) -> dict[str, Any]:
        """更正: `{"new_amount": int, "reason": str, "expected_version"?: int}`."""
        if "new_amount" not in data:
            raise Problem(400, "request.missing_fields", "Missing fields", "new_amount", fields=["new_amount"])

        def work(conn):  # type: ignore[no-untyped-def]
            before = service.get_invoice(conn, number)
            amended = service.amend_invoice(
                conn, services.invoices, number, data["new_amount"], reason=data.get("reason", ""),
                actor=staff.actor.id, expected_version=_version(data),
            )  # fmt: skip
            audit(conn, staff.actor, "invoice.amend", f"invoice:{amended.display_number}",
                  {"old_amount": before.amount, "new_amount": amended.amount, "reason": data.get("reason")})
            return amended

        return invoice_json(services, run_transaction(services.engine, work))

    @post("/{number:str}/cancel", guards=[require("invoices:write")], sync_to_thread=True, status_code=200)
    def cancel(
        self, services: NamedDependency[Services], staff: NamedDependency[StaffIdentity], number: FromPath[str], data: JSONBody[dict[str, Any]]
    ) -> dict[str, Any]:
        """取消: `{"reason": str, "expected_version"?: int}`; only with nothing paid."""

        def work(conn):  # type: ignore[no-untyped-def]
            cancelled = service.cancel_invoice(
                conn, services.invoices, number, reason=data.get("reason", ""), actor=staff.actor.id,
                expected_version=_version(data),
            )  # fmt: skip
            audit(conn, staff.actor, "invoice.cancel", f"invoice:{cancelled.display_number}",
                  {"reason": data.get("reason")})
            return cancelled

        return invoice_json(services, run_transaction(services.engine, work))

    @get("/{number:str}/qr.svg", guards=[require("invoices:read")], sync_to_thread=True, media_type="image/svg+xml")
    def qr_svg(self, services: NamedDependency[Services], number: FromPath[str]) -> Response[bytes]:
        return self._qr(services, number, "svg")

    @get("/{number:str}/qr.png", guards=[require("invoices:read")], sync_to_thread=True, media_type="image/png")
    def qr_png(self, services: NamedDependency[Services], number: FromPath[str]) -> Response[bytes]:
        return self._qr(services, number, "png")

    def _qr(self, services: Services, number: str, kind: str) -> Response[bytes]:
        with read_transaction(services.engine) as conn:
            invoice = service.get_invoice(conn, number)
        url = services.payment_url(invoice_payment_code(services.keys.qr, invoice).token)
        image = services.qr.svg(url) if kind == "svg" else services.qr.png(url)
        return Response(
            image,
            media_type="image/svg+xml" if kind == "svg" else "image/png",
            headers={"Cache-Control": "private, max-age=3600"},
        )

    @get("/{number:str}/notice", guards=[require("invoices:read")], sync_to_thread=True)
    def notice(self, services: NamedDependency[Services], number: FromPath[str]) -> Template:
        """The printable notice (納付書): A4, QR and manual-entry code beside it."""
        from gateway.pages.notice import notice_page

        with read_transaction(services.engine) as conn:
            invoice = service.get_invoice(conn, number)
        return notice_page(services, invoice)
