"""The reconciliation staff API on SQLite and PostgreSQL: runs, permissions, the exceptions
queue with its audit trail, sign-off closing the ledger, bank statements and the Excel CSV."""

from __future__ import annotations

from datetime import date, timedelta

from litestar.testing import TestClient

from gateway.providers.statements import ReconciliationWiring
from ledger import closed_through
from ledger.db import read_transaction
from reconciliation import NoLinks
from tests.reconciliation.app_support import app_settings, auth, client, source, token  # noqa: F401
from tests.reconciliation.support import Day, FakeSource, payment

DAY = date(2026, 11, 2)  # a Monday before the real today (the API refuses days not yet begun)
BASE = "/api/v1/reconciliations"


def a_day_with_a_lost_payment(client: TestClient, source: FakeSource) -> tuple[Day, str]:
    day = Day(DAY, [payment(12_300, hour=9), payment(5_000, hour=14, refund=1_000), payment(8_800, hour=20)]).build()
    lost = day.payments[2]
    day.ledger = [e for e in day.ledger if e.source_ref != f"stripe:{lost.ref}"]
    day.pay_out()
    day.write(client.app.state.services.engine)
    source.transactions[:] = day.transactions
    source.payout_list[:] = [day.payout] if day.payout else []
    return day, f"missing_in_ledger:txn_{lost.ref}"


def run(client: TestClient, headers: dict[str, str], day: date = DAY) -> dict:
    response = client.post(BASE, json={"date": day.isoformat()}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_run_reports_the_break_and_the_queue_works_it_to_sign_off(client: TestClient, source: FakeSource, auth) -> None:
    treasury = auth("treasury")
    _, key = a_day_with_a_lost_payment(client, source)
    body = run(client, treasury)
    assert body["status"] == "reconciled" and body["runs"] == 1 and body["open_breaks"] == 1
    [found] = body["breaks"]
    assert (found["key"], found["category"], found["status"], found["amount"]) == (key, "missing_in_ledger", "open", 8_800)
    assert body["summary"]["provider"]["gross"] == 26_100

    url = f"{BASE}/{DAY.isoformat()}/breaks/{found['id']}"
    refused = client.post(f"{url}/resolve", json={"reason": "  "}, headers=treasury)
    assert (refused.status_code, refused.json()["code"]) == (400, "reconciliation.reason_required")
    assigned = client.post(f"{url}/assign", json={"assignee": "収納係 田中", "expected_version": 1}, headers=treasury)
    assert assigned.status_code == 200 and assigned.json()["assignee"] == "収納係 田中"
    stale = client.post(f"{url}/comment", json={"comment": "確認中", "expected_version": 1}, headers=treasury)
    assert (stale.status_code, stale.json()["code"]) == (409, "reconciliation.stale_break")
    assert client.post(f"{url}/comment", json={"comment": "Stripe に照会中"}, headers=treasury).status_code == 200
    escalated = client.post(f"{url}/escalate", json={"reason": "課長判断"}, headers=treasury)
    assert escalated.json()["status"] == "escalated"

    blocked = client.post(f"{BASE}/{DAY.isoformat()}/signoff", headers=treasury)
    assert (blocked.status_code, blocked.json()["code"], blocked.json()["escalated"]) == (409, "reconciliation.open_breaks", 1)

    resolved = client.post(f"{url}/resolve", json={"reason": "webhook 不達: 手動で照合済"}, headers=treasury)
    assert resolved.json()["status"] == "resolved"
    again = client.post(f"{url}/resolve", json={"reason": "再度"}, headers=treasury)
    assert (again.status_code, again.json()["code"]) == (409, "reconciliation.break_closed")

    # A re-run finds the same break and keeps it resolved; the report digest is unchanged.
    rerun = run(client, treasury)
    assert rerun["runs"] == 2 and rerun["report_sha256"] == body["report_sha256"]
    assert [(b["key"], b["status"]) for b in rerun["breaks"]] == [(key, "resolved")]

    history = client.get(url, headers=auth("auditor")).json()["history"]
    assert [h["kind"] for h in history] == ["assign", "comment", "escalate", "resolve"]

    signed = client.post(f"{BASE}/{DAY.isoformat()}/signoff", headers=treasury)
    assert signed.status_code == 200, signed.text
    with read_transaction(client.app.state.services.engine) as conn:
        assert closed_through(conn) == DAY
    assert client.get(f"{BASE}/{DAY.isoformat()}", headers=treasury).json()["status"] == "signed_off"
    for response in (client.post(BASE, json={"date": DAY.isoformat()}, headers=treasury),
                     client.post(f"{url}/comment", json={"comment": "後から"}, headers=treasury),
                     client.post(f"{BASE}/{DAY.isoformat()}/signoff", headers=treasury)):  # fmt: skip
        assert (response.status_code, response.json()["code"]) == (409, "reconciliation.day_signed_off")

    audit = client.get("/api/v1/audit", params={"subject": f"reconciliation:{DAY.isoformat()}"}, headers=treasury)
    actions = [e["action"] for e in audit.json()["items"]][::-1]
    assert actions == [
        "reconciliation.run", "reconciliation.break_assign", "reconciliation.break_comment",
        "reconciliation.break_escalate", "reconciliation.break_resolve", "reconciliation.run", "reconciliation.signoff",
    ]  # fmt: skip


def test_roles_and_refusals(client: TestClient, source: FakeSource, auth) -> None:
    a_day_with_a_lost_payment(client, source)
    auditor, clerk, treasury = auth("auditor"), auth("clerk"), auth("treasury")
    assert client.post(BASE, json={"date": DAY.isoformat()}, headers=auditor).status_code == 403
    assert client.get(f"{BASE}/{DAY.isoformat()}", headers=clerk).status_code == 403
    assert client.get(f"{BASE}/{DAY.isoformat()}").status_code == 401
    missing = client.get(f"{BASE}/{DAY.isoformat()}", headers=auditor)
    assert (missing.status_code, missing.json()["code"]) == (404, "reconciliation.run_not_found")
    for bad in ("2026-13-01", "yesterday", (date.today() + timedelta(days=5)).isoformat()):
        response = client.post(BASE, json={"date": bad}, headers=treasury)
        assert (response.status_code, response.json()["code"]) == (400, "reconciliation.invalid_date"), bad
    assert client.post(BASE, json={}, headers=treasury).json()["code"] == "request.missing_fields"
    assert client.post(BASE, json={"date": DAY.isoformat(), "pull": "yes"}, headers=treasury).json()["code"] == "request.invalid"
    body = run(client, treasury)
    break_id = body["breaks"][0]["id"]
    url = f"{BASE}/{DAY.isoformat()}/breaks"
    assert client.post(f"{url}/{break_id}/resolve", json={"reason": "x"}, headers=auditor).status_code == 403
    assert client.post(f"{BASE}/{DAY.isoformat()}/signoff", headers=auditor).status_code == 403
    unknown = client.post(f"{url}/999999/resolve", json={"reason": "x"}, headers=treasury)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "reconciliation.break_not_found")
    assert client.post(f"{url}/{break_id}/delete", json={}, headers=treasury).status_code == 404
    nobody = client.post(f"{url}/{break_id}/assign", json={"assignee": ""}, headers=treasury)
    assert (nobody.status_code, nobody.json()["code"]) == (400, "reconciliation.invalid_assignee")


