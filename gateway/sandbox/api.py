"""The `/v1/*` Stripe API: authentication, idempotency, routing, error rendering.

Every response carries `Request-Id: req_…` and `Stripe-Version`. Each request runs with
the sandbox lock held, so it is atomic with respect to every other request.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from typing import Any

from gateway.sandbox.api_faults import ApiFault
from gateway.sandbox.balance import current_balance
from gateway.sandbox.context import RequestContext
from gateway.sandbox.engine import Sandbox
from gateway.sandbox.errors import StripeApiError, invalid_request, resource_missing
from gateway.sandbox.events import EVENT_RETENTION_SECONDS, endpoint_wants
from gateway.sandbox.expand import expand
from gateway.sandbox.forms import Params, decode_form
from gateway.sandbox.http import Request, Response, Router, json_bytes
from gateway.sandbox.idempotency import SavedResponse, check_key, fingerprint
from gateway.sandbox.ids import new_request_id
from gateway.sandbox.listing import PAGE_PARAMS, page
from gateway.sandbox.params import (
    created_filter,
    exclusive,
    get_bool,
    get_expand,
    get_list,
    get_str,
    reject_unknown,
)
from gateway.sandbox.payment_intents import (
    cancel_payment_intent,
    confirm_payment_intent,
    create_payment_intent,
    update_payment_intent,
)
from gateway.sandbox.payouts import get_payout
from gateway.sandbox.records import (
    BalanceTransactionRecord,
    ChargeRecord,
    EventRecord,
    PaymentIntentRecord,
    PaymentMethodRecord,
    PayoutRecord,
    Record,
    RefundRecord,
)
from gateway.sandbox.refunds import create_refund, update_refund
from gateway.sandbox.shapes import render

log = logging.getLogger(__name__)
Obj = dict[str, Any]
ApiHandler = Callable[[Params, dict[str, str], RequestContext], Obj]


class StripeApi:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.router = Router()
        self._routes()

    # ---- request pipeline ----------------------------------------------------------

    def handle(self, request: Request) -> Response:
        request_id = new_request_id()
        version = request.header("stripe-version") or self.sb.config.api_version
        response = self._handle(request, request_id)
        return response.with_headers(("Request-Id", request_id), ("Stripe-Version", version))

    def _handle(self, request: Request, request_id: str) -> Response:
        try:
            api_key = self._authenticate(request)
            matched = self.router.match(request.method, request.path)
            if matched is None:
                raise invalid_request(
                    f"Unrecognized request URL ({request.method}: {request.path}). Please see "
                    "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                    status=404,
                )
            handler, path_params = matched
            raw = request.body if request.method == "POST" else request.query
            params = decode_form(raw)
            key = request.header("idempotency-key") if request.method == "POST" else None
            if key is not None:
                check_key(key)
            ctx = RequestContext(request_id, key, request.base_url, api_key)
            with self.sb.lock:
                fault = self.sb.api_faults.take(request.method, request.path)
                if fault is not None and fault.when == "before":
                    return _injected(fault)
                response = self._run(request, handler, path_params, params, ctx, key, api_key)
                return response if fault is None else _injected(fault)
        except StripeApiError as error:
            return Response(error.status, json_bytes(error.body()))
        except Exception:  # a sandbox bug must still answer like Stripe's 500
            log.exception("sandbox error on %s %s", request.method, request.path)
            body = {"error": {"type": "api_error", "message": "An unknown error occurred in the sandbox."}}
            return Response(500, json_bytes(body), headers=(("Stripe-Should-Retry", "false"),))

    def _authenticate(self, request: Request) -> str:
        header = request.header("authorization") or ""
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                credential = base64.b64decode(credential.encode(), validate=True).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                credential = ""
        elif scheme.lower() != "bearer":
            credential = ""
        credential = credential.strip()
        if not credential:
            raise invalid_request(
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). "
                "See https://stripe.com/docs/api#authentication for details.",
                status=401,
            )
        if not self.sb.config.accepts_key(credential):
            raise invalid_request(f"Invalid API Key provided: {_masked(credential)}", status=401)
        return credential

    def _run(
        self, request: Request, handler: ApiHandler, path_params: dict[str, str],
        params: Params, ctx: RequestContext, key: str | None, api_key: str,
    ) -> Response:
        now = self.sb.clock.now()
        if key is not None:
            saved = self.sb.idempotency.lookup(api_key, key, request.method, request.path, params, now)
            if saved is not None:
                return Response(
                    saved.status, saved.body,
                    headers=(("Idempotent-Replayed", "true"), ("Original-Request", saved.request_id)),
                )
        try:
            obj = handler(params, path_params, ctx)
            expand(obj, get_expand(params), self._lookup)
            status, body, keep = 200, json_bytes(obj), True
        except StripeApiError as error:
            status, body, keep = error.status, json_bytes(error.body()), error.saved_by_idempotency
        if key is not None and keep:
            self.sb.idempotency.save(
                api_key, key,
                SavedResponse(request.method, request.path, fingerprint(params), status, body, ctx.request_id or "", now),
            )
        return Response(status, body)

    def _lookup(self, object_id: str) -> Obj | None:
        record = self.sb.store.find(object_id)
        if record is None or isinstance(record, EventRecord):
            return None
        return render(self.sb, record)

    # ---- routes --------------------------------------------------------------------

    def _routes(self) -> None:
        add = self.router.add
        add("GET", "/v1/payment_intents", self.list_payment_intents)
        add("POST", "/v1/payment_intents", self.create_payment_intent)
        add("GET", "/v1/payment_intents/{id}", self.retrieve(PaymentIntentRecord, "payment_intent"))
        add("POST", "/v1/payment_intents/{id}", self.update_payment_intent)
        add("POST", "/v1/payment_intents/{id}/confirm", self.confirm_payment_intent)
        add("POST", "/v1/payment_intents/{id}/cancel", self.cancel_payment_intent)
        add("GET", "/v1/payment_methods/{id}", self.retrieve(PaymentMethodRecord, "PaymentMethod"))
        add("GET", "/v1/charges", self.list_charges)
        add("GET", "/v1/charges/{id}", self.retrieve(ChargeRecord, "charge"))
        add("GET", "/v1/refunds", self.list_refunds)
        add("POST", "/v1/refunds", self.create_refund)
        add("GET", "/v1/refunds/{id}", self.retrieve(RefundRecord, "refund"))
        add("POST", "/v1/refunds/{id}", self.update_refund)
        add("GET", "/v1/balance", self.balance)
        add("GET", "/v1/balance_transactions", self.list_balance_transactions)
        add("GET", "/v1/balance_transactions/{id}", self.retrieve(BalanceTransactionRecord, "balance transaction"))
        add("GET", "/v1/payouts", self.list_payouts)
        add("GET", "/v1/payouts/{id}", self.retrieve_payout)
        add("GET", "/v1/events", self.list_events)
        add("GET", "/v1/events/{id}", self.retrieve_event)

    def retrieve(self, kind: type[Record], label: str) -> ApiHandler:
        def handler(params: Params, path: dict[str, str], ctx: RequestContext) -> Obj:
            reject_unknown(params, ())
            record = self.sb.store.get(path["id"], kind)
            if record is None:
                raise resource_missing(label, path["id"])
            return render(self.sb, record)

        return handler

    def _list(
        self, kind: type[Record], url: str, params: Params,
        filters: dict[str, Callable[[Any], bool]], allowed: tuple[str, ...],
    ) -> Obj:
        reject_unknown(params, (*PAGE_PARAMS, "created", *allowed))
        created = created_filter(params)
        records = [
            r for r in self.sb.store.newest_first(kind)
            if created(r.created) and all(keep(r) for keep in filters.values())
        ]
        return page(self.sb.store, records, params, url, lambda r: render(self.sb, r))

    def list_payment_intents(self, params: Params, path: dict[str, str], ctx: RequestContext) -> Obj:
        return self._list(PaymentIntentRecord, "/v1/payment_intents", params, {}, ())

    def create_payment_intent(self, params: Params, path: dict[str, str], ctx: RequestContext) -> Obj:
        return render(self.sb, create_payment_intent(self.sb, params, ctx))

    def update_payment_intent(self, params: Params, path: dict[str, str], ctx: RequestContext) -> Obj:
        return render(self.sb, update_payment_intent(self.sb, path["id"], params, ctx))

    def confirm_payment_intent(self, params: Params, path: dict[str, str], ctx: RequestContext) -> Obj:
        return render(self.sb, confirm_payment_intent(self.sb, path["id"], params, ctx))

    def cancel_payment_intent(self, params: Params, path: dict[str, str], ctx: RequestContext) -> Obj:
        return render(self.sb, cancel_payment_intent(self.sb, path["id"], params, ctx))

    def list_charges(self, params: Params, path: dict[str, str], ctx: RequestContext) -> Obj:
        pi_id = get_str(params, "payment_intent")
        filters: dict[str, Callable[[Any], bool]] = {}
        if pi_id:
            filters["payment_intent"] = lambda r: r.payment_intent == pi_id
        return self._list(ChargeRecord, "/v1/charges", params, filters, ("payment_intent",))

    def list_refunds(self, params: Params, path: dict[str, str], ctx: RequestContext) -> Obj:
        filters: dict[str, Callable[[Any], bool]] = {}
        for name in ("charge", "payment_intent"):
            value = get_str(params, name)
            if value:
                filters[name] = _attribute_equals(name, value)
        return self._list(RefundRecord, "/v1/refunds", params, filters, ("charge", "payment_intent"))

    def create_refund(self, params: Params, path: dict[str, str], ctx: RequestContext) -> Obj:
        return render(self.sb, create_refund(self.sb, params, ctx))

    def update_refund(self, params: Params, path: dict[str, str], ctx: RequestContext) -> Obj:
        return render(self.sb, update_refund(self.sb, path["id"], params, ctx))

    def balance(self, params: Params, path: dict[str, str], ctx: RequestContext) -> Obj:
        reject_unknown(params, ())
        return current_balance(self.sb)

    def list_balance_transactions(self, params: Params, path: dict[str, str], ctx: RequestContext) -> Obj:
        filters: dict[str, Callable[[Any], bool]] = {}
        payout_id = get_str(params, "payout")
        if payout_id:
            get_payout_or_400(self.sb, payout_id)
            filters["payout"] = lambda r: r.payout == payout_id
        for name in ("type", "source", "currency"):
            value = get_str(params, name)
            if value:
                filters[name] = _attribute_equals(name, value)
        return self._list(
            BalanceTransactionRecord, "/v1/balance_transactions", params, filters,
            ("payout", "type", "source", "currency"),
        )

    def retrieve_payout(self, params: Params, path: dict[str, str], ctx: RequestContext) -> Obj:
        reject_unknown(params, ())
        return render(self.sb, get_payout(self.sb, path["id"]))

    def list_payouts(self, params: Params, path: dict[str, str], ctx: RequestContext) -> Obj:
        filters: dict[str, Callable[[Any], bool]] = {}
        status = get_str(params, "status")
        if status:
            filters["status"] = lambda r: r.status == status
        arrival = created_filter(params, "arrival_date")
        filters["arrival_date"] = lambda r: arrival(r.arrival_date)
        return self._list(PayoutRecord, "/v1/payouts", params, filters, ("status", "arrival_date"))

    def list_events(self, params: Params, path: dict[str, str], ctx: RequestContext) -> Obj:
        exclusive(params, "type", "types")
        filters: dict[str, Callable[[Any], bool]] = {}
        oldest = self.sb.clock.now() - EVENT_RETENTION_SECONDS
        filters["retention"] = lambda r: r.created >= oldest
        single = get_str(params, "type")
        many = get_list(params, "types")
        if single:
            filters["type"] = lambda r: endpoint_wants((single,), r.type)
        if many:
            patterns = tuple(str(t) for t in many)
            filters["types"] = lambda r: endpoint_wants(patterns, r.type)
        delivered = get_bool(params, "delivery_success")
        if delivered is not None:
            filters["delivery_success"] = lambda r: (r.pending_webhooks == 0) == delivered
        return self._list(EventRecord, "/v1/events", params, filters, ("type", "types", "delivery_success"))

    def retrieve_event(self, params: Params, path: dict[str, str], ctx: RequestContext) -> Obj:
        reject_unknown(params, ())
        record = self.sb.store.get(path["id"], EventRecord)
        if record is None:
            raise resource_missing("event", path["id"])
        return render(self.sb, record)


def get_payout_or_400(sb: Sandbox, payout_id: str) -> PayoutRecord:
    record = sb.store.get(payout_id, PayoutRecord)
    if record is None:
        raise resource_missing("payout", payout_id, param="payout")
    return record


def _attribute_equals(name: str, value: str) -> Callable[[Any], bool]:
    return lambda record: bool(getattr(record, name) == value)


def _injected(fault: ApiFault) -> Response:
    body = {"error": {"type": "api_error", "message": f"Injected sandbox failure ({fault.when} execution)."}}
    return Response(fault.status, json_bytes(body))


def _masked(key: str) -> str:
    return f"{key[:8]}{'*' * 4}{key[-4:]}" if len(key) > 12 else "****"
