"""The audit log: append-only in the database, written in the caller's transaction, paged reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from gateway.audit import Actor, AuditError, AuditFilter, audit_log, list_audit, record
from gateway.auth import StaffAuthPlugin, create_token, staff_tokens
from gateway.auth.audit_api import audit_log_endpoint
from gateway.problems import EXCEPTION_HANDLERS
from ledger.clock import JST, utc_now
from ledger.db import read_transaction, run_transaction

YAMADA = Actor(id="staff:k7q2m4x9abcd", name="会計課 山田", request_id="req-1")
SATO = Actor(id="staff:p3s8t2w4xyzb", name="窓口 佐藤")


def refuses(code: str, work: Any) -> AuditError:
    with pytest.raises(AuditError) as caught:
        work()
    assert caught.value.code == code
    return caught.value


def test_record_and_read_back(engine: Engine) -> None:
    at = datetime(2026, 11, 26, 1, 2, 3, 456789, tzinfo=timezone.utc)
    detail = {"amount": 12300, "reason": "二重納付", "nested": {"b": [1, 2], "a": None}}
    new_id = run_transaction(engine, lambda conn: record(conn, YAMADA, "refund.create", "payment:17", detail, now=at))
    with read_transaction(engine) as conn:
        (entry,) = list_audit(conn).entries
        stored = conn.execute(sa.select(audit_log.c.detail)).scalar_one()
    assert entry.id == new_id
    assert entry.occurred_at == at and entry.occurred_at.tzinfo is not None
    assert (entry.actor_id, entry.actor_name, entry.request_id) == ("staff:k7q2m4x9abcd", "会計課 山田", "req-1")
    assert (entry.action, entry.subject, dict(entry.detail)) == ("refund.create", "payment:17", detail)
    # Canonical text: sorted keys, compact, Japanese kept as is.
    assert stored == '{"amount":12300,"nested":{"a":null,"b":[1,2]},"reason":"二重納付"}'


def test_occurred_at_defaults_to_now_in_utc(engine: Engine) -> None:
    before = utc_now()
    run_transaction(engine, lambda conn: record(conn, SATO, "invoice.issue", "invoice:2026-0001234"))
    with read_transaction(engine) as conn:
        (entry,) = list_audit(conn).entries
    assert before <= entry.occurred_at <= utc_now()
    assert dict(entry.detail) == {} and entry.request_id is None


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET actor_name = 'nobody'", "UPDATE audit_log SET detail = '{}'", "DELETE FROM audit_log"],
)
def test_the_database_refuses_to_change_or_delete_audit_rows(engine: Engine, statement: str) -> None:
    run_transaction(engine, lambda conn: record(conn, YAMADA, "refund.create", "payment:17", {"amount": 100}))
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
    with read_transaction(engine) as conn:
        (entry,) = list_audit(conn).entries
    assert (entry.actor_name, dict(entry.detail)) == ("会計課 山田", {"amount": 100})


def test_postgresql_refuses_truncate(pg_engine: Engine) -> None:
    for table in ("audit_log", "staff_tokens"):
        with pytest.raises(DBAPIError, match="append-only"):
            with pg_engine.begin() as conn:
                conn.exec_driver_sql(f"TRUNCATE {table}")


def test_an_audit_row_lives_and_dies_with_its_transaction(engine: Engine) -> None:
    class Boom(Exception):
        pass

    def change_then_fail(conn: sa.Connection) -> None:
        create_token(conn, role="treasury", name="x", actor=YAMADA)  # a change, audited inside
        record(conn, YAMADA, "refund.create", "payment:17", {"amount": 1})
        raise Boom

    with pytest.raises(Boom):
        run_transaction(engine, change_then_fail)

    def change_then_bad_audit(conn: sa.Connection) -> None:
        create_token(conn, role="treasury", name="x", actor=YAMADA)
        record(conn, YAMADA, "Refund Create", "payment:17")

    refuses("audit.invalid_action", lambda: run_transaction(engine, change_then_bad_audit))
    with read_transaction(engine) as conn:
        assert list_audit(conn).entries == ()
        assert conn.execute(sa.select(sa.func.count()).select_from(staff_tokens)).scalar_one() == 0


def test_record_refuses_a_connection_outside_a_transaction(engine: Engine) -> None:
    with engine.connect() as conn:
        refuses("audit.no_transaction", lambda: record(conn, YAMADA, "refund.create", "payment:17"))


@pytest.mark.parametrize(
    ("actor", "action", "subject", "detail", "code"),
    [
        (YAMADA, "refund", "payment:17", None, "audit.invalid_action"),
        (YAMADA, "Refund.create", "payment:17", None, "audit.invalid_action"),
        (YAMADA, "refund.create " + "x" * 60, "payment:17", None, "audit.invalid_action"),
        (YAMADA, "refund.create", "17", None, "audit.invalid_subject"),
        (YAMADA, "refund.create", "payment:", None, "audit.invalid_subject"),
        (YAMADA, "refund.create", "payment:" + "9" * 200, None, "audit.invalid_subject"),
        (Actor(id="", name="x"), "refund.create", "payment:17", None, "audit.invalid_actor"),
        (Actor(id="staff:x", name=" "), "refund.create", "payment:17", None, "audit.invalid_actor"),
        (Actor(id="staff:x", name="x", request_id="r" * 65), "refund.create", "payment:17", None, "audit.invalid_actor"),
        (YAMADA, "refund.create", "payment:17", {"at": datetime(2026, 1, 1)}, "audit.invalid_detail"),
        (YAMADA, "refund.create", "payment:17", {"rate": float("nan")}, "audit.invalid_detail"),
        (YAMADA, "refund.create", "payment:17", [1, 2], "audit.invalid_detail"),
        (YAMADA, "refund.create", "payment:17", {"note": "x" * 17000}, "audit.invalid_detail"),
    ],
)
def test_record_refuses_bad_input_and_writes_nothing(
    engine: Engine, actor: Actor, action: str, subject: str, detail: Any, code: str
) -> None:
    refuses(code, lambda: run_transaction(engine, lambda conn: record(conn, actor, action, subject, detail)))
    with read_transaction(engine) as conn:
        assert list_audit(conn).entries == ()


def fill(engine: Engine, count: int, start: datetime) -> list[int]:
    def work(conn: sa.Connection) -> list[int]:
        return [
            record(
                conn,
                YAMADA if i % 2 == 0 else SATO,
                "refund.create" if i % 3 == 0 else "invoice.issue",
                f"invoice:2026-{i % 4:07d}",
                {"i": i},
                now=start + timedelta(minutes=i),
            )
            for i in range(count)
        ]

    return run_transaction(engine, work)


def walk(engine: Engine, filters: AuditFilter, limit: int) -> list[list[int]]:
    pages: list[list[int]] = []
    cursor: str | None = None
    while True:
        with read_transaction(engine) as conn:
            page = list_audit(conn, filters, cursor, limit)
        pages.append([e.id for e in page.entries])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def test_pages_are_newest_first_without_repeats_or_gaps(engine: Engine) -> None:
    ids = fill(engine, 7, datetime(2026, 11, 26, tzinfo=timezone.utc))
    pages = walk(engine, AuditFilter(), 3)
    assert pages == [ids[6:3:-1], ids[3:0:-1], ids[0:1]]
    assert walk(engine, AuditFilter(), 7) == [ids[::-1]]


def test_filters(engine: Engine) -> None:
    start = datetime(2026, 11, 26, tzinfo=timezone.utc)
    ids = fill(engine, 12, start)

    def found(**kwargs: Any) -> list[int]:
        with read_transaction(engine) as conn:
            return [e.id for e in list_audit(conn, AuditFilter(**kwargs), limit=500).entries]

    assert found(actor_id=SATO.id) == [ids[i] for i in range(11, -1, -1) if i % 2 == 1]
    assert found(action="refund.create") == [ids[i] for i in (9, 6, 3, 0)]
    assert found(subject="invoice:2026-0000001") == [ids[i] for i in (9, 5, 1)]
    # since inclusive, until exclusive; any offset is accepted (here JST).
    since = (start + timedelta(minutes=3)).astimezone(JST)
    assert found(since=since, until=start + timedelta(minutes=6)) == [ids[5], ids[4], ids[3]]
    assert found(actor_id=YAMADA.id, action="refund.create") == [ids[6], ids[0]]
    assert found(actor_id="cli:nobody") == []


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"cursor": "abc"}, "audit.invalid_cursor"),
        ({"cursor": "0"}, "audit.invalid_cursor"),
        ({"cursor": "-5"}, "audit.invalid_cursor"),
        ({"cursor": "１２"}, "audit.invalid_cursor"),
        ({"limit": 0}, "audit.invalid_limit"),
        ({"limit": 501}, "audit.invalid_limit"),
        ({"filters": AuditFilter(since=datetime(2026, 1, 1))}, "audit.invalid_filter"),
        (
            {"filters": AuditFilter(since=datetime(2026, 2, 1, tzinfo=JST), until=datetime(2026, 1, 1, tzinfo=JST))},
            "audit.invalid_filter",
        ),
    ],
)
def test_list_refuses_bad_paging_and_filters(engine: Engine, kwargs: dict[str, Any], code: str) -> None:
    with read_transaction(engine) as conn:
        refuses(code, lambda: list_audit(conn, **kwargs))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(0, 12), limit=st.integers(1, 5), subject_no=st.integers(0, 10**6))
def test_walking_the_pages_yields_every_matching_entry_once(engine: Engine, count: int, limit: int, subject_no: int) -> None:
    subject = f"payment:{subject_no}-{count}-{limit}"

    def work(conn: sa.Connection) -> list[int]:
        return [record(conn, YAMADA, "refund.create", subject, {"n": n}) for n in range(count)]

    ids = run_transaction(engine, work)
    pages = walk(engine, AuditFilter(subject=subject), limit)
    flat = [i for page in pages for i in page]
    assert flat == sorted(ids, reverse=True)
    assert all(len(page) == limit for page in pages[:-1]) and len(pages[-1]) <= limit


def test_tables_in_code_agree_with_the_migration(engine: Engine) -> None:
    inspector = sa.inspect(engine)
    for table in (audit_log, staff_tokens):
        reflected = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert list(reflected) == [c.name for c in table.columns]
        for column in table.columns:
            assert reflected[column.name]["nullable"] == column.nullable, (table.name, column.name)
        indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes(table.name)}
        assert indexes == {i.name: [c.name for c in i.columns] for i in table.indexes}
        checks = {c["name"] for c in inspector.get_check_constraints(table.name)}
        assert {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)} <= checks


# --- GET /api/v1/audit ---------------------------------------------------------------------


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient[Litestar]]:
    app = Litestar(
        route_handlers=[audit_log_endpoint],
        plugins=[StaffAuthPlugin(engine)],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
    )
    with TestClient(app) as test_client:
        yield test_client


def token(engine: Engine, role: str) -> dict[str, str]:
    issued = run_transaction(engine, lambda conn: create_token(conn, role=role, name=f"{role} 担当", actor=YAMADA))
    return {"Authorization": f"Bearer {issued.secret}"}


def test_the_auditor_reads_the_log_page_by_page(engine: Engine, client: TestClient[Litestar]) -> None:
    auditor = token(engine, "auditor")  # itself audited: token.create
    ids = fill(engine, 5, datetime(2026, 11, 26, tzinfo=timezone.utc))
    first = client.get("/api/v1/audit", params={"action": "invoice.issue", "limit": 2}, headers=auditor)
    assert first.status_code == 200, first.text
    body = first.json()
    assert [item["id"] for item in body["items"]] == [ids[4], ids[2]]
    assert body["items"][0]["actor"] == {"id": YAMADA.id, "name": YAMADA.name}
    assert body["items"][0]["request_id"] == "req-1"
    assert body["items"][0]["detail"] == {"i": 4}
    assert body["items"][0]["occurred_at"] == "2026-11-26T00:04:00+00:00"
    rest = client.get(
        "/api/v1/audit", params={"action": "invoice.issue", "limit": 2, "cursor": body["next_cursor"]}, headers=auditor
    ).json()
    assert [item["id"] for item in rest["items"]] == [ids[1]] and rest["next_cursor"] is None
    since = client.get(
        "/api/v1/audit", params={"action": "invoice.issue", "since": "2026-11-26T09:03:00+09:00"}, headers=auditor
    ).json()
    assert [item["id"] for item in since["items"]] == [ids[4]]
    tokens = client.get("/api/v1/audit", params={"action": "token.create"}, headers=auditor).json()
    assert [item["actor"]["id"] for item in tokens["items"]] == [YAMADA.id]


def test_a_clerk_may_not_read_the_audit_log(engine: Engine, client: TestClient[Litestar]) -> None:
    response = client.get("/api/v1/audit", headers=token(engine, "clerk"))
    assert (response.status_code, response.json()["code"]) == (403, "auth.forbidden")
    assert client.get("/api/v1/audit").status_code == 401


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"cursor": "zzz"}, 400, "audit.invalid_cursor"),
        ({"limit": 1000}, 400, "audit.invalid_limit"),
        ({"since": "2026-11-26T09:00:00"}, 400, "audit.invalid_filter"),
        ({"since": "yesterday"}, 400, "request.invalid"),
    ],
)
def test_the_endpoint_refuses_bad_queries_as_problem_details(
    engine: Engine, client: TestClient[Litestar], params: dict[str, Any], status: int, code: str
) -> None:
    response = client.get("/api/v1/audit", params=params, headers=token(engine, "treasury"))
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert response.headers["content-type"].startswith("application/problem+json")
