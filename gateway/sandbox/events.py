"""Recording Events: every state change leaves one, with a snapshot of the object."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.sandbox.context import RequestContext
from gateway.sandbox.ids import new_id
from gateway.sandbox.records import EventRecord

if TYPE_CHECKING:
    from gateway.sandbox.engine import Sandbox

EVENT_RETENTION_SECONDS = 30 * 24 * 60 * 60  # GET /v1/events returns the last 30 days


def endpoint_wants(patterns: tuple[str, ...], event_type: str) -> bool:
    """Stripe's enabled_events matching: "*", an exact type, or a "charge.*" prefix."""
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def record_event(
    sb: Sandbox,
    event_type: str,
    snapshot: dict[str, Any],
    ctx: RequestContext,
    previous_attributes: dict[str, Any] | None = None,
) -> EventRecord:
    """Store the event and hand it to webhook delivery.

    Invariant: `snapshot` is the object as it is at this moment; later changes to the
    object never alter a recorded event (shapes.render returns fresh dicts).
    """
    deliver = sb.webhook_url is not None and endpoint_wants(sb.config.enabled_events, event_type)
    event = sb.store.add(
        EventRecord(
            id=new_id("evt"),
            created=sb.clock.now(),
            seq=sb.store.next_seq(),
            type=event_type,
            data_object=snapshot,
            previous_attributes=previous_attributes,
            request_id=ctx.request_id,
            idempotency_key=ctx.idempotency_key,
            pending_webhooks=1 if deliver else 0,
        )
    )
    if deliver:
        sb.dispatcher.enqueue(event.id, event.type)
    return event
