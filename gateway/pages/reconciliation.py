"""The treasury's reconciliation page (消込): one business day's totals, charts of the day's
collections by 税目 and by hour (inline SVG drawn on the server: the CSP allows no inline script
or style, and none is needed), payouts, and the break list with its actions.

    GET  /staff/login                                   paste a staff API token
    POST /staff/login | /staff/logout                   start / end the page session
    GET  /staff/reconciliations                         → the previous business day
    GET  /staff/reconciliations/{date}                  the day (reconciliation:read)
    POST /staff/reconciliations/{date}/run              run or re-run it (reconciliation:run)
    POST /staff/reconciliations/{date}/bank-statement   upload the bank's statement (reconciliation:run)
    POST /staff/reconciliations/{date}/breaks/{id}/{assign|comment|resolve|escalate}
    POST /staff/reconciliations/{date}/signoff          (reconciliation:signoff)

Session: the staff member's API token is kept in an HttpOnly, SameSite=Strict cookie limited to
``/staff`` (Secure under https) and checked on every request exactly as the API checks a bearer
token (revocation and expiry included). Every form carries the CSRF token. Actions go through
the same functions as the API (``gateway.api.reconciliation``), so they are audited alike.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import anyio
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie, UploadFile
from litestar.exceptions import NotAuthorizedException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from gateway.api.reconciliation import (
    ACTIONS,
    act_on_break,
    import_bank_statement,
    run_day,
    sign_off_day,
    wiring_of,
)
from gateway.auth.errors import Unauthorized
from gateway.auth.guard import authenticator_of
from gateway.auth.identity import StaffIdentity
from gateway.problems import Problem
from gateway.services import Services
from ledger.clock import JST, business_date, utc_now
from ledger.db import read_transaction
from reconciliation import (
    CATEGORY_NAMES_JA,
    BreakCategory,
    ReconciliationError,
    notes_of,
    parse_day,
    report,
)
from reconciliation.errors import RunNotFound

SESSION_COOKIE = "nofu_staff"
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow"}
STATUS_JA = {"open": "未対応", "escalated": "エスカレーション中", "resolved": "解決済", "healed": "自動修復", "cleared": "解消"}
RUN_STATUS_JA = {"reconciled": "照合済(未承認)", "signed_off": "承認済(締め済)"}
ACTION_JA = {"assign": "担当", "comment": "コメント", "resolve": "解決", "escalate": "エスカレーション"}
CHART_WIDTH = 640


def yen(amount: int | None) -> str:
    if amount is None:
        return ""
    return f"−¥{-amount:,}" if amount < 0 else f"¥{amount:,}"


def _services(request: Request[Any, Any, Any]) -> Services:
    services: Services = request.app.state.services
    return services


async def page_identity(request: Request[Any, Any, Any]) -> StaffIdentity | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return await authenticator_of(request).identify([f"Bearer {token}"])
    except Unauthorized:
        return None


async def require_page(request: Request[Any, Any, Any], permission: str) -> StaffIdentity:
    identity = await page_identity(request)
    if identity is None:
        raise NotAuthorizedException("sign in")
    if not identity.can(permission):
        raise Problem(403, "auth.forbidden", "Not allowed", f"the {identity.role.value} role does not hold {permission}")
    return identity


def _session_cookie(request: Request[Any, Any, Any], value: str, *, max_age: int | None = None) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE, value=value, path="/staff", httponly=True, samesite="strict", max_age=max_age,
        secure=_services(request).settings.public_base_url.startswith("https://"),
    )  # fmt: skip


def bar_chart_by_tax(collections: list[dict[str, Any]]) -> dict[str, Any]:
    """Horizontal bars, one per account the day's money went to (税目, 過誤納金, 延滞金)."""
    rows = [c for c in collections if c["amount"] > 0]
    top = max((c["amount"] for c in rows), default=0) or 1
    label_w, row_h = 200, 28
    bars = []
    for i, c in enumerate(rows):
        width = max(1, round((CHART_WIDTH - label_w - 110) * c["amount"] / top))
        bars.append({"y": i * row_h + 4, "width": width, "label": c["name"], "value": yen(c["amount"]),
                     "count": c["count"], "text_y": i * row_h + 20, "value_x": label_w + width + 6})  # fmt: skip
    return {"bars": bars, "height": max(row_h, len(rows) * row_h + 8), "label_w": label_w, "width": CHART_WIDTH}


def bar_chart_by_hour(by_hour: list[dict[str, int]]) -> dict[str, Any]:
    """24 vertical bars: the day's charges (gross) per JST hour."""
    top = max((h["amount"] for h in by_hour), default=0) or 1
    plot_h, step, left = 160, (CHART_WIDTH - 40) // 24, 30
    bars = []
    for h in by_hour:
        height = round(plot_h * h["amount"] / top) if h["amount"] else 0
        bars.append({"x": left + h["hour"] * step, "y": 10 + plot_h - height, "height": height, "w": step - 4,
                     "hour": h["hour"], "value": yen(h["amount"]), "count": h["count"],
                     "label_x": left + h["hour"] * step + (step - 4) / 2})  # fmt: skip
    return {"bars": bars, "height": plot_h + 40, "axis_y": plot_h + 10, "label_y": plot_h + 28, "width": CHART_WIDTH,
            "max": yen(top if top != 1 else 0)}  # fmt: skip


