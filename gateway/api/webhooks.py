"""Webhooks over HTTP: the provider's intake and the staff API for the inbox.

    POST /webhooks/stripe                         Stripe's deliveries (signed, no staff token; a
                                                  plain ASGI route, so not in the OpenAPI schema)
    GET  /api/v1/webhooks/events?state=…          list stored events (payments:read)
    GET  /api/v1/webhooks/events/{id}             one event with its raw payload (payments:read)
    GET  /api/v1/webhooks/stats                   how many events are in each state (payments:read)
    POST /api/v1/webhooks/events/{id}/replay      process a stored event again (webhooks:replay)

``{id}`` is the inbox id (``17``) or the provider's event id (``evt_…``). The intake answers 200
once the event is durably stored — before any work is done — with ``{"received": true,
"event_id", "duplicate", "poison"}``; refusals are problem details (``webhook.*`` codes, see
``webhooks/errors.py``) and store nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from litestar import Controller, Litestar, Request, asgi, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, MethodNotAllowedException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.types import Receive, Scope, Send

from gateway.audit import record as audit
from gateway.auth import StaffIdentity, require
from gateway.services import Services
from gateway.webhook_handlers import WebhookRuntime
from ledger.clock import utc_now
from ledger.db import read_transaction, run_transaction
from webhooks import (
    StoredEvent,
    get_event,
    list_events,
    replay,
    state_counts,
)
from webhooks.intake import check_content_type, check_size


def runtime_of(request: Request[Any, Any, Any]) -> WebhookRuntime:
    return _runtime(request.app)


def _runtime(app: Litestar) -> WebhookRuntime:
    runtime = app.state.webhooks
    assert isinstance(runtime, WebhookRuntime)
    return runtime


_JSON: Final = (b"content-type", b"application/json")
_OPTIONS: Final = [(b"allow", b"OPTIONS, POST")]
_NOT_ALLOWED: Final = {"Allow": "POST, OPTIONS"}


@asgi("/webhooks/stripe", copy_scope=False)
async def stripe_webhook(scope: Scope, receive: Receive, send: Send) -> None:
    """``POST``: verify ``Stripe-Signature`` over the raw body, store the event, answer 200.

    A plain ASGI handler: on the busiest route, Litestar's request and response machinery (the
    handler's parameters, ``Request``, header containers, ``Response``) cost about 110 µs of CPU
    a delivery, three times the signature check. It still runs inside the app: refusals are
    raised and become problem details in the app's exception handlers, and ``gateway.security``
    adds the security headers. Other methods are answered as Litestar answers them for a
    ``POST`` route (``OPTIONS`` 204, else 405).
    """
    if scope["type"] != "http":
        raise ClientException()  # a websocket: what Litestar answers for an HTTP-only route
    method = scope["method"]
    if method != "POST":
        if method != "OPTIONS":
            raise MethodNotAllowedException(headers=_NOT_ALLOWED)
        await send({"type": "http.response.start", "status": 204, "headers": _OPTIONS})
        await send({"type": "http.response.body", "body": b""})
        return
    intake = _runtime(scope["litestar_app"]).intake
    headers = dict(reversed(scope["headers"]))  # the first of a repeated name, as ``Headers.get``
    content_type = _text(headers.get(b"content-type"))
    check_content_type(content_type)
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit():
        check_size(int(declared), intake.max_bytes)
    body = await _read_body(receive, intake.max_bytes)
    if body is None:
        return  # the sender went away: nothing stored, nobody to answer
    stored = await intake.receive_async(body, _text(headers.get(b"stripe-signature")), content_type)
    content = msgspec.json.encode(
        {"received": True, "event_id": stored.event_id, "duplicate": stored.duplicate, "poison": stored.poison}
    )
    answer = [_JSON, (b"content-length", str(len(content)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": answer})
    await send({"type": "http.response.body", "body": content})


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


async def _read_body(receive: Receive, max_bytes: int) -> bytes | None:
    """The whole body, refused (``webhook.payload_too_large``) as soon as it grows past
    ``max_bytes`` — a chunked body has no ``Content-Length`` to check first, and a declared one
    may be wrong. None if the sender disconnected first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        check_size(size, max_bytes)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class WebhookController(Controller):
    path = "/api/v1/webhooks"
    tags = ["webhooks"]

    @get("/events", guards=[require("payments:read")], sync_to_thread=True)
    def list_(
        self,
        services: NamedDependency[Services],
        state_filter: Annotated[str | None, QueryParameter(name="state")] = None,
        event_type: Annotated[str | None, QueryParameter(name="type")] = None,
        object_id: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> dict[str, Any]:
        """Stored events, newest first; ``state`` = pending | processing | applied | skipped |
        ignored | dead | poison. ``next_cursor`` continues with older events."""
        with read_transaction(services.engine) as conn:
            items, next_cursor = list_events(
                conn, state=state_filter, event_type=event_type, object_id=object_id, cursor=cursor, limit=limit
            )
        return {"items": [item.as_json() for item in items], "next_cursor": next_cursor}

    @get("/stats", guards=[require("payments:read")], sync_to_thread=True)
    def stats(self, services: NamedDependency[Services]) -> dict[str, Any]:
        """How many events are in each state (dead and poison need a person)."""
        with read_transaction(services.engine) as conn:
            return {"states": state_counts(conn)}

    @get("/events/{key:str}", guards=[require("payments:read")], sync_to_thread=True)
    def get_one(self, services: NamedDependency[Services], key: FromPath[str]) -> dict[str, Any]:
        """One stored event with its raw payload."""
        with read_transaction(services.engine) as conn:
            return get_event(conn, key).as_json()

    @post("/events/{key:str}/replay", guards=[require("webhooks:replay")], sync_to_thread=True, status_code=200)
    def replay_one(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        staff: NamedDependency[StaffIdentity],
        key: FromPath[str],
    ) -> dict[str, Any]:
        """Process a stored event again (dead letters after the cause is fixed). Audited."""

        def record(conn: Any, event: StoredEvent) -> None:
            audit(
                conn, staff.actor, "webhook.replay", f"webhook_event:{event.event_id}",
                {"type": event.event_type, "previous_state": event.state, "attempts": event.attempts},
            )  # fmt: skip

        replayed = run_transaction(services.engine, lambda conn: replay(conn, key, now=utc_now(), on_replay=record))
        runtime_of(request).processor.wake()
        return replayed.as_json()
