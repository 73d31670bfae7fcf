"""What staff see of the inbox: events by state (dead letters, poison …), one event whole,
and the count per state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.clock import to_utc
from ledger.keyset import decode_cursor, encode_cursor
from webhooks.errors import EventNotFound, InvalidQuery
from webhooks.schema import STATES, webhook_events

t = webhook_events
MAX_LIMIT = 500
MAX_SHOWN_PAYLOAD = 64 * 1024


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else to_utc(value)


@dataclass(frozen=True)
class StoredEvent:
    """One inbox row as staff see it. ``payload`` is the raw body as text (only when asked for
    one event; bytes that are not UTF-8 are shown with replacement characters)."""

    id: int
    event_id: str
    event_type: str | None
    object_id: str | None
    state: str
    source: str
    attempts: int
    replays: int
    received_at: datetime
    provider_created_at: datetime | None
    next_attempt_at: datetime
    processed_at: datetime | None
    lease_owner: str | None
    outcome: str | None
    last_error: str | None
    payload_sha256: str
    payload: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "event_id": self.event_id,
            "type": self.event_type,
            "object_id": self.object_id,
            "state": self.state,
            "source": self.source,
            "attempts": self.attempts,
            "replays": self.replays,
            "received_at": self.received_at.isoformat(),
            "provider_created_at": None if self.provider_created_at is None else self.provider_created_at.isoformat(),
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "processed_at": None if self.processed_at is None else self.processed_at.isoformat(),
            "lease_owner": self.lease_owner,
            "outcome": self.outcome,
            "last_error": self.last_error,
            "payload_sha256": self.payload_sha256,
        }
        if self.payload is not None:
            body["payload"] = self.payload
        return body


_SUMMARY = [c for c in t.c if c.name != "payload"]


def _to_event(row: sa.Row, *, with_payload: bool = False) -> StoredEvent:
    payload = None
    if with_payload:
        raw: bytes = row.payload
        payload = raw[:MAX_SHOWN_PAYLOAD].decode("utf-8", errors="replace")
    return StoredEvent(
        id=row.id,
        event_id=row.event_id,
        event_type=row.event_type,
        object_id=row.object_id,
        state=row.state,
        source=row.source,
        attempts=row.attempts,
        replays=row.replays,
        received_at=to_utc(row.received_at),
        provider_created_at=_aware(row.provider_created_at),
        next_attempt_at=to_utc(row.next_attempt_at),
        processed_at=_aware(row.processed_at),
        lease_owner=row.lease_owner,
        outcome=row.outcome,
        last_error=row.last_error,
        payload_sha256=row.payload_sha256,
        payload=payload,
    )


def _decode_cursor(cursor: str) -> int:
    last_id = decode_cursor(cursor, "before")
    if last_id is None:
        raise InvalidQuery("webhook.invalid_cursor", "the cursor is not one this service gave out")
    return last_id


def check_state(state: str | None) -> str | None:
    if state is not None and state not in STATES:
        raise InvalidQuery(
            "webhook.invalid_state", f"state must be one of {', '.join(STATES)}", field="state", allowed=list(STATES)
        )
    return state


def list_events(
    conn: Connection,
    *,
    state: str | None = None,
    event_type: str | None = None,
    object_id: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[StoredEvent], str | None]:
    """Events newest first, ``limit`` (1..500) at a time; the cursor continues with older ones."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery("webhook.invalid_limit", f"limit must be 1..{MAX_LIMIT}", field="limit")
    query = sa.select(*_SUMMARY)
    if check_state(state) is not None:
        query = query.where(t.c.state == state)
    if event_type:
        query = query.where(t.c.event_type == event_type)
    if object_id:
        query = query.where(t.c.object_id == object_id)
    if cursor is not None:
        query = query.where(t.c.id < _decode_cursor(cursor))
    rows = conn.execute(query.order_by(t.c.id.desc()).limit(limit + 1)).all()
    items = [_to_event(row) for row in rows[:limit]]
    return items, (encode_cursor(items[-1].id, "before") if len(rows) > limit else None)


def find_row(conn: Connection, key: str | int, *, lock: bool = False) -> sa.Row:
    """The row for an inbox id (``17``) or a provider event id (``evt_…``)."""
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit() and len(key) <= 18):
        where = t.c.id == int(key)
    elif isinstance(key, str) and 0 < len(key) <= 255:
        where = t.c.event_id == key
    else:
        raise EventNotFound("no stored event with this id")
    query = sa.select(t).where(where)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise EventNotFound("no stored event with this id", event=str(key))
    return row


def get_event(conn: Connection, key: str | int) -> StoredEvent:
    return _to_event(find_row(conn, key), with_payload=True)


def state_counts(conn: Connection) -> dict[str, int]:
    """How many events are in each state (every state named, zeros included)."""
    counts = dict.fromkeys(STATES, 0)
    for row in conn.execute(sa.select(t.c.state, sa.func.count()).group_by(t.c.state)):
        counts[row[0]] = int(row[1])
    return counts