def day_context(services: Services, app_state: Any, day: date, identity: StaffIdentity) -> dict[str, Any]:
    with read_transaction(services.engine) as conn:
        try:
            body = report(conn, day, limit=2000)
        except RunNotFound:
            body = None
        notes = {}
        if body is not None:
            for item in body["breaks"][:200]:
                notes[item["id"]] = [
                    {"kind": ACTION_JA.get(n.kind, n.kind), "who": n.actor_name, "body": n.body,
                     "at": n.created_at.astimezone(JST).strftime("%m/%d %H:%M")}  # fmt: skip
                    for n in notes_of(conn, item["id"])
                ]
    signed_off = body is not None and body["status"] == "signed_off"
    context: dict[str, Any] = {
        "day": day.isoformat(),
        "prev_day": (day - timedelta(days=1)).isoformat(),
        "next_day": (day + timedelta(days=1)).isoformat() if day < business_date(utc_now()) else None,
        "staff": identity,
        "can_run": identity.can("reconciliation:run") and not signed_off,
        "can_sign": identity.can("reconciliation:signoff") and body is not None and not signed_off,
        "provider": wiring_of(app_state, services).source is not None,
        "run": None,
    }
    if body is None:
        return context
    summary = body["summary"]
    provider = summary["provider"]
    clearing = summary["clearing"]
    context["run"] = {
        "status": RUN_STATUS_JA.get(body["status"], body["status"]),
        "signed_off": signed_off,
        "runs": body["runs"],
        "last_run_at": datetime.fromisoformat(body["last_run_at"]).astimezone(JST).strftime("%Y-%m-%d %H:%M JST"),
        "last_run_by": body["last_run_by"],
        "digest": body["report_sha256"][:16],
        "open_breaks": body["open_breaks"],
        "signed_off_by": body["signed_off_by"],
        "ledger_close": body["ledger_close"],
    }
    context["totals"] = [
        ("決済総額(gross)", yen(provider["gross"]), f"{provider['charges']}件"),
        ("返金", yen(provider["refunds"]), f"{provider['refund_count']}件"),
        ("手数料(実額)", yen(provider["fees"]), ""),
        ("手数料(契約料率 3.6%)", yen(provider["expected_fees"]), ""),
        ("手取り(net)", yen(provider["net"]), ""),
        ("決済代行預け金 前日残高", yen(clearing["opening"]), ""),
        ("決済代行預け金 当日残高", yen(clearing["closing"]), ""),
        ("当日分 未入金額", yen(clearing["day_outstanding"]), "入金(payout)着金で 0"),
    ]
    context["collections"] = [{**c, "amount_text": yen(c["amount"])} for c in summary["collections"]]
    context["tax_chart"] = bar_chart_by_tax(summary["collections"])
    context["hour_chart"] = bar_chart_by_hour(summary["by_hour"])
    context["payouts"] = [{**p, "amount_text": yen(p["amount"]), "fees_text": yen(p["fees"])} for p in summary["payouts"]]
    context["categories"] = [
        {"name": CATEGORY_NAMES_JA[BreakCategory(k)], "code": k, "count": v["count"], "amount": yen(v["amount"])}
        for k, v in sorted(summary["breaks"].items())
    ]
    context["breaks"] = [
        {
            **b,
            "amount_text": yen(b["amount"]),
            "provider_text": yen(b["provider_amount"]),
            "ledger_text": yen(b["ledger_amount"]),
            "status_ja": STATUS_JA.get(b["status"], b["status"]),
            "open": b["status"] in ("open", "escalated"),
            "notes": notes.get(b["id"], []),
        }
        for b in body["breaks"]
    ]
    context["breaks_truncated"] = body["breaks_truncated"]
    context["summary_json"] = json.dumps(summary, ensure_ascii=False)
    return context


def render_day(request: Request[Any, Any, Any], day: date, identity: StaffIdentity, *, error: ReconciliationError | Problem | None = None,
               notice: str | None = None, status: int = 200) -> Template:  # fmt: skip
    context = day_context(_services(request), request.app.state, day, identity)
    if error is not None:
        code = getattr(error, "code", "error")
        message = getattr(error, "message", None) or getattr(error, "detail", None) or str(error)
        context["error"] = {"code": code, "message": message}
    context["notice"] = notice
    return Template(
        template_name="staff/reconciliation.html",
        context={**context, "municipality": _services(request).settings.municipality_name},
        status_code=status,
        headers=PAGE_HEADERS,
    )


def _back(day: date, anchor: str = "", notice: str = "") -> Redirect:
    query = f"?done={notice}" if notice else ""
    return Redirect(path=f"/staff/reconciliations/{day.isoformat()}{query}{anchor}", status_code=303)


