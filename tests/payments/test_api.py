"""The staff payment API over HTTP (the real app, the sandbox as provider), on both engines."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.audit import Actor, AuditFilter, list_audit
from gateway.auth import Role, create_token
from gateway.payments import Attempt, PaymentService
from gateway.sandbox import SandboxServer
from gateway.settings import Settings
from invoices.payments import record_payment
from ledger.db import read_transaction, run_transaction
from tests.payments.support import API_KEY, RETURN_URL, assert_books_ok, issue, sandbox  # noqa: F401

Headers = Callable[[str], dict[str, str]]


@pytest.fixture
def client(db_url: str, tmp_path: Path, sandbox: SandboxServer) -> Iterator[TestClient]:
    settings = Settings(
        database_url=db_url,
        dev_keys_file=str(tmp_path / "dev-keys.env"),
        stripe_api_base=sandbox.url,
        stripe_secret_key=API_KEY,
        payment_sweep_seconds="0",
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def auth(client: TestClient) -> Headers:
    engine = client.app.state.services.engine

    def headers(role: str) -> dict[str, str]:
        issued = run_transaction(
            engine, lambda conn: create_token(conn, role=Role(role), name=f"test {role}", actor=Actor.cli())
        )
        return {"Authorization": f"Bearer {issued.secret}"}

    return headers


def payments(client: TestClient) -> PaymentService:
    return client.app.state.services.payments


def paid(client: TestClient) -> Attempt:
    service = payments(client)
    invoice = issue(service.engine)
    attempt = service.start_or_join(invoice.public_id)
    return service.confirm_with_test_method(attempt.public_id, "pm_card_visa", return_url=RETURN_URL)


def test_staff_read_a_payment_and_an_invoices_payments(client: TestClient, auth: Headers) -> None:
    attempt = paid(client)
    clerk = auth("clerk")
    response = client.get(f"/api/v1/payments/{attempt.public_id}", headers=clerk)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == attempt.public_id and body["status"] == "succeeded"
    assert body["amount_received"] == body["refundable"] == attempt.amount
    assert body["receipt_number"] == attempt.receipt_number and body["refunds"] == [] and body["overpayment"] is None
    assert "client_secret" not in body

    listed = client.get(f"/api/v1/invoices/{attempt.notice_number}/payments", headers=auth("auditor"))
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [attempt.public_id]

    for missing in ("pa_" + "0" * 24, "pi_123", "x"):
        refused = client.get(f"/api/v1/payments/{missing}", headers=clerk)
        assert refused.status_code == 404 and refused.json()["code"] == "payment.not_found"
    assert client.get(f"/api/v1/payments/{attempt.public_id}").status_code == 401


def test_a_treasury_refund_over_http_is_audited_and_a_stale_amount_gets_412(client: TestClient, auth: Headers) -> None:
    attempt = paid(client)
    treasury = auth("treasury")
    url = f"/api/v1/payments/{attempt.public_id}/refunds"

    forbidden = client.post(url, json={"amount": 100, "expected_refundable": attempt.amount, "reason": "x"}, headers=auth("clerk"))
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "auth.forbidden"

    created = client.post(url, json={"amount": 2_300, "expected_refundable": attempt.amount, "reason": "一部還付"}, headers=treasury)
    assert created.status_code == 201, created.text
    refund = created.json()
    assert refund["status"] == "succeeded" and refund["amount"] == 2_300 and refund["provider_refund_id"]
    assert refund["payment"]["refundable"] == attempt.amount - 2_300
    assert refund["requested_by"]["name"] == "test treasury"

    stale = client.post(url, json={"amount": 2_300, "expected_refundable": attempt.amount, "reason": "一部還付"}, headers=treasury)
    assert stale.status_code == 412
    problem = stale.json()
    assert problem["code"] == "payment.refundable_mismatch" and problem["refundable"] == attempt.amount - 2_300
    assert stale.headers["content-type"].startswith("application/problem+json")

    with read_transaction(payments(client).engine) as conn:
        entries = list_audit(conn, AuditFilter(subject=f"payment:{attempt.public_id}")).entries
    staff = [e for e in entries if e.actor_id.startswith("staff:")]
    assert [e.action for e in staff] == ["refund.complete", "refund.request"]
    assert all(e.actor_name == "test treasury" and e.request_id for e in staff)
    assert_books_ok(payments(client).engine)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"amount": 100, "reason": "x"}, 400, "request.missing_fields"),
        ({"amount": 100, "expected_refundable": 12_300, "reason": "x", "force": True}, 400, "request.unknown_fields"),
        ({"amount": "100", "expected_refundable": 12_300, "reason": "x"}, 400, "payment.invalid_amount"),
        ({"amount": 100, "expected_refundable": 12_300, "reason": ""}, 400, "payment.invalid_reason"),
        ({"amount": 99_999, "expected_refundable": 12_300, "reason": "x"}, 400, "payment.invalid_amount"),
    ],
)
def test_bad_refund_requests_are_problems_with_codes(
    client: TestClient, auth: Headers, body: dict[str, object], status: int, code: str
) -> None:
    attempt = paid(client)
    response = client.post(f"/api/v1/payments/{attempt.public_id}/refunds", json=body, headers=auth("treasury"))
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert payments(client).refunds_of(attempt.public_id) == []


def test_overpayments_are_listed_for_staff(client: TestClient, auth: Headers) -> None:
    service = payments(client)
    ctx = service.ctx
    made = []
    for n in range(3):
        invoice = issue(service.engine)
        attempt = service.start_or_join(invoice.public_id)
        run_transaction(service.engine, lambda conn: record_payment(conn, ctx, invoice.notice_number, invoice.amount,
                                                                    reference=f"konbini:{n}", actor="t",
                                                                    clearing_account="1300"))  # fmt: skip
        made.append(service.confirm_with_test_method(attempt.public_id, "pm_card_visa", return_url=RETURN_URL).public_id)
    clerk = auth("clerk")
    first = client.get("/api/v1/overpayments?status=open&limit=2", headers=clerk).json()
    assert [o["payment_id"] for o in first["items"]] == made[:2]
    assert first["items"][0]["reason"] == "already_paid" and first["items"][0]["open_amount"] == 12_300
    rest = client.get(f"/api/v1/overpayments?status=open&limit=2&cursor={first['next_cursor']}", headers=clerk).json()
    assert [o["payment_id"] for o in rest["items"]] == made[2:] and rest["next_cursor"] is None
    for query, code in (("status=closed", "payment.invalid_filter"), ("cursor=abc", "payment.invalid_cursor"),
                        ("limit=0", "payment.invalid_filter")):  # fmt: skip
        response = client.get(f"/api/v1/overpayments?{query}", headers=clerk)
        assert (response.status_code, response.json()["code"]) == (400, code)


def test_the_payment_endpoints_are_in_the_openapi_schema(client: TestClient) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    for path in ("/api/v1/payments/{payment_id}", "/api/v1/invoices/{number}/payments",
                 "/api/v1/payments/{payment_id}/refunds", "/api/v1/overpayments"):  # fmt: skip
        assert path in paths, sorted(paths)