def test_the_report_csv_opens_in_excel(client: TestClient, source: FakeSource, auth) -> None:
    a_day_with_a_lost_payment(client, source)
    treasury = auth("treasury")
    run(client, treasury)
    response = client.get(f"{BASE}/{DAY.isoformat()}/report.csv", headers=auth("auditor"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    raw = response.content
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    text = raw.decode("utf-8-sig")
    lines = text.split("\r\n")
    assert lines[0].startswith("区分,項目,状態,金額")
    assert any(line.startswith("合計,決済総額(gross),,26100,3") for line in lines)
    assert any(line.startswith("差異,帳簿未計上,未対応,8800,1") for line in lines)
    assert client.get(f"{BASE}/2026-10-01/report.csv", headers=treasury).status_code == 404


def test_bank_statements_are_imported_once_and_refused_with_line_numbers(client: TestClient, source: FakeSource, auth) -> None:
    day, _ = a_day_with_a_lost_payment(client, source)
    treasury = auth("treasury")
    assert day.payout is not None
    csv_body = ("取引日,金額,摘要\r\n"
                f"{day.payout_day.isoformat()},{day.payout.amount},ｽﾄﾗｲﾌﾟ\r\n"
                f"{day.payout_day.isoformat()},45000,ｺﾝﾋﾞﾆ\r\n").encode("cp932")  # fmt: skip
    url = f"{BASE}/{day.payout_day.isoformat()}/bank-statements"
    first = client.post(url, content=csv_body, headers=treasury)
    assert first.json() == {**first.json(), "format": "csv", "lines": 2, "new_lines": 2, "already_imported": False}
    assert client.post(url, content=csv_body, headers=treasury).json()["already_imported"] is True
    bad = client.post(url, content=b"date,amount\n2026-11-04,12x\nnot-a-date,5\n", headers=treasury)
    problem = bad.json()
    assert (bad.status_code, problem["code"]) == (400, "reconciliation.bank_statement_invalid")
    assert [(e["line"], e["code"]) for e in problem["errors"]] == [(2, "csv.invalid_amount"), (3, "csv.invalid_date")]
    assert client.post(url, content=b"", headers=treasury).json()["code"] == "reconciliation.bank_statement_invalid"


def test_without_a_provider_a_run_must_say_pull_false(app_settings, auth, client: TestClient) -> None:
    client.app.state["reconciliation_wiring"] = ReconciliationWiring(None, NoLinks(), None)  # type: ignore[arg-type]
    treasury = auth("treasury")
    refused = client.post(BASE, json={"date": DAY.isoformat()}, headers=treasury)
    assert (refused.status_code, refused.json()["code"]) == (409, "reconciliation.provider_not_configured")
    assert client.post(BASE, json={"date": DAY.isoformat(), "pull": False}, headers=treasury).status_code == 200



def test_a_configured_provider_is_read_with_the_sdk_and_healed_through_the_inbox(app_settings) -> None:
    import dataclasses

    from gateway.api.reconciliation import wiring_of
    from gateway.app import create_app
    from gateway.providers.statements import InboxHealer, PaymentLinks, StripeStatementSource

    app = create_app(dataclasses.replace(app_settings, stripe_api_base="http://127.0.0.1:9", stripe_secret_key="sk_test_x"))
    wiring = wiring_of(app.state, app.state.services)
    assert isinstance(wiring.source, StripeStatementSource) and isinstance(wiring.links, PaymentLinks)
    assert isinstance(wiring.healer, InboxHealer)
    assert wiring.healer.processor is not app.state.webhooks.processor  # one processor per thread