NOTICES = {"run": "照合を実行しました", "import": "銀行明細を取り込みました", "signoff": "承認し、帳簿を締めました",
           **{a: f"{ACTION_JA[a]}を記録しました" for a in ACTIONS}}  # fmt: skip


def login_redirect(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    """Unauthenticated page requests go to the sign-in form (the API keeps answering 401)."""
    return Redirect(path="/staff/login", status_code=303)


class StaffReconciliationPages(Controller):
    path = "/staff"
    include_in_schema = False
    exception_handlers = {NotAuthorizedException: login_redirect}  # type: ignore[dict-item]

    @get("/login")
    async def login_form(self, request: Request[Any, Any, Any]) -> Template:
        return Template(
            template_name="staff/login.html",
            context={"municipality": _services(request).settings.municipality_name, "login_error": None},
            headers=PAGE_HEADERS,
        )

    @post("/login", status_code=303)
    async def login(self, request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        token = str(form.get("token") or "").strip()
        try:
            await authenticator_of(request).identify([f"Bearer {token}"])
        except Unauthorized:
            return Template(
                template_name="staff/login.html",
                context={"municipality": _services(request).settings.municipality_name,
                         "login_error": "トークンが正しくないか、失効しています (auth.unauthorized)"},  # fmt: skip
                status_code=401,
                headers=PAGE_HEADERS,
            )
        redirect = Redirect(path="/staff/reconciliations", status_code=303)
        redirect.cookies.append(_session_cookie(request, token, max_age=8 * 3600))
        return redirect

    @post("/logout", status_code=303)
    async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        redirect = Redirect(path="/staff/login", status_code=303)
        redirect.cookies.append(_session_cookie(request, "", max_age=0))
        return redirect

    @get("/reconciliations")
    async def latest(self, request: Request[Any, Any, Any]) -> Redirect:
        await require_page(request, "reconciliation:read")
        yesterday = business_date(utc_now()) - timedelta(days=1)
        return Redirect(path=f"/staff/reconciliations/{yesterday.isoformat()}", status_code=303)

    @get("/reconciliations/{day:str}")
    async def day_page(self, request: Request[Any, Any, Any], day: FromPath[str], done: FromQuery[str | None] = None) -> Template:
        identity = await require_page(request, "reconciliation:read")
        business_day = parse_day(day)
        return await anyio.to_thread.run_sync(
            lambda: render_day(request, business_day, identity, notice=NOTICES.get(done or ""))
        )

    async def _guarded(self, request: Request[Any, Any, Any], day: str, permission: str, work: Any, *,
                       anchor: str = "", notice: str = "") -> Response[Any]:  # fmt: skip
        identity = await require_page(request, permission)
        business_day = parse_day(day)
        try:
            await anyio.to_thread.run_sync(lambda: work(business_day, identity))
        except (ReconciliationError, Problem) as exc:
            refused = exc
            status = int(getattr(refused, "http_status", None) or getattr(refused, "status", None) or 400)
            return await anyio.to_thread.run_sync(
                lambda: render_day(request, business_day, identity, error=refused, status=status)
            )
        return _back(business_day, anchor, notice)

    @post("/reconciliations/{day:str}/run", status_code=303)
    async def run(self, request: Request[Any, Any, Any], day: FromPath[str]) -> Response[Any]:
        services = _services(request)
        pull = wiring_of(request.app.state, services).source is not None
        return await self._guarded(
            request, day, "reconciliation:run",
            lambda d, who: run_day(request.app.state, services, d, who.actor, pull=pull), notice="run",
        )  # fmt: skip

    @post("/reconciliations/{day:str}/bank-statement", status_code=303)
    async def bank_statement(self, request: Request[Any, Any, Any], day: FromPath[str]) -> Response[Any]:
        form = await request.form()
        upload = form.get("statement")
        data = await upload.read() if isinstance(upload, UploadFile) else b""
        services = _services(request)
        return await self._guarded(
            request, day, "reconciliation:run",
            lambda d, who: import_bank_statement(services, request.app.state, data, who.actor, d), notice="import",
        )  # fmt: skip

    @post("/reconciliations/{day:str}/breaks/{break_id:int}/{action:str}", status_code=303)
    async def break_action(
        self, request: Request[Any, Any, Any], day: FromPath[str], break_id: FromPath[int], action: FromPath[str]
    ) -> Response[Any]:
        if action not in ACTIONS:
            raise Problem(404, "http.not_found", "Not found")
        form = await request.form()
        text = form.get("text")
        version_text = str(form.get("version") or "")
        version = int(version_text) if version_text.isdigit() else None
        services = _services(request)
        return await self._guarded(
            request, day, "reconciliation:run",
            lambda d, who: act_on_break(services, d, break_id, action, text, who.actor, version),
            anchor=f"#break-{break_id}", notice=action,
        )  # fmt: skip

    @post("/reconciliations/{day:str}/signoff", status_code=303)
    async def signoff(self, request: Request[Any, Any, Any], day: FromPath[str]) -> Response[Any]:
        services = _services(request)
        return await self._guarded(
            request, day, "reconciliation:signoff", lambda d, who: sign_off_day(services, d, who.actor), notice="signoff"
        )

