"""Replaying a stored event: staff send it through the processor again.

A replay puts the event back to ``pending`` with a fresh attempt count, due now. It is safe for
any finished event (dead, skipped, ignored, even applied): handlers are idempotent by event and
by provider object, so a replay of an applied event finds its effect there and is skipped.
Refused (``webhook.replay_refused``) for events that are already due or in hand (pending,
processing) and for poison, whose body is not a readable event.

The caller records who replayed (``on_replay`` runs in the same transaction: the gateway writes
the audit row there, so the replay and its audit row commit together).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Connection

from ledger.clock import to_utc
from webhooks.errors import ReplayRefused
from webhooks.listing import StoredEvent, find_row, get_event
from webhooks.schema import PENDING, POISON, PROCESSING, webhook_events

REPLAYABLE = ("dead", "skipped", "ignored", "applied")


def replay(
    conn: Connection,
    key: str | int,
    *,
    now: datetime,
    on_replay: Callable[[Connection, StoredEvent], None] | None = None,
) -> StoredEvent:
    """Make the stored event ``key`` (inbox id or ``evt_…``) due again; see the module docstring."""
    row = find_row(conn, key, lock=True)
    if row.state in (PENDING, PROCESSING):
        raise ReplayRefused(f"the event is already {row.state}: it will be processed anyway", state=row.state)
    if row.state == POISON:
        raise ReplayRefused("a poison event is not a readable event: there is nothing to replay", state=row.state)
    before = get_event(conn, row.id)
    conn.execute(
        webhook_events.update()
        .where(webhook_events.c.id == row.id)
        .values(
            state=PENDING, attempts=0, next_attempt_at=to_utc(now), replays=row.replays + 1,
            outcome=None, lease_token=None, lease_owner=None,
        )
    )
    if on_replay is not None:
        on_replay(conn, before)
    return get_event(conn, row.id)
