"""Provider webhooks: verified, stored first, applied exactly once.

    intake = Intake(engine, secrets=("whsec_…",), on_stored=processor.wake)
    stored = intake.receive(raw_body, request.headers["stripe-signature"], content_type)  # then 2xx

    registry = HandlerRegistry()
    registry.register("payment_intent.*", on_payment)      # function(conn, event) -> Outcome
    processor = Processor(engine, registry)
    processor.drain()                                       # or BackgroundProcessor(processor).start()

    backfill(engine, provider_events_since(...))            # lost deliveries heal through the inbox
    list_events(conn, state="dead"); replay(conn, "evt_…", now=…)

Modules: ``signature`` (Stripe-Signature with the SDK), ``inbox`` (the table's writer),
``intake`` (checks then store), ``committer`` (group commit), ``writers`` (one SQLite writer), ``handlers`` (registry and the handler contract), ``processor``
(claiming, leases, applying, backoff), ``retry`` (the backoff policy), ``listing`` and ``replay``
(what staff do), ``backfill``. Errors: ``errors`` (``webhook.*``). This package knows nothing of
HTTP or of payments; the gateway wires it (``gateway/webhook_handlers.py``, ``gateway/api/webhooks.py``).
Design notes and figures: docs/webhooks.md.
"""

from __future__ import annotations

from webhooks.backfill import BackfillReport, backfill
from webhooks.committer import GroupCommitter
from webhooks.errors import (
    BackfillFailed,
    EventNotFound,
    IntakeRefused,
    InvalidQuery,
    NotConfigured,
    PayloadTooLarge,
    ReplayRefused,
    SignatureInvalid,
    SignatureMissing,
    TimestampOutsideTolerance,
    UnsupportedMediaType,
    WebhookError,
)
from webhooks.handlers import (
    Handler,
    HandlerRegistry,
    InboxEvent,
    NotYet,
    Outcome,
    OutcomeKind,
    Outside,
    Refuse,
    Triage,
)
from webhooks.inbox import ParsedEvent, Stored, parse, store, store_many
from webhooks.intake import MAX_BODY_BYTES, Intake
from webhooks.listing import StoredEvent, get_event, list_events, state_counts
from webhooks.processor import BackgroundProcessor, Claim, Processor
from webhooks.replay import replay
from webhooks.retry import RetryPolicy
from webhooks.schema import STATES, webhook_events
from webhooks.signature import DEFAULT_TOLERANCE, verify

__all__ = [
    "DEFAULT_TOLERANCE",
    "MAX_BODY_BYTES",
    "STATES",
    "BackfillFailed",
    "BackfillReport",
    "BackgroundProcessor",
    "Claim",
    "EventNotFound",
    "GroupCommitter",
    "Handler",
    "HandlerRegistry",
    "InboxEvent",
    "Intake",
    "IntakeRefused",
    "InvalidQuery",
    "NotConfigured",
    "NotYet",
    "Outcome",
    "OutcomeKind",
    "Outside",
    "ParsedEvent",
    "PayloadTooLarge",
    "Processor",
    "Refuse",
    "ReplayRefused",
    "RetryPolicy",
    "SignatureInvalid",
    "SignatureMissing",
    "Stored",
    "StoredEvent",
    "TimestampOutsideTolerance",
    "Triage",
    "UnsupportedMediaType",
    "WebhookError",
    "backfill",
    "get_event",
    "list_events",
    "parse",
    "replay",
    "state_counts",
    "store",
    "store_many",
    "verify",
    "webhook_events",
]
