"""The webhook inbox table (SQLAlchemy Core), on the metadata every nofu package shares.

The migration ``gateway/migrations/versions/0005_webhooks.py`` is the source of truth for DDL;
``tests/webhooks/test_schema.py`` checks both agree.

One row per provider event, keyed by the provider's event id (unique): a duplicate delivery
finds the row already there and changes nothing. The raw body is kept byte for byte.

States::

    pending ──claim──▶ processing ──▶ applied | skipped | ignored     (done)
       ▲                   │
       └──── retry ◀───────┤ (failure or "not yet": exponential backoff)
                           └──▶ dead          (after the attempt limit, or refused outright)
    poison                                    (a verified body that is not a readable event)

``next_attempt_at`` is when the row is next due: for ``pending`` the earliest retry, for
``processing`` the end of the claimer's lease (a worker killed mid-event leaves a lease that
runs out, and the row is claimed again).
"""

from __future__ import annotations

import sqlalchemy as sa

from ledger.schema import BigId, metadata

PENDING = "pending"
PROCESSING = "processing"
APPLIED = "applied"
SKIPPED = "skipped"
IGNORED = "ignored"
DEAD = "dead"
POISON = "poison"

STATES = (PENDING, PROCESSING, APPLIED, SKIPPED, IGNORED, DEAD, POISON)
DONE_STATES = (APPLIED, SKIPPED, IGNORED)
DUE_STATES = (PENDING, PROCESSING)
SOURCES = ("delivery", "backfill")

MAX_ERROR = 2000
MAX_OUTCOME = 500

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("provider", sa.String(16), nullable=False),
    # evt_… for events; "poison:<sha256 of the body>" for a verified body that is not an event.
    sa.Column("event_id", sa.String(255), nullable=False, unique=True),
    sa.Column("event_type", sa.String(100), nullable=True),
    # The id of data.object (pi_…, ch_…, re_…): what the event is about.
    sa.Column("object_id", sa.String(255), nullable=True),
    sa.Column("api_version", sa.String(64), nullable=True),
    sa.Column("livemode", sa.Boolean, nullable=True),
    # The provider's ``created`` (whole seconds) and when nofu stored the event.
    sa.Column("provider_created_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(12), nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("payload_sha256", sa.String(64), nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_token", sa.String(64), nullable=True),
    sa.Column("outcome", sa.String(MAX_OUTCOME), nullable=True),
    # The effect this event was the one to apply ("payment:pa_…:received"), unique: two events
    # about the same payment can never both be credited with recording its money.
    sa.Column("effect_key", sa.String(200), nullable=True, unique=True),
    sa.Column("last_error", sa.String(MAX_ERROR), nullable=True),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("replays", sa.Integer, nullable=False),
    sa.Index("ix_webhook_events_due", "state", "next_attempt_at", "id"),
    sa.Index("ix_webhook_events_object", "object_id", "id"),
)
