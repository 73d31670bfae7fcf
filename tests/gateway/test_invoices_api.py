"""The staff invoice API over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from datetime import date

import pytest
import sqlalchemy as sa

from invoices import service
from invoices.notice_number import make_notice_number
from invoices.tokens import verify_with_jwks
from ledger.db import run_transaction

BODY = {
    "tax_code": "FIXED_ASSET",
    "fiscal_year": 2026,
    "installment": 1,
    "issue_date": "2026-04-01",
    "due_date": "2030-04-30",
    "amount": 45600,
    "payer_ref": "A-0001",
    "payer_name": "山田 太郎",
    "payer_address": "サンプル市中央町1-2-3",
}


def counts(client) -> tuple[int, int, int]:
    with client.app.state.services.engine.connect() as conn:
        return tuple(
            conn.scalar(sa.text(f"SELECT count(*) FROM {table}"))
            for table in ("invoices", "ledger_entries", "audit_log")
        )


def issue(client, headers, **overrides):
    response = client.post("/api/v1/invoices", json={**BODY, **overrides}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_issue_returns_payment_url_and_amount_due(client, auth):
    body = issue(client, auth("clerk"))
    assert body["status"] == "open"
    assert body["amount_due"] == {
        "on_date": body["amount_due"]["on_date"],
        "principal": 45600,
        "late_fee": 0,
        "late_fee_provisional": False,
        "total": 45600,
        "late_fee_segments": [],
    }
    assert body["payment_url"].startswith("http://127.0.0.1:8000/p/")
    assert len(body["confirmation_code"]) == 6
    assert "payer" not in body  # personal data only on request
    # the token in the URL verifies offline against the published keys
    jwks = client.get("/.well-known/nofu-qr-keys.json").json()
    claims = verify_with_jwks(body["payment_url"].rsplit("/", 1)[1], jwks)
    with client.app.state.services.engine.connect() as conn:
        invoice = service.get_invoice(conn, body["notice_number"])
    assert claims.ref == invoice.token_ref


def test_overdue_invoice_shows_late_fee(client, auth):
    body = issue(client, auth("clerk"), due_date="2025-04-30", issue_date="2025-04-01", fiscal_year=2025)
    due = body["amount_due"]
    assert due["late_fee"] > 0 and due["late_fee"] % 100 == 0
    assert due["total"] == 45600 + due["late_fee"]
    assert sum(s["amount"] for s in due["late_fee_segments"]) >= due["late_fee"]


def test_idempotency_key_replays_and_conflicts(client, auth):
    headers = {**auth("clerk"), "Idempotency-Key": "tax-system-batch-7:row-1"}
    first = client.post("/api/v1/invoices", json=BODY, headers=headers)
    again = client.post("/api/v1/invoices", json=BODY, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["notice_number"] == again.json()["notice_number"]
    before = counts(client)
    other = client.post("/api/v1/invoices", json={**BODY, "amount": 1000}, headers=headers)
    assert other.status_code == 409
    assert other.json()["code"] == "invoice.idempotency_conflict"
    assert counts(client) == before


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"tax_code": "NOPE"}, "invoice.unknown_tax_code"),
        ({"amount": 0}, "invoice.amount_zero"),
        ({"amount": -5}, "invoice.amount_negative"),
        ({"amount": 12.5}, "invoice.amount_not_integer"),
        ({"amount": "100"}, "invoice.amount_not_integer"),
        ({"amount": 100_000_000}, "invoice.amount_too_large"),
        ({"due_date": "2026-02-30"}, "invoice.invalid_date"),
        ({"due_date": "2026-03-01"}, "invoice.due_before_issue"),
        ({"colour": "red"}, "request.unknown_fields"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(client, auth, overrides, code):
    headers = auth("clerk")
    before = counts(client)
    response = client.post("/api/v1/invoices", json={**BODY, **overrides}, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code and problem["status"] == 400 and problem["title"]
    assert "Traceback" not in response.text
    assert counts(client) == before


def test_missing_fields_and_non_object_body(client, auth):
    headers = auth("clerk")
    response = client.post("/api/v1/invoices", json={"tax_code": "FIXED_ASSET"}, headers=headers)
    assert response.status_code == 400 and response.json()["code"] == "request.missing_fields"
    assert "payer_name" in response.json()["fields"]
    response = client.post("/api/v1/invoices", json=[1, 2], headers=headers)
    assert response.status_code == 400


def test_duplicate_notice_number_is_a_conflict(client, auth):
    headers = auth("clerk")
    first = issue(client, headers, notice_number=make_notice_number(2026, 500_000))
    before = counts(client)
    again = client.post(
        "/api/v1/invoices",
        json={**BODY, "payer_ref": "B-2", "notice_number": first["notice_number"]},
        headers=headers,
    )
    assert again.status_code == 409 and again.json()["code"] == "invoice.duplicate_notice_number"
    assert counts(client) == before


def test_roles(client, auth):
    assert client.post("/api/v1/invoices", json=BODY).status_code == 401
    assert client.post("/api/v1/invoices", json=BODY, headers=auth("auditor")).status_code == 403
    number = issue(client, auth("treasury"))["notice_number"]
    assert client.get(f"/api/v1/invoices/{number}", headers=auth("auditor")).status_code == 200
    assert client.post(
        f"/api/v1/invoices/{number}/cancel", json={"reason": "x"}, headers=auth("auditor")
    ).status_code == 403


def test_get_with_payer_and_history(client, auth):
    headers = auth("clerk")
    number = issue(client, headers)["notice_number"]
    body = client.get(f"/api/v1/invoices/{number}?include=payer,history", headers=headers).json()
    assert body["payer"]["name"] == "山田 太郎"
    assert [change["kind"] for change in body["history"]] == ["issue"]
    missing = client.get("/api/v1/invoices/2026-99999999-0", headers=headers)
    assert missing.status_code in (400, 404)


def test_amend_cancel_are_posted_and_audited(client, auth):
    headers = auth("treasury")
    number = issue(client, headers)["notice_number"]
    amended = client.post(
        f"/api/v1/invoices/{number}/amend", json={"new_amount": 40000, "reason": "更正: 評価替え"}, headers=headers
    )
    assert amended.status_code == 200 and amended.json()["amount"] == 40000
    stale = client.post(
        f"/api/v1/invoices/{number}/cancel", json={"reason": "x", "expected_version": 1}, headers=headers
    )
    assert stale.status_code == 409 and stale.json()["code"] == "invoice.stale_version"
    cancelled = client.post(f"/api/v1/invoices/{number}/cancel", json={"reason": "転出"}, headers=headers)
    assert cancelled.json()["status"] == "cancelled"
    audit = client.get("/api/v1/audit", headers=headers).json()["items"]
    assert [row["action"] for row in audit][:3] == ["invoice.cancel", "invoice.amend", "invoice.issue"]
    engine = client.app.state.services.engine
    with engine.connect() as conn:
        import ledger

        assert ledger.balance(conn, "1100:FIXED_ASSET").amount == 0
        assert ledger.verify(conn).ok


def test_paid_invoice_cannot_be_cancelled(client, auth):
    headers = auth("treasury")
    number = issue(client, headers)["notice_number"]
    services = client.app.state.services
    run_transaction(
        services.engine,
        lambda conn: service.record_payment(
            conn, services.invoices, number, 45600, reference="konbini:1", actor="test"
        ),
    )
    refused = client.post(f"/api/v1/invoices/{number}/cancel", json={"reason": "x"}, headers=headers)
    assert refused.status_code == 409 and refused.json()["code"] == "invoice.not_cancellable"
    reduced = client.post(
        f"/api/v1/invoices/{number}/amend", json={"new_amount": 40000, "reason": "減額更正"}, headers=headers
    ).json()
    assert reduced["status"] == "overpaid" and reduced["overpaid"] == 5600


def test_list_filters_and_pagination(client, auth):
    headers = auth("clerk")
    for i in range(5):
        issue(client, headers, payer_ref=f"P-{i}", installment=1 + i % 4)
    page = client.get("/api/v1/invoices?limit=2", headers=headers).json()
    seen = [item["notice_number"] for item in page["items"]]
    while page["next_cursor"]:
        page = client.get(f"/api/v1/invoices?limit=2&cursor={page['next_cursor']}", headers=headers).json()
        seen += [item["notice_number"] for item in page["items"]]
    assert len(seen) == len(set(seen)) == 5
    only = client.get("/api/v1/invoices?payer_ref=P-3", headers=headers).json()["items"]
    assert [item["payer_ref"] for item in only] == ["P-3"]
    bad = client.get("/api/v1/invoices?status=weird", headers=headers)
    assert bad.status_code == 400 and bad.json()["code"] == "invoice.invalid_filter"
    bad = client.get("/api/v1/invoices?cursor=zzz", headers=headers)
    assert bad.status_code == 400 and bad.json()["code"] == "invoice.invalid_cursor"


CSV = (
    "external_ref,tax_code,fiscal_year,installment,due_date,amount,payer_ref,payer_name,issue_date\n"
    "R1,FIXED_ASSET,2026,2,2030-07-31,12300,P-1,佐藤 花子,2026-04-01\n"
    "R2,LIGHT_VEHICLE,2026,1,2030-05-31,10800,P-2,鈴木 一郎,2026-04-01\n"
)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932"])
def test_csv_import_and_reimport(client, auth, encoding):
    headers = {**auth("clerk"), "content-type": "text/csv"}
    first = client.post("/api/v1/invoices/import", content=CSV.encode(encoding), headers=headers)
    assert first.status_code == 200, first.text
    assert (first.json()["issued"], first.json()["skipped"]) == (2, 0)
    again = client.post("/api/v1/invoices/import", content=CSV.encode(encoding), headers=headers)
    assert (again.json()["issued"], again.json()["skipped"]) == (0, 2)


def test_csv_import_rejects_every_bad_row_and_writes_nothing(client, auth):
    headers = {**auth("clerk"), "content-type": "text/csv"}
    bad = CSV + "R3,NOPE,2026,1,2030-07-31,0,P-3,x,2026-04-01\nR4,FIXED_ASSET,2026,1,2030-13-01,5,P-4,y,2026-04-01\n"
    before = counts(client)
    response = client.post("/api/v1/invoices/import", content=bad.encode(), headers=headers)
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "invoice_import.rejected"
    assert {(e["line"], e["code"]) for e in problem["errors"]} >= {
        (4, "invoice.unknown_tax_code"),
        (5, "invoice.invalid_date"),
    }
    assert counts(client) == before


def test_csv_import_too_large(client, auth, monkeypatch):
    monkeypatch.setattr(service, "MAX_BYTES", 100)
    headers = {**auth("clerk"), "content-type": "text/csv"}
    response = client.post("/api/v1/invoices/import", content=CSV.encode() * 5, headers=headers)
    assert response.status_code == 413 and response.json()["code"] == "invoice_import.too_large"


def test_qr_images_and_notice(client, auth):
    headers = auth("clerk")
    number = issue(client, headers)["notice_number"]
    png = client.get(f"/api/v1/invoices/{number}/qr.png", headers=headers)
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert client.get(f"/api/v1/invoices/{number}/qr.png", headers=headers).content == png.content
    svg = client.get(f"/api/v1/invoices/{number}/qr.svg", headers=headers)
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
    notice = client.get(f"/api/v1/invoices/{number}/notice", headers=headers)
    assert notice.status_code == 200
    assert number in notice.text and "固定資産税" in notice.text and "山田 太郎" in notice.text
    code = client.get(f"/api/v1/invoices/{number}", headers=headers).json()["confirmation_code"]
    assert code in notice.text
    assert "frame-ancestors 'none'" in notice.headers["content-security-policy"]
    assert notice.headers["x-content-type-options"] == "nosniff"
