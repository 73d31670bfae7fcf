"""`/sandbox/*`: the test-only control surface (clock, payouts, webhook delivery, reset).

JSON in, JSON out; errors use Stripe's envelope with a stable `code`. Unauthenticated: the
sandbox is a local test double bound to 127.0.0.1 by SandboxServer.

    GET  /sandbox/clock                  → {"now", "frozen"}
    POST /sandbox/clock                  {"now": unix, "frozen": true} | {"advance": s} | {"reset": true}
    POST /sandbox/payouts/run            {"through": "pending"|"in_transit"|"paid"} → {"payouts": [...]}
    POST /sandbox/payouts/{id}/status    {"status": "in_transit"|"paid"|"failed", "failure_code"?}
    GET  /sandbox/webhook_endpoint       → {"url", "enabled_events"}
    POST /sandbox/webhook_endpoint       {"url": str|null, "secret"?: "whsec_…"}
    GET  /sandbox/deliveries             → {"mode", "queued": [evt ids], "busy", "attempts": [...]}
    POST /sandbox/deliveries/mode        {"mode": "automatic"|"manual"}
    POST /sandbox/deliveries/faults      {"drop","duplicate","delay","reorder": p, "delay_seconds",
                                          "seed", "rules": [{"action", "event_type"?, "event_id"?,
                                          "times"?, "delay_seconds"?}], "retry_delays"?: [s, ...]}
    POST /sandbox/deliveries/flush       {"events"?: [ids], "order"?: fifo|reverse|shuffle,
                                          "drop"?: [ids], "duplicate"?: [ids], "seed"?}
    POST /sandbox/deliveries/wait        {"timeout": s} → {"idle": bool}
    POST /sandbox/api_faults             {"count", "when": "before"|"after", "status": 5xx, "match"?}
    POST /sandbox/reset                  back to the initial state
    GET  /sandbox/paypay/{pi}            the approval page; POST …/approve or …/reject → 303
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Any

from gateway.sandbox.api_faults import ApiFault, ApiFaultError
from gateway.sandbox.delivery import DeliveryError, DeliveryFaults, DeliveryRule
from gateway.sandbox.engine import Sandbox
from gateway.sandbox.errors import StripeApiError, invalid_request
from gateway.sandbox.http import Request, Response, Router, json_bytes, json_response
from gateway.sandbox.paypay_page import decide, show_page
from gateway.sandbox.payment_methods import REDIRECT_TYPES
from gateway.sandbox.payouts import advance_payout, run_payouts
from gateway.sandbox.shapes import render

Obj = dict[str, Any]


class ControlApi:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.router = Router()
        add = self.router.add
        add("GET", "/sandbox/clock", self.get_clock)
        add("POST", "/sandbox/clock", self.set_clock)
        add("POST", "/sandbox/payouts/run", self.run_payouts)
        add("POST", "/sandbox/payouts/{id}/status", self.payout_status)
        add("GET", "/sandbox/webhook_endpoint", self.get_endpoint)
        add("POST", "/sandbox/webhook_endpoint", self.set_endpoint)
        add("GET", "/sandbox/deliveries", self.deliveries)
        add("POST", "/sandbox/deliveries/mode", self.set_mode)
        add("POST", "/sandbox/deliveries/faults", self.set_faults)
        add("POST", "/sandbox/deliveries/flush", self.flush)
        add("POST", "/sandbox/deliveries/wait", self.wait)
        add("POST", "/sandbox/api_faults", self.arm_api_fault)
        add("POST", "/sandbox/reset", self.reset)
        for method in REDIRECT_TYPES:
            add("GET", f"/sandbox/{method}/{{pi_id}}", self.redirect_page)
            add("POST", f"/sandbox/{method}/{{pi_id}}/approve", self.approve)
            add("POST", f"/sandbox/{method}/{{pi_id}}/reject", self.reject)

    async def handle(self, request: Request) -> Response:
        matched = self.router.match(request.method, request.path)
        if matched is None:
            return _error(invalid_request(f"No control endpoint {request.method} {request.path}", code="control_not_found", status=404))
        handler, path = matched
        try:
            body = _json_body(request)
            result = await handler(request, body, **path)
        except StripeApiError as error:
            return _error(error)
        except (DeliveryError, ApiFaultError) as error:
            return _error(invalid_request(str(error), code=error.code))
        except (TypeError, ValueError) as error:
            return _error(invalid_request(str(error), code="control_invalid"))
        return result if isinstance(result, Response) else json_response(200, result)

    # ---- clock ---------------------------------------------------------------------

    async def get_clock(self, request: Request, body: Obj) -> Obj:
        return {"now": self.sb.clock.now(), "frozen": self.sb.clock.frozen}

    async def set_clock(self, request: Request, body: Obj) -> Obj:
        """{"now": unix, "frozen": true} sets; {"advance": seconds} moves on; {"reset": true}."""
        _only(body, "now", "advance", "frozen", "reset")
        with self.sb.lock:
            if body.get("reset"):
                self.sb.clock.reset()
            if "now" in body:
                self.sb.clock.set(_int(body, "now"), frozen=bool(body.get("frozen", True)))
            if "advance" in body:
                seconds = _int(body, "advance")
                if seconds < 0:
                    raise invalid_request("advance must be ≥ 0", param="advance", code="clock_backwards")
                self.sb.clock.advance(seconds)
        return await self.get_clock(request, body)

    # ---- payouts -------------------------------------------------------------------

    async def run_payouts(self, request: Request, body: Obj) -> Obj:
        _only(body, "through")
        with self.sb.lock:
            payouts = run_payouts(self.sb, str(body.get("through", "pending")))
            return {"payouts": [render(self.sb, p) for p in payouts]}

    async def payout_status(self, request: Request, body: Obj, id: str) -> Obj:
        _only(body, "status", "failure_code")
        status = body.get("status")
        if not isinstance(status, str):
            raise invalid_request("status is required", param="status", code="payout_status_invalid")
        with self.sb.lock:
            return render(self.sb, advance_payout(self.sb, id, status, body.get("failure_code")))

    # ---- webhooks ------------------------------------------------------------------

    async def get_endpoint(self, request: Request, body: Obj) -> Obj:
        return {"url": self.sb.dispatcher.url, "enabled_events": list(self.sb.config.enabled_events)}

    async def set_endpoint(self, request: Request, body: Obj) -> Obj:
        _only(body, "url", "secret")
        secret = body.get("secret")
        if secret is not None and not str(secret).startswith("whsec_"):
            raise invalid_request("webhook secrets start with whsec_", param="secret", code="webhook_secret_invalid")
        self.sb.dispatcher.set_endpoint(body.get("url"), secret)
        return await self.get_endpoint(request, body)

    async def deliveries(self, request: Request, body: Obj) -> Obj:
        dispatcher = self.sb.dispatcher
        return {
            "mode": dispatcher.mode,
            "queued": dispatcher.queued(),
            "busy": dispatcher.busy(),
            "attempts": [asdict(a) for a in dispatcher.log()],
        }

    async def set_mode(self, request: Request, body: Obj) -> Obj:
        _only(body, "mode")
        self.sb.dispatcher.set_mode(str(body.get("mode")))
        return {"mode": self.sb.dispatcher.mode}

    async def set_faults(self, request: Request, body: Obj) -> Obj:
        _only(body, "drop", "duplicate", "delay", "reorder", "delay_seconds", "seed", "rules", "retry_delays")
        rules = tuple(DeliveryRule(**rule) for rule in body.get("rules", ()))
        faults = DeliveryFaults(
            **{k: body[k] for k in ("drop", "duplicate", "delay", "reorder", "delay_seconds", "seed") if k in body},
            rules=rules,
        )
        self.sb.dispatcher.set_faults(faults)
        if "retry_delays" in body:
            self.sb.dispatcher.set_retry_delays([float(d) for d in body["retry_delays"]])
        return {"faults": asdict(faults)}

    async def flush(self, request: Request, body: Obj) -> Obj:
        _only(body, "events", "order", "drop", "duplicate", "seed")
        attempts = await asyncio.to_thread(
            self.sb.dispatcher.flush,
            body.get("events"),
            order=str(body.get("order", "fifo")),
            drop=list(body.get("drop", ())),
            duplicate=list(body.get("duplicate", ())),
            seed=body.get("seed"),
        )
        return {"attempts": [asdict(a) for a in attempts]}

    async def wait(self, request: Request, body: Obj) -> Obj:
        _only(body, "timeout")
        timeout = float(body.get("timeout", 5.0))
        idle = await asyncio.to_thread(self.sb.dispatcher.wait_idle, timeout)
        return {"idle": idle}

    # ---- API faults ----------------------------------------------------------------

    async def arm_api_fault(self, request: Request, body: Obj) -> Obj:
        """{"count": n, "when": "before"|"after", "status": 5xx, "match": "POST /v1/payment_intents"}."""
        _only(body, "count", "when", "status", "match")
        fault = ApiFault(
            count=_int(body, "count"),
            when=str(body.get("when", "after")),
            status=int(body.get("status", 500)),
            match=str(body.get("match", "")),
        )
        with self.sb.lock:
            self.sb.api_faults.arm(fault)
        return {"armed": asdict(fault)}

    async def reset(self, request: Request, body: Obj) -> Obj:
        self.sb.reset()
        return {"reset": True}

    # ---- the redirect (PayPay) page ------------------------------------------------

    async def redirect_page(self, request: Request, body: Obj, pi_id: str) -> Response:
        return show_page(self.sb, request.path.split("/")[2], pi_id)

    async def approve(self, request: Request, body: Obj, pi_id: str) -> Response:
        return decide(self.sb, request, pi_id, approved=True)

    async def reject(self, request: Request, body: Obj, pi_id: str) -> Response:
        return decide(self.sb, request, pi_id, approved=False)


def _json_body(request: Request) -> Obj:
    content_type = request.header("content-type") or ""
    if not request.body or not content_type.startswith("application/json"):
        return {}  # HTML form posts (the PayPay buttons) carry nothing the handlers need
    try:
        body = json.loads(request.body)
    except json.JSONDecodeError as error:
        raise invalid_request(f"Invalid JSON body: {error}", code="control_invalid_json") from None
    if not isinstance(body, dict):
        raise invalid_request("The body must be a JSON object", code="control_invalid_json")
    return body


def _only(body: Obj, *allowed: str) -> None:
    for name in body:
        if name not in allowed:
            raise invalid_request(f"Unknown field: {name}", param=name, code="control_unknown_field")


def _int(body: Obj, name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_request(f"{name} must be an integer", param=name, code="control_invalid")
    return value


def _error(error: StripeApiError) -> Response:
    return Response(error.status, json_bytes(error.body()))
