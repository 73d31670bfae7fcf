"""Staff API for payments: look up attempts, refund (還付), list 過誤納金.

- ``GET  /api/v1/payments/{id}``                 one attempt with its refunds and overpayment
- ``GET  /api/v1/invoices/{number}/payments``    every attempt of an invoice
- ``POST /api/v1/payments/{id}/refunds``         ``{amount, expected_refundable, reason}``;
  412 ``payment.refundable_mismatch`` when ``expected_refundable`` is stale (someone refunded
  meanwhile), as GOV.UK Pay answers a stale ``refund_amount_available``
- ``GET  /api/v1/overpayments``                  ``?status=open|refunded&cursor=&limit=``

Handlers only translate HTTP; the payment service does the work and writes the audit rows
(``refund.request`` / ``refund.complete`` / ``refund.fail``, with the staff member).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from gateway.auth import StaffIdentity, require
from gateway.payments.model import Attempt, Overpayment, Refund
from gateway.problems import Problem
from gateway.services import Services

REFUND_FIELDS = {"amount", "expected_refundable", "reason"}


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "id": attempt.public_id,
        "notice_number": attempt.notice_number,
        "status": attempt.status.value,
        "amount": attempt.amount,
        "principal": attempt.principal,
        "late_fee": attempt.late_fee,
        "currency": attempt.currency,
        "provider": attempt.provider,
        "provider_payment_id": attempt.provider_payment_id,
        "failure_code": attempt.failure_code,
        "failure_message": attempt.failure_message,
        "amount_received": attempt.amount_received,
        "principal_applied": attempt.principal_applied,
        "late_fee_applied": attempt.late_fee_applied,
        "overpaid": attempt.overpaid,
        "refunded": attempt.refunded,
        "refund_pending": attempt.refund_pending,
        "refundable": attempt.refundable,
        "receipt_number": attempt.receipt_number,
        "ledger_entry_id": attempt.ledger_entry_id,
        "created_at": attempt.created_at,
        "expires_at": attempt.expires_at,
        "updated_at": attempt.updated_at,
        "succeeded_at": attempt.succeeded_at,
        "version": attempt.version,
    }


def refund_json(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.public_id,
        "payment_id": refund.attempt_public_id,
        "amount": refund.amount,
        "overpayment_part": refund.overpayment_part,
        "principal_part": refund.principal_part,
        "late_fee_part": refund.late_fee_part,
        "status": refund.status.value,
        "provider_refund_id": refund.provider_refund_id,
        "reason": refund.reason,
        "requested_by": {"id": refund.actor_id, "name": refund.actor_name},
        "ledger_entry_id": refund.ledger_entry_id,
        "invoice_entry_id": refund.invoice_entry_id,
        "failure_code": refund.failure_code,
        "failure_message": refund.failure_message,
        "created_at": refund.created_at,
        "completed_at": refund.completed_at,
    }


def overpayment_json(over: Overpayment) -> dict[str, Any]:
    return {
        "payment_id": over.attempt_public_id,
        "notice_number": over.notice_number,
        "reason": over.reason.value,
        "amount": over.amount,
        "refunded_amount": over.refunded_amount,
        "open_amount": over.open_amount,
        "status": over.status.value,
        "ledger_entry_id": over.ledger_entry_id,
        "created_at": over.created_at,
        "updated_at": over.updated_at,
    }


def _detail(services: Services, attempt_id: str) -> dict[str, Any]:
    payments = services.payments
    body = attempt_json(payments.get_attempt(attempt_id))
    body["refunds"] = [refund_json(r) for r in payments.refunds_of(attempt_id)]
    over = payments.overpayment_of(attempt_id)
    body["overpayment"] = None if over is None else overpayment_json(over)
    return body


class PaymentController(Controller):
    path = "/api/v1"
    tags = ["payments"]

    @get("/payments/{payment_id:str}", guards=[require("payments:read")], sync_to_thread=True)
    def get_payment(self, services: NamedDependency[Services], payment_id: FromPath[str]) -> dict[str, Any]:
        """One payment attempt, its refunds and its 過誤納金 (if any)."""
        return _detail(services, payment_id)

    @get("/invoices/{number:str}/payments", guards=[require("payments:read")], sync_to_thread=True)
    def invoice_payments(self, services: NamedDependency[Services], number: FromPath[str]) -> dict[str, Any]:
        """Every payment attempt of the invoice, oldest first."""
        return {"items": [attempt_json(a) for a in services.payments.attempts_for_invoice(number)]}

    @post("/payments/{payment_id:str}/refunds", guards=[require("payments:refund")], sync_to_thread=True, status_code=201)
    def refund(
        self,
        services: NamedDependency[Services],
        staff: NamedDependency[StaffIdentity],
        payment_id: FromPath[str],
        data: JSONBody[dict[str, Any]],
    ) -> Response[dict[str, Any]]:
        """Refund (還付) all or part of a payment. `expected_refundable` is the refundable amount
        you were shown: if it changed meanwhile, nothing happens and the answer is 412."""
        if not isinstance(data, dict):
            raise Problem(400, "request.invalid", "The body must be a JSON object")
        unknown = sorted(set(data) - REFUND_FIELDS)
        if unknown:
            raise Problem(400, "request.unknown_fields", "Unknown fields", ", ".join(unknown), fields=unknown)
        missing = sorted(REFUND_FIELDS - set(data))
        if missing:
            raise Problem(400, "request.missing_fields", "Missing fields", ", ".join(missing), fields=missing)
        refund = services.payments.refund(
            payment_id,
            amount=data["amount"],
            expected_refundable=data["expected_refundable"],
            reason=data["reason"],
            actor=staff.actor,
        )
        body = refund_json(refund)
        body["payment"] = attempt_json(services.payments.get_attempt(payment_id))
        return Response(body, status_code=201 if refund.status.value == "succeeded" else 202)

    @get("/overpayments", guards=[require("payments:read")], sync_to_thread=True)
    def overpayments(
        self,
        services: NamedDependency[Services],
        status: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> dict[str, Any]:
        """過誤納金 received through payments, oldest first (`?status=open` for those to refund)."""
        items, next_cursor = services.payments.list_overpayments(status=status, cursor=cursor, limit=limit)
        return {"items": [overpayment_json(o) for o in items], "next_cursor": next_cursor}
