"""The HTTP surface on both engines: the intake's answers and refusals (problem details with
stable codes), and the staff API to list, inspect and replay stored events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.audit import Actor, audit_log
from gateway.auth import Role, create_token
from gateway.settings import Settings
from ledger.db import run_transaction
from tests.webhooks.support import OLD_SECRET, SECRET, body_of, event, rows, sign
from webhooks import MAX_BODY_BYTES

JSON = {"Content-Type": "application/json; charset=utf-8"}


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=db_url,
        dev_keys_file=str(tmp_path / "dev-keys.env"),
        stripe_webhook_secret=f"{SECRET},{OLD_SECRET}",
        webhook_inprocess="0",
        payment_sweep_seconds="0",
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def auth(client: TestClient) -> Callable[[str], dict[str, str]]:
    engine = client.app.state.services.engine

    def headers(role: str) -> dict[str, str]:
        issued = run_transaction(engine, lambda conn: create_token(conn, role=Role(role), name=f"t {role}", actor=Actor.cli()))
        return {"Authorization": f"Bearer {issued.secret}"}

    return headers


def deliver(client: TestClient, body: bytes, secret: str = SECRET, **headers: str) -> object:
    return client.post("/webhooks/stripe", content=body, headers={**JSON, "Stripe-Signature": sign(body, secret), **headers})


def drain(client: TestClient) -> None:
    client.app.state.webhooks.processor.drain()


SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy")


def test_a_delivery_is_acknowledged_once_stored(client: TestClient) -> None:
    evt = event("payout.paid", {"id": "po_1", "object": "payout"})
    answer = deliver(client, body_of(evt))
    assert answer.status_code == 200  # type: ignore[attr-defined]
    assert answer.content == (  # type: ignore[attr-defined]
        b'{"received":true,"event_id":"%s","duplicate":false,"poison":false}' % evt["id"].encode()
    )
    assert answer.headers["content-type"] == "application/json"  # type: ignore[attr-defined]
    assert int(answer.headers["content-length"]) == len(answer.content)  # type: ignore[attr-defined]
    assert all(name in answer.headers for name in SECURITY_HEADERS)  # type: ignore[attr-defined]
    again = deliver(client, body_of(evt), OLD_SECRET)  # signed with the secret being rotated out
    assert again.json()["duplicate"] is True  # type: ignore[attr-defined]
    engine = client.app.state.services.engine
    assert [(r.event_id, r.state) for r in rows(engine)] == [(evt["id"], "pending")]  # stored, not yet worked


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"Stripe-Signature": "t=1,v1=00"}, 400, "webhook.signature_invalid"),
        ({"Stripe-Signature": ""}, 400, "webhook.signature_missing"),
        ({"Content-Type": "text/plain"}, 415, "webhook.unsupported_media_type"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "webhook.unsupported_media_type"),
    ],
)
def test_refusals_are_problem_details_and_store_nothing(
    client: TestClient, change: dict[str, str], status: int, code: str
) -> None:
    body = body_of(event())
    answer = client.post("/webhooks/stripe", content=body, headers={**JSON, "Stripe-Signature": sign(body), **change})
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == code
    assert answer.json()["instance"] == "/webhooks/stripe" and "Traceback" not in answer.text
    assert all(name in answer.headers for name in SECURITY_HEADERS)
    assert rows(client.app.state.services.engine) == []


def test_stale_signature_and_wrong_secret(client: TestClient) -> None:
    body = body_of(event())
    stale = client.post("/webhooks/stripe", content=body,
                        headers={**JSON, "Stripe-Signature": sign(body, timestamp=int(time.time()) - 600)})  # fmt: skip
    assert (stale.status_code, stale.json()["code"]) == (400, "webhook.timestamp_outside_tolerance")
    wrong = deliver(client, body, "whsec_attacker")
    assert (wrong.status_code, wrong.json()["code"]) == (400, "webhook.signature_invalid")  # type: ignore[attr-defined]
    assert rows(client.app.state.services.engine) == []


def test_an_oversize_body_is_refused_with_413(client: TestClient) -> None:
    big = b'{"id": "evt_big", "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    answer = client.post("/webhooks/stripe", content=big, headers={**JSON, "Stripe-Signature": "t=1,v1=00"})
    assert (answer.status_code, answer.json()["code"]) == (413, "webhook.payload_too_large")
    assert rows(client.app.state.services.engine) == []


def test_a_chunked_oversize_body_is_refused_with_413(client: TestClient) -> None:
    """No Content-Length to check first: the body is refused once the bytes read pass the limit."""
    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"x" * (MAX_BODY_BYTES // 4)

    answer = client.post("/webhooks/stripe", content=chunks(), headers={**JSON, "Stripe-Signature": "t=1,v1=00"})
    assert "content-length" not in answer.request.headers and answer.request.headers["transfer-encoding"] == "chunked"
    assert (answer.status_code, answer.json()["code"]) == (413, "webhook.payload_too_large")
    assert answer.json()["max_bytes"] == MAX_BODY_BYTES
    assert all(name in answer.headers for name in SECURITY_HEADERS)
    assert rows(client.app.state.services.engine) == []


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(client: TestClient) -> None:
    body = body_of(event())
    answer = client.post("/webhooks/stripe", content=body,
                         headers={**JSON, "Stripe-Signature": sign(body), "Content-Length": str(MAX_BODY_BYTES + 1)})  # fmt: skip
    assert (answer.status_code, answer.json()["code"]) == (413, "webhook.payload_too_large")
    assert rows(client.app.state.services.engine) == []


def test_the_content_type_is_checked_before_the_size(client: TestClient) -> None:
    answer = client.post("/webhooks/stripe", content=b"x" * (MAX_BODY_BYTES + 1), headers={"Content-Type": "text/plain"})
    assert (answer.status_code, answer.json()["code"]) == (415, "webhook.unsupported_media_type")


def test_a_body_sent_in_chunks_is_verified_and_stored_byte_for_byte(client: TestClient) -> None:
    body = body_of(event("payout.paid"))
    pieces = [body[i : i + 100] for i in range(0, len(body), 100)]
    answer = client.post("/webhooks/stripe", content=iter(pieces), headers={**JSON, "Stripe-Signature": sign(body)})
    assert answer.status_code == 200 and answer.json()["event_id"] == json.loads(body)["id"]
    assert [bytes(r.payload) for r in rows(client.app.state.services.engine)] == [body]


def test_other_methods_are_answered_as_for_a_post_route(client: TestClient) -> None:
    for method in ("GET", "HEAD", "PUT", "DELETE"):
        answer = client.request(method, "/webhooks/stripe")
        assert (answer.status_code, answer.headers["allow"]) == (405, "POST, OPTIONS")
        if method != "HEAD":
            assert answer.json()["code"] == "http.method_not_allowed"
    options = client.options("/webhooks/stripe")
    assert (options.status_code, options.headers["allow"], options.content) == (204, "OPTIONS, POST", b"")


def test_a_sender_that_goes_away_mid_body_gets_no_answer_and_nothing_is_stored(client: TestClient) -> None:
    import asyncio

    body = body_of(event())
    messages = iter([
        {"type": "http.request", "body": body[:50], "more_body": True},
        {"type": "http.disconnect"},
    ])  # fmt: skip
    sent: list[object] = []

    async def receive() -> object:
        return next(messages)

    async def send(message: object) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/webhooks/stripe", "raw_path": b"/webhooks/stripe", "root_path": "", "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                    (b"stripe-signature", sign(body).encode()), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1), "server": ("testserver", 80),
    }  # fmt: skip
    asyncio.run(client.app(scope, receive, send))  # type: ignore[arg-type]
    assert sent == []
    assert rows(client.app.state.services.engine) == []


def test_no_secret_configured_is_503(db_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=db_url, dev_keys_file=str(tmp_path / "k.env"), webhook_inprocess="0")
    with TestClient(create_app(settings)) as client:
        answer = deliver(client, body_of(event()))
        assert (answer.status_code, answer.json()["code"]) == (503, "webhook.not_configured")  # type: ignore[attr-defined]


def test_malformed_json_with_a_valid_signature_is_poison_visible_to_staff(
    client: TestClient, auth: Callable[[str], dict[str, str]]
) -> None:
    from gateway.sandbox import signature_header

    body = b'{"id": "evt_x", "type": '
    answer = client.post("/webhooks/stripe", content=body,
                         headers={**JSON, "Stripe-Signature": signature_header(SECRET, int(time.time()), body)})  # fmt: skip
    assert answer.status_code == 200 and answer.json()["poison"] is True
    listed = client.get("/api/v1/webhooks/events", params={"state": "poison"}, headers=auth("auditor")).json()
    assert [item["event_id"] for item in listed["items"]] == [answer.json()["event_id"]]
    shown = client.get(f"/api/v1/webhooks/events/{listed['items'][0]['id']}", headers=auth("auditor")).json()
    assert shown["payload"] == body.decode()
    refused = client.post(f"/api/v1/webhooks/events/{shown['id']}/replay", headers=auth("treasury"))
    assert (refused.status_code, refused.json()["code"]) == (409, "webhook.replay_refused")


def test_staff_list_filter_and_page(client: TestClient, auth: Callable[[str], dict[str, str]]) -> None:
    ids = [str(e["id"]) for e in (event("payout.paid"), event("payout.created"), event("payout.paid"))]
    for n, event_id in enumerate(ids):
        deliver(client, body_of({**event("payout.paid" if n != 1 else "payout.created"), "id": event_id}))
    drain(client)
    staff = auth("clerk")
    first = client.get("/api/v1/webhooks/events", params={"limit": 2}, headers=staff).json()
    assert [item["event_id"] for item in first["items"]] == [ids[2], ids[1]]
    rest = client.get("/api/v1/webhooks/events", params={"limit": 2, "cursor": first["next_cursor"]}, headers=staff).json()
    assert [item["event_id"] for item in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    paid = client.get("/api/v1/webhooks/events", params={"type": "payout.paid", "state": "ignored"}, headers=staff).json()
    assert {item["event_id"] for item in paid["items"]} == {ids[0], ids[2]}
    stats = client.get("/api/v1/webhooks/stats", headers=staff).json()
    assert stats["states"]["ignored"] == 3 and stats["states"]["dead"] == 0
    by_provider_id = client.get(f"/api/v1/webhooks/events/{ids[1]}", headers=staff).json()
    assert json.loads(by_provider_id["payload"])["type"] == "payout.created"


@pytest.mark.parametrize(
    ("params", "code"),
    [({"state": "done"}, "webhook.invalid_state"), ({"limit": 0}, "webhook.invalid_limit"),
     ({"limit": 501}, "webhook.invalid_limit"), ({"cursor": "bm9wZQ"}, "webhook.invalid_cursor")],
)
def test_bad_queries_are_refused(client: TestClient, auth: Callable[[str], dict[str, str]], params: dict, code: str) -> None:
    answer = client.get("/api/v1/webhooks/events", params=params, headers=auth("auditor"))
    assert (answer.status_code, answer.json()["code"]) == (400, code)


def test_unknown_event_is_404(client: TestClient, auth: Callable[[str], dict[str, str]]) -> None:
    for key in ("evt_nope", "424242"):
        answer = client.get(f"/api/v1/webhooks/events/{key}", headers=auth("auditor"))
        assert (answer.status_code, answer.json()["code"]) == (404, "webhook.event_not_found")
    answer = client.post("/api/v1/webhooks/events/evt_nope/replay", headers=auth("treasury"))
    assert (answer.status_code, answer.json()["code"]) == (404, "webhook.event_not_found")


def test_the_staff_api_needs_a_token_and_replay_needs_its_permission(
    client: TestClient, auth: Callable[[str], dict[str, str]]
) -> None:
    evt = event("payout.paid")
    deliver(client, body_of(evt))
    assert client.get("/api/v1/webhooks/events").status_code == 401
    assert client.post(f"/api/v1/webhooks/events/{evt['id']}/replay").status_code == 401
    for role in ("clerk", "auditor"):
        answer = client.post(f"/api/v1/webhooks/events/{evt['id']}/replay", headers=auth(role))
        assert (answer.status_code, answer.json()["code"]) == (403, "auth.forbidden")


def test_replay_is_audited_and_processes_the_event_again(
    client: TestClient, auth: Callable[[str], dict[str, str]]
) -> None:
    evt = event("payout.paid")
    deliver(client, body_of(evt))
    pending = client.post(f"/api/v1/webhooks/events/{evt['id']}/replay", headers=auth("treasury"))
    assert (pending.status_code, pending.json()["code"]) == (409, "webhook.replay_refused")  # not processed yet
    drain(client)
    replayed = client.post(f"/api/v1/webhooks/events/{evt['id']}/replay", headers=auth("treasury"))
    assert replayed.status_code == 200
    assert (replayed.json()["state"], replayed.json()["attempts"], replayed.json()["replays"]) == ("pending", 0, 1)
    drain(client)
    engine = client.app.state.services.engine
    assert [(r.state, r.attempts, r.replays) for r in rows(engine)] == [("ignored", 1, 1)]
    with engine.connect() as conn:
        audited = conn.execute(sa.select(audit_log).where(audit_log.c.action == "webhook.replay")).one()
    assert audited.subject == f"webhook_event:{evt['id']}" and audited.actor_name == "t treasury"
    assert json.loads(audited.detail)["previous_state"] == "ignored"
