"""Webhooks over HTTP: the provider's intake and the staff API for the inbox.

    POST /webhooks/stripe                         Stripe's deliveries (signed, no staff token)
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

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery, QueryParameter

from gateway.audit import record as audit
from gateway.auth import StaffIdentity, require
from gateway.services import Services
from gateway.webhook_handlers import WebhookRuntime
from ledger.clock import utc_now
from ledger.db import read_transaction, run_transaction
from webhooks import (
    MAX_BODY_BYTES,
    PayloadTooLarge,
    StoredEvent,
    get_event,
    list_events,
    replay,
    state_counts,
)
from webhooks.intake import check_content_type, check_size


def runtime_of(request: Request[Any, Any, Any]) -> WebhookRuntime:
    runtime = request.app.state.webhooks
    assert isinstance(runtime, WebhookRuntime)
    return runtime


@post(
    "/webhooks/stripe",
    status_code=200,
    tags=["webhooks"],
    request_max_body_size=MAX_BODY_BYTES,
    summary="Stripe webhook deliveries",
)
async def stripe_webhook(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Verify ``Stripe-Signature`` over the raw body, store the event, answer 200."""
    intake = runtime_of(request).intake
    content_type = request.headers.get("content-type")
    check_content_type(content_type)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        check_size(int(declared), intake.max_bytes)
    try:
        body = await request.body()
    except HTTPException as exc:
        if exc.status_code == 413:
            raise PayloadTooLarge(f"the body is larger than {intake.max_bytes} bytes", max_bytes=intake.max_bytes) from None
        raise
    stored = await intake.receive_async(body, request.headers.get("stripe-signature"), content_type)
    return Response(
        {"received": True, "event_id": stored.event_id, "duplicate": stored.duplicate, "poison": stored.poison},
        status_code=200,
    )


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
