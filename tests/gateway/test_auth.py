"""Staff API tokens, roles and the ``require`` guard, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from litestar import Litestar, get, post
from litestar.di import NamedDependency, Provide
from litestar.testing import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from gateway import audit
from gateway.audit import Actor
from gateway.auth import (
    PERMISSIONS,
    AuthError,
    Role,
    StaffAuthPlugin,
    StaffIdentity,
    create_token,
    get_token,
    list_tokens,
    permissions_of,
    require,
    revoke_token,
    staff_tokens,
    verify_token,
)
from gateway.auth.authenticator import bearer_token
from gateway.commands import tokens as token_commands
from gateway.problems import EXCEPTION_HANDLERS
from ledger.clock import utc_now
from ledger.db import read_transaction, run_transaction

OPERATOR = Actor(id="cli:tester", name="tester")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def issue(engine: Engine, role: str, name: str = "会計課 山田", **kwargs: Any) -> str:
    return run_transaction(
        engine, lambda conn: create_token(conn, role=role, name=name, actor=OPERATOR, **kwargs)
    ).secret


def token_id(secret: str) -> str:
    return secret.split("_")[1]


def refuses(code: str, work: Any) -> AuthError:
    with pytest.raises(AuthError) as caught:
        work()
    assert caught.value.code == code
    return caught.value


# --- permissions as data -------------------------------------------------------------------


def test_treasury_holds_every_permission_and_the_auditor_exactly_the_reads() -> None:
    assert permissions_of(Role.TREASURY) == set(PERMISSIONS)
    assert permissions_of(Role.AUDITOR) == {name for name in PERMISSIONS if name.endswith(":read")}
    assert permissions_of(Role.CLERK) == {"invoices:read", "invoices:write", "payments:read"}
    assert all(re.fullmatch(r"[a-z]+:[a-z]+", name) for name in PERMISSIONS)


def test_require_refuses_an_unknown_permission_when_the_route_is_defined() -> None:
    with pytest.raises(ValueError, match="unknown permission 'payments:delete'"):
        require("payments:delete")


# --- tokens in the database ----------------------------------------------------------------


def test_create_verify_and_revoke(engine: Engine) -> None:
    issued = run_transaction(
        engine, lambda conn: create_token(conn, role="clerk", name="窓口 佐藤", actor=OPERATOR)
    )
    assert re.fullmatch(r"nofu_[a-km-np-z2-9]{12}_[a-km-np-z2-9]{40}", issued.secret)
    assert issued.secret not in repr(issued)
    with read_transaction(engine) as conn:
        info = verify_token(conn, issued.secret)
        stored = conn.execute(sa.select(staff_tokens)).one()
    assert (info.id, info.name, info.role) == (issued.info.id, "窓口 佐藤", Role.CLERK)
    assert info.expires_at is not None and timedelta(days=89) < info.expires_at - utc_now() <= timedelta(days=90)
    # Only the hash is stored: the secret appears in no column.
    assert all(issued.secret.split("_")[2] not in str(value) for value in stored)

    revoked = run_transaction(engine, lambda conn: revoke_token(conn, info.id, actor=OPERATOR))
    assert revoked.revoked_by == "cli:tester" and revoked.status() == "revoked"
    with read_transaction(engine) as conn:
        error = refuses("auth.unauthorized", lambda: verify_token(conn, issued.secret))
    assert error.detail["reason"] == "revoked"


def test_wrong_secret_and_unknown_id_are_the_same_refusal(engine: Engine) -> None:
    secret = issue(engine, "treasury")
    prefix, tid, rest = secret.split("_")
    wrong_secret = f"{prefix}_{tid}_{'a' * 40}"
    unknown_id = f"{prefix}_{'b' * 12}_{rest}"
    with read_transaction(engine) as conn:
        for candidate in (wrong_secret, unknown_id):
            error = refuses("auth.unauthorized", lambda: verify_token(conn, candidate))
            assert error.detail == {"reason": "invalid"}
            assert error.message == "the bearer token is not valid"
        error = refuses("auth.unauthorized", lambda: verify_token(conn, secret + "x"))
        assert error.detail == {"reason": "malformed"}


def test_an_expired_token_is_refused(engine: Engine) -> None:
    secret = issue(engine, "auditor", lifetime=timedelta(days=1), now=utc_now() - timedelta(days=2))
    with read_transaction(engine) as conn:
        error = refuses("auth.unauthorized", lambda: verify_token(conn, secret))
        assert error.detail["reason"] == "expired"
        assert get_token(conn, token_id(secret)).status() == "expired"
        # One second before expiry it was still good.
        expires_at = get_token(conn, token_id(secret)).expires_at
        assert expires_at is not None
        assert verify_token(conn, secret, now=expires_at - timedelta(seconds=1)).role == Role.AUDITOR


def test_a_token_without_lifetime_never_expires(engine: Engine) -> None:
    secret = issue(engine, "clerk", lifetime=None)
    with read_transaction(engine) as conn:
        assert verify_token(conn, secret, now=utc_now() + timedelta(days=36500)).expires_at is None


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"role": "admin", "name": "x"}, "auth.invalid_role"),
        ({"role": "Treasury", "name": "x"}, "auth.invalid_role"),
        ({"role": "clerk", "name": "  "}, "auth.invalid_name"),
        ({"role": "clerk", "name": "a" * 101}, "auth.invalid_name"),
        ({"role": "clerk", "name": "yamada\nroot"}, "auth.invalid_name"),
        ({"role": "clerk", "name": "x", "lifetime": timedelta(hours=23)}, "auth.invalid_expiry"),
        ({"role": "clerk", "name": "x", "lifetime": timedelta(days=3651)}, "auth.invalid_expiry"),
    ],
)
def test_create_refuses_bad_input(engine: Engine, fields: dict[str, Any], code: str) -> None:
    refuses(code, lambda: run_transaction(engine, lambda conn: create_token(conn, actor=OPERATOR, **fields)))
    with read_transaction(engine) as conn:
        assert list_tokens(conn) == []
        assert audit.list_audit(conn).entries == ()


def test_japanese_names_with_an_ideographic_space_are_fine(engine: Engine) -> None:
    secret = issue(engine, "clerk", name="収納課　山田　太郎")
    with read_transaction(engine) as conn:
        assert verify_token(conn, secret).name == "収納課　山田　太郎"


def test_revoke_refuses_an_unknown_id_and_audits_a_revocation_once(engine: Engine) -> None:
    refuses("auth.token_not_found", lambda: run_transaction(engine, lambda c: revoke_token(c, "nosuchtoken2", actor=OPERATOR)))
    tid = token_id(issue(engine, "treasury"))
    first = run_transaction(engine, lambda conn: revoke_token(conn, tid, actor=OPERATOR))
    later = Actor(id="cli:other", name="other")
    again = run_transaction(engine, lambda conn: revoke_token(conn, tid, actor=later))
    assert again == first and again.revoked_by == "cli:tester"
    with read_transaction(engine) as conn:
        actions = [e.action for e in audit.list_audit(conn, audit.AuditFilter(subject=f"staff_token:{tid}")).entries]
    assert actions == ["token.revoke", "token.create"]


def test_token_creation_is_audited_without_the_secret(engine: Engine) -> None:
    secret = issue(engine, "auditor", name="監査委員 鈴木")
    with read_transaction(engine) as conn:
        (entry,) = audit.list_audit(conn).entries
    assert (entry.actor_id, entry.action, entry.subject) == ("cli:tester", "token.create", f"staff_token:{token_id(secret)}")
    assert entry.detail["role"] == "auditor" and entry.detail["name"] == "監査委員 鈴木"
    assert secret.split("_")[2] not in str(entry.as_json())


def test_concurrent_revocations_are_audited_once(pg_engine: Engine) -> None:
    tid = token_id(issue(pg_engine, "treasury"))
    barrier = threading.Barrier(4)

    def revoke(n: int) -> None:
        def work(conn: sa.Connection) -> None:
            get_token(conn, tid)
            barrier.wait(timeout=10)  # everyone has read "not revoked" before anyone writes
            revoke_token(conn, tid, actor=Actor(id=f"cli:op{n}", name=f"op{n}"))

        run_transaction(pg_engine, work, attempts=1)

    threads = [threading.Thread(target=revoke, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    with read_transaction(pg_engine) as conn:
        revocations = audit.list_audit(conn, audit.AuditFilter(action="token.revoke")).entries
        info = get_token(conn, tid)
    assert len(revocations) == 1
    assert revocations[0].actor_id == info.revoked_by


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE staff_tokens SET role = 'treasury'",
        "UPDATE staff_tokens SET secret_sha256 = 'x'",
        "UPDATE staff_tokens SET expires_at = NULL",
        "UPDATE staff_tokens SET name = 'someone else'",
        "UPDATE staff_tokens SET revoked_at = NULL, revoked_by = NULL",
        "DELETE FROM staff_tokens",
    ],
)
def test_the_database_keeps_tokens_fixed_and_revocations_final(engine: Engine, statement: str) -> None:
    tid = token_id(issue(engine, "clerk"))
    run_transaction(engine, lambda conn: revoke_token(conn, tid, actor=OPERATOR))
    with pytest.raises(DBAPIError, match="staff token"):
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
    with read_transaction(engine) as conn:
        info = get_token(conn, tid)
    assert (info.role, info.status()) == (Role.CLERK, "revoked")


def test_the_database_allows_recording_last_use(engine: Engine) -> None:
    tid = token_id(issue(engine, "clerk"))
    with engine.begin() as conn:
        conn.execute(staff_tokens.update().values(last_used_at=utc_now()))
    with read_transaction(engine) as conn:
        assert get_token(conn, tid).last_used_at is not None


# --- header parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([], "missing"),
        (["Basic dXNlcjpwYXNz"], "malformed"),
        (["Bearer"], "malformed"),
        (["Bearer "], "malformed"),
        (["Bearer a b"], "malformed"),
        (["Token abc"], "malformed"),
        (["Bearer " + "a" * 600], "malformed"),
        (["Bearer abc", "Bearer def"], "malformed"),
    ],
)
def test_bearer_header_refusals(headers: list[str], reason: str) -> None:
    error = refuses("auth.unauthorized", lambda: bearer_token(headers))
    assert error.detail["reason"] == reason


def test_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_token(["bearer nofu_x"]) == "nofu_x"
    assert bearer_token(["BEARER  nofu_x"]) == "nofu_x"


# --- the guard over HTTP -------------------------------------------------------------------


@get("/api/v1/whoami", guards=[require("invoices:read")], sync_to_thread=False)
def whoami(staff: NamedDependency[StaffIdentity]) -> dict[str, Any]:
    return {"id": staff.id, "name": staff.name, "role": staff.role.value, "request_id": staff.request_id}


@post("/api/v1/refunds", guards=[require("payments:read"), require("payments:refund")], sync_to_thread=True)
def refund(staff: NamedDependency[StaffIdentity], engine: NamedDependency[Engine]) -> dict[str, int]:
    audit_id = run_transaction(
        engine, lambda conn: audit.record(conn, staff.actor, "refund.create", "payment:17", {"amount": 1200})
    )
    return {"audit_id": audit_id}


@get("/api/v1/unguarded", sync_to_thread=False)
def unguarded(staff: NamedDependency[StaffIdentity]) -> str:
    return staff.name


def permission_route(permission: str) -> Any:
    @get(f"/api/v1/check/{permission}", guards=[require(permission)], sync_to_thread=False, name=permission)
    def check() -> str:
        return "ok"

    return check


def build_app(engine: Engine, clock: Clock) -> tuple[Litestar, StaffAuthPlugin]:
    plugin = StaffAuthPlugin(engine, clock=clock)
    routes = [whoami, refund, unguarded, *(permission_route(p) for p in PERMISSIONS)]
    app = Litestar(
        route_handlers=routes,
        plugins=[plugin],
        dependencies={"engine": Provide(lambda: engine, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
    )
    return app, plugin


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def http(engine: Engine, clock: Clock) -> Iterator[tuple[TestClient[Litestar], StaffAuthPlugin]]:
    app, plugin = build_app(engine, clock)
    with TestClient(app) as client:
        yield client, plugin


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_every_role_against_every_permission(engine: Engine, http: tuple[TestClient[Litestar], StaffAuthPlugin]) -> None:
    client, _ = http
    for role in Role:
        secret = issue(engine, role.value, name=f"{role.value} tester")
        for permission, entry in PERMISSIONS.items():
            response = client.get(f"/api/v1/check/{permission}", headers=bearer(secret))
            if role in entry.roles:
                assert response.status_code == 200, (role, permission)
            else:
                assert response.status_code == 403, (role, permission)
                body = response.json()
                assert response.headers["content-type"].startswith("application/problem+json")
                assert body["code"] == "auth.forbidden"
                assert (body["permission"], body["role"]) == (permission, role.value)


def test_the_identity_reaches_the_handler(engine: Engine, http: tuple[TestClient[Litestar], StaffAuthPlugin]) -> None:
    client, _ = http
    secret = issue(engine, "clerk", name="窓口 佐藤")
    response = client.get("/api/v1/whoami", headers={**bearer(secret), "X-Request-ID": "req-42"})
    assert response.status_code == 200
    assert response.json() == {"id": token_id(secret), "name": "窓口 佐藤", "role": "clerk", "request_id": "req-42"}
    # A request id that is not a sane token is replaced by a fresh one.
    response = client.get("/api/v1/whoami", headers={**bearer(secret), "X-Request-ID": "<script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", response.json()["request_id"])


def test_a_staff_action_is_audited_with_who_and_the_request(engine: Engine, http: tuple[TestClient[Litestar], StaffAuthPlugin]) -> None:
    client, _ = http
    secret = issue(engine, "treasury", name="会計課 山田")
    response = client.post("/api/v1/refunds", headers={**bearer(secret), "X-Request-ID": "r-1"})
    assert response.status_code == 201
    with read_transaction(engine) as conn:
        entry = audit.list_audit(conn, audit.AuditFilter(action="refund.create")).entries[0]
    assert entry.id == response.json()["audit_id"]
    assert (entry.actor_id, entry.actor_name, entry.request_id) == (f"staff:{token_id(secret)}", "会計課 山田", "r-1")
    assert entry.detail == {"amount": 1200}
    # The clerk passes the first guard (payments:read) and is stopped by the second.
    clerk = issue(engine, "clerk")
    response = client.post("/api/v1/refunds", headers=bearer(clerk))
    assert (response.status_code, response.json()["permission"]) == (403, "payments:refund")


def unauthorized(response: Any, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert (body["code"], body["reason"]) == ("auth.unauthorized", reason)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="nofu"')
    assert ('error="invalid_token"' in challenge) == (reason != "missing")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("Basic dXNlcjpwYXNz", "malformed"),
        ("Bearer", "malformed"),
        ("Bearer nofu_short_token", "malformed"),
        ("Bearer nofu_" + "a" * 12 + "_" + "b" * 40, "invalid"),
    ],
)
def test_unauthenticated_requests_get_401_problem_details(
    http: tuple[TestClient[Litestar], StaffAuthPlugin], header: str | None, reason: str
) -> None:
    client, _ = http
    unauthorized(client.get("/api/v1/whoami", headers={"Authorization": header} if header else {}), reason)


def test_a_handler_that_forgot_its_guard_fails_closed(engine: Engine, http: tuple[TestClient[Litestar], StaffAuthPlugin]) -> None:
    client, _ = http
    unauthorized(client.get("/api/v1/unguarded", headers=bearer(issue(engine, "treasury"))), "missing")


def test_revocation_takes_effect_within_the_cache_time(
    engine: Engine, clock: Clock, http: tuple[TestClient[Litestar], StaffAuthPlugin]
) -> None:
    client, _ = http
    secret = issue(engine, "treasury")
    assert client.get("/api/v1/whoami", headers=bearer(secret)).status_code == 200
    run_transaction(engine, lambda conn: revoke_token(conn, token_id(secret), actor=OPERATOR))
    clock.advance(seconds=4.9)  # documented: a cached verification is trusted up to 5 s
    assert client.get("/api/v1/whoami", headers=bearer(secret)).status_code == 200
    clock.advance(seconds=0.1)
    unauthorized(client.get("/api/v1/whoami", headers=bearer(secret)), "revoked")


def test_forget_makes_a_revocation_immediate(engine: Engine, http: tuple[TestClient[Litestar], StaffAuthPlugin]) -> None:
    client, plugin = http
    secret = issue(engine, "treasury")
    assert client.get("/api/v1/whoami", headers=bearer(secret)).status_code == 200
    run_transaction(engine, lambda conn: revoke_token(conn, token_id(secret), actor=OPERATOR))
    plugin.authenticator.forget(token_id(secret))
    unauthorized(client.get("/api/v1/whoami", headers=bearer(secret)), "revoked")


def test_a_cached_token_stops_at_its_expiry(engine: Engine, clock: Clock, http: tuple[TestClient[Litestar], StaffAuthPlugin]) -> None:
    client, _ = http
    secret = issue(engine, "auditor", lifetime=timedelta(days=1), now=clock.now - timedelta(days=1) + timedelta(seconds=2))
    assert client.get("/api/v1/whoami", headers=bearer(secret)).status_code == 200
    clock.advance(seconds=2)  # still inside the cache time, but past expiry
    unauthorized(client.get("/api/v1/whoami", headers=bearer(secret)), "expired")


def test_last_use_is_written_at_most_once_a_minute(
    engine: Engine, clock: Clock, http: tuple[TestClient[Litestar], StaffAuthPlugin]
) -> None:
    client, _ = http
    secret = issue(engine, "clerk")

    def last_used() -> datetime | None:
        with read_transaction(engine) as conn:
            return get_token(conn, token_id(secret)).last_used_at

    assert last_used() is None
    first = clock.now
    assert client.get("/api/v1/whoami", headers=bearer(secret)).status_code == 200
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    for _ in range(5):
        clock.advance(seconds=0.9)
        assert client.get("/api/v1/whoami", headers=bearer(secret)).status_code == 200
    assert statements == []  # cache hits touch no database at all
    assert last_used() == first
    clock.advance(seconds=30)  # a fresh verification (one read), but within the minute: no write
    statements.clear()
    assert client.get("/api/v1/whoami", headers=bearer(secret)).status_code == 200
    assert any("FROM staff_tokens" in s for s in statements)
    assert [s for s in statements if s.lstrip().upper().startswith("UPDATE")] == []
    assert last_used() == first
    clock.advance(seconds=31)
    assert client.get("/api/v1/whoami", headers=bearer(secret)).status_code == 200
    assert last_used() == clock.now


# --- the CLI -------------------------------------------------------------------------------


def nofu(argv: list[str]) -> int:
    """Run ``nofu token …`` through the real entry point."""
    from gateway import cli

    return cli.main(argv)


@pytest.fixture
def cli_db(db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("NOFU_DATABASE_URL", db_url)
    monkeypatch.setenv("USER", "yamada")
    monkeypatch.setenv("LOGNAME", "yamada")
    return engine


def test_cli_create_list_revoke(cli_db: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert nofu(["token", "create", "--role", "clerk", "--name", "窓口 佐藤", "--expires-in-days", "30"]) == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert "Shown once" in err and secret not in err
    with read_transaction(cli_db) as conn:
        info = verify_token(conn, secret)
        (entry,) = audit.list_audit(conn).entries
    assert info.role == Role.CLERK and info.created_by == "cli:yamada"
    assert info.expires_at is not None and info.expires_at - info.created_at == timedelta(days=30)
    assert (entry.actor_id, entry.action) == ("cli:yamada", "token.create")

    assert nofu(["token", "list"]) == 0
    out, _ = capsys.readouterr()
    assert info.id in out and "窓口 佐藤" in out and "active" in out and secret.split("_")[2] not in out
    assert nofu(["token", "list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["id"], listed["status"], listed["last_used_at"]) == (info.id, "active", None)
    assert "secret_sha256" not in listed

    assert nofu(["token", "revoke", info.id]) == 0
    assert "revoked staff token" in capsys.readouterr().out
    with read_transaction(cli_db) as conn:
        error = refuses("auth.unauthorized", lambda: verify_token(conn, secret))
        assert error.detail["reason"] == "revoked"
        assert get_token(conn, info.id).revoked_by == "cli:yamada"
    assert nofu(["token", "revoke", info.id]) == 0
    assert "already revoked" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["token", "create", "--role", "admin", "--name", "x"], "auth.invalid_role"),
        (["token", "create", "--role", "clerk", "--name", ""], "auth.invalid_name"),
        (["token", "create", "--role", "clerk", "--name", "x", "--expires-in-days", "0"], "auth.invalid_expiry"),
        (["token", "revoke", "nosuchtoken2"], "auth.token_not_found"),
    ],
)
def test_cli_refusals_print_one_line_with_the_code(
    cli_db: Engine, capsys: pytest.CaptureFixture[str], argv: list[str], code: str
) -> None:
    assert nofu(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"nofu: error [{code}]: ") and err.count("\n") == 1


def test_cli_is_registered_in_nofu_when_wired(cli_db: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway import cli

    if token_commands not in cli.COMMAND_MODULES:
        pytest.skip("gateway.cli does not list gateway.commands.tokens yet")
    assert cli.main(["token", "create", "--role", "auditor", "--name", "監査"]) == 0
    assert capsys.readouterr().out.startswith("nofu_")
