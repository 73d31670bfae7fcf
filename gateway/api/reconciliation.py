"""Staff API for the daily reconciliation (消込), ``/api/v1/reconciliations``:

- ``POST /``                               ``{"date": "YYYY-MM-DD", "pull"?: bool}`` run (or re-run) a day
  (``reconciliation:run``); pulls the provider's statement unless ``pull`` is false
- ``POST /{date}/bank-statements``         the designated account's statement, raw body: CSV or
  全銀 入出金取引明細 (``reconciliation:run``); importing it twice adds nothing
- ``GET  /{date}``                         the run, its totals and breaks (``reconciliation:read``)
- ``GET  /{date}/report.csv``              the report for Excel: UTF-8 with BOM (``reconciliation:read``)
- ``GET  /{date}/breaks/{id}``             one break with its history (``reconciliation:read``)
- ``POST /{date}/breaks/{id}/assign``      ``{"assignee", "expected_version"?}`` (``reconciliation:run``)
- ``POST /{date}/breaks/{id}/comment``     ``{"comment", "expected_version"?}``
- ``POST /{date}/breaks/{id}/resolve``     ``{"reason", "expected_version"?}``
- ``POST /{date}/breaks/{id}/escalate``    ``{"reason", "expected_version"?}``
- ``POST /{date}/signoff``                 sign the day off and close it in the ledger (``reconciliation:signoff``)

Every change is audited (``reconciliation.run``, ``reconciliation.bank_import``,
``reconciliation.break_assign|comment|resolve|escalate``, ``reconciliation.signoff``) with the
subject ``reconciliation:<date>``; break actions and sign-off write their audit row in the same
transaction as the change. Refusals are problem details with ``reconciliation.*`` codes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Stream
from sqlalchemy.engine import Connection

from gateway.audit import Actor
from gateway.audit import record as audit
from gateway.auth import StaffIdentity, require
from gateway.problems import Problem
from gateway.providers.statements import ReconciliationWiring, build_wiring
from gateway.services import Services
from gateway.webhook_handlers import build_processor
from ledger.clock import utc_now
from ledger.db import read_transaction, run_transaction
from reconciliation import (
    BankImport,
    Break,
    ReconciliationConfig,
    RunOutcome,
    Staff,
    assign,
    comment,
    csv_chunks,
    escalate,
    get_break,
    import_statement,
    notes_of,
    parse_day,
    parse_statement,
    reconcile_day,
    report,
    resolve,
    sign_off,
)
from reconciliation.bank import MAX_BYTES
from reconciliation.report import break_json, run_record

WIRING_STATE = "reconciliation_wiring"  # tests may put their own ReconciliationWiring here
ACTIONS: dict[str, Callable[..., Break]] = {"assign": assign, "comment": comment, "resolve": resolve, "escalate": escalate}
ACTION_FIELDS = {"assign": "assignee", "comment": "comment", "resolve": "reason", "escalate": "reason"}


def wiring_of(app_state: Any, services: Services) -> ReconciliationWiring:
    """The provider statement, links and healer of this app (tests may set their own).

    The healer gets a processor of its own: a ``Processor`` serves one thread, and the app's
    runs in the background (it claims events under leases, so two processors never apply one)."""
    override = app_state.get(WIRING_STATE)
    if isinstance(override, ReconciliationWiring):
        return override
    provider = services.payments.provider
    processor = build_processor(services.engine, services.payments, services.settings) if provider else None
    return build_wiring(services.engine, provider, processor)


def config_of(app_state: Any) -> ReconciliationConfig:
    found = app_state.get("reconciliation_config")
    return found if isinstance(found, ReconciliationConfig) else ReconciliationConfig()


def staff_of(actor: Actor) -> Staff:
    return Staff(actor.id, actor.name)


def subject(day: date) -> str:
    return f"reconciliation:{day.isoformat()}"


def run_day(app_state: Any, services: Services, day: date, actor: Actor, *, pull: bool = True) -> RunOutcome:
    """Run the day with the configured provider and audit it (shared with the staff page)."""
    wiring = wiring_of(app_state, services)
    if pull and wiring.source is None:
        raise Problem(
            409, "reconciliation.provider_not_configured", "No payment provider is configured",
            "set NOFU_STRIPE_SECRET_KEY (or NOFU_STRIPE_API_BASE for the sandbox), or run with pull=false",
        )  # fmt: skip
    outcome = reconcile_day(
        services.engine, day, actor=actor.id, source=wiring.source if pull else None, links=wiring.links,
        healer=wiring.healer if pull else None, config=config_of(app_state),
    )  # fmt: skip
    run_transaction(
        services.engine,
        lambda conn: audit(conn, actor, "reconciliation.run", subject(day), {
            "run": outcome.run_number, "report_sha256": outcome.report_sha256, "pulled": outcome.pulled_transactions,
            "breaks": {k: v["count"] for k, v in outcome.summary["breaks"].items()},  # type: ignore[attr-defined]
            "healed": [h.match_ref for h in outcome.healed if h.healed], "payouts_posted": list(outcome.posted_payouts),
        }),  # fmt: skip
    )
    return outcome


def act_on_break(
    services: Services, day: date, break_id: int, action: str, text: object, actor: Actor,
    expected_version: int | None = None,
) -> Break:  # fmt: skip
    """One queue action and its audit row, in one transaction (shared with the staff page)."""

    def work(conn: Connection) -> Break:
        done = ACTIONS[action](conn, day, break_id, text, staff=staff_of(actor), now=utc_now(),
                               expected_version=expected_version)  # fmt: skip
        audit(conn, actor, f"reconciliation.break_{action}", subject(day),
              {"break_id": done.id, "key": done.key, "status": done.status.value, ACTION_FIELDS[action]: str(text)[:500]})  # fmt: skip
        return done

    return run_transaction(services.engine, work)


def sign_off_day(services: Services, day: date, actor: Actor) -> dict[str, Any]:
    def work(conn: Connection) -> dict[str, Any]:
        signed = sign_off(conn, day, staff=staff_of(actor), now=utc_now())
        audit(conn, actor, "reconciliation.signoff", subject(day),
              {"close_head_seq": signed.close_head_seq, "close_head_hash": signed.close_head_hash})  # fmt: skip
        return {"date": day.isoformat(), "signed_off_by": signed.signed_off_by,
                "signed_off_at": signed.signed_off_at.isoformat(),
                "ledger_close": {"head_seq": signed.close_head_seq, "head_hash": signed.close_head_hash}}  # fmt: skip

    return run_transaction(services.engine, work)


def import_bank_statement(services: Services, app_state: Any, data: bytes, actor: Actor, day: date | None = None) -> BankImport:
    statement = parse_statement(data, config_of(app_state))

    def work(conn: Connection) -> BankImport:
        done = import_statement(conn, statement, actor=actor.id, now=utc_now())
        if not done.already_imported:
            audit(conn, actor, "reconciliation.bank_import", subject(day) if day else f"bank_import:{done.import_id}",
                  {"import_id": done.import_id, "format": done.format, "lines": done.lines, "new_lines": done.new_lines,
                   "sha256": statement.sha256})  # fmt: skip
        return done

    return run_transaction(services.engine, work)


def _expected_version(body: dict[str, Any]) -> int | None:
    value = body.get("expected_version")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise Problem(400, "request.invalid", "expected_version must be an integer", field="expected_version")
    return value


class ReconciliationController(Controller):
    path = "/api/v1/reconciliations"
    tags = ["reconciliation"]

    @post("/", guards=[require("reconciliation:run")], sync_to_thread=True, status_code=200)
    def run(
        self, request: Request[Any, Any, Any], services: NamedDependency[Services],
        staff: NamedDependency[StaffIdentity], data: JSONBody[dict[str, Any]],
    ) -> dict[str, Any]:  # fmt: skip
        """Run (or re-run) a business day; answers the day's report."""
        if not isinstance(data, dict) or not isinstance(data.get("date"), str):
            raise Problem(400, "request.missing_fields", "Missing fields", "date (YYYY-MM-DD)", fields=["date"])
        pull = data.get("pull", True)
        if not isinstance(pull, bool):
            raise Problem(400, "request.invalid", "pull must be true or false", field="pull")
        day = parse_day(data["date"])
        outcome = run_day(request.app.state, services, day, staff.actor, pull=pull)
        with read_transaction(services.engine) as conn:
            body = report(conn, day)
        body["healed"] = [{"match_ref": h.match_ref, "healed": h.healed, "note": h.note} for h in outcome.healed]
        body["pulled_transactions"] = outcome.pulled_transactions
        body["posted_payouts"] = list(outcome.posted_payouts)
        return body

    @post(
        "/{day:str}/bank-statements", guards=[require("reconciliation:run")], status_code=200,
        request_max_body_size=MAX_BYTES,
    )  # fmt: skip
    async def bank_statement(
        self, request: Request[Any, Any, Any], services: NamedDependency[Services],
        staff: NamedDependency[StaffIdentity], day: FromPath[str],
    ) -> dict[str, Any]:  # fmt: skip
        """Import a bank statement (CSV or 全銀 入出金取引明細) sent as the raw body."""
        import anyio

        business_day = parse_day(day)
        data = await request.body()
        done = await anyio.to_thread.run_sync(
            lambda: import_bank_statement(services, request.app.state, data, staff.actor, business_day)
        )
        return {"import_id": done.import_id, "format": done.format, "lines": done.lines,
                "new_lines": done.new_lines, "already_imported": done.already_imported}  # fmt: skip

    @get("/{day:str}", guards=[require("reconciliation:read")], sync_to_thread=True)
    def get_day(
        self, services: NamedDependency[Services], day: FromPath[str], limit: FromQuery[int] = 1000
    ) -> dict[str, Any]:
        if not 1 <= limit <= 10_000:
            raise Problem(400, "request.invalid", "limit must be 1 to 10000", field="limit")
        with read_transaction(services.engine) as conn:
            return report(conn, parse_day(day), limit=limit)

    @get("/{day:str}/report.csv", guards=[require("reconciliation:read")], sync_to_thread=True)
    def report_csv(self, services: NamedDependency[Services], day: FromPath[str]) -> Stream:
        """The day's report as CSV (UTF-8 with BOM, CRLF), streamed."""
        business_day = parse_day(day)
        with read_transaction(services.engine) as conn:
            run_record(conn, business_day)  # 404 before streaming starts

        def chunks() -> Iterator[bytes]:
            with read_transaction(services.engine) as conn:
                yield from csv_chunks(conn, business_day)

        filename = f"reconciliation-{business_day.isoformat()}.csv"
        return Stream(
            chunks(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
        )

    @get("/{day:str}/breaks/{break_id:int}", guards=[require("reconciliation:read")], sync_to_thread=True)
    def get_one_break(self, services: NamedDependency[Services], day: FromPath[str], break_id: FromPath[int]) -> dict[str, Any]:
        business_day = parse_day(day)
        with read_transaction(services.engine) as conn:
            found = get_break(conn, business_day, break_id)
            body = break_json(found)
            body["history"] = [
                {"kind": n.kind, "actor": {"id": n.actor_id, "name": n.actor_name}, "body": n.body,
                 "at": n.created_at.isoformat()}  # fmt: skip
                for n in notes_of(conn, found.id)
            ]
        return body

    @post("/{day:str}/breaks/{break_id:int}/{action:str}", guards=[require("reconciliation:run")],
          sync_to_thread=True, status_code=200)  # fmt: skip
    def break_action(
        self, services: NamedDependency[Services], staff: NamedDependency[StaffIdentity], day: FromPath[str],
        break_id: FromPath[int], action: FromPath[str], data: JSONBody[dict[str, Any]],
    ) -> dict[str, Any]:  # fmt: skip
        if action not in ACTIONS:
            raise Problem(404, "http.not_found", "Not found", f"no break action {action!r}; one of {', '.join(ACTIONS)}")
        if not isinstance(data, dict):
            raise Problem(400, "request.invalid", "The body must be a JSON object")
        field = ACTION_FIELDS[action]
        done = act_on_break(services, parse_day(day), break_id, action, data.get(field), staff.actor,
                            _expected_version(data))  # fmt: skip
        return break_json(done)

    @post("/{day:str}/signoff", guards=[require("reconciliation:signoff")], sync_to_thread=True, status_code=200)
    def signoff(self, services: NamedDependency[Services], staff: NamedDependency[StaffIdentity], day: FromPath[str]) -> dict[str, Any]:
        return sign_off_day(services, parse_day(day), staff.actor)


__all__ = ["ReconciliationController", "Response", "act_on_break", "import_bank_statement", "run_day", "sign_off_day"]
