"""The inbox: every verified provider event is stored here first, before any work is done.

Invariants:
- one row per provider event id: storing an event that is already there changes nothing (the
  insert does nothing on conflict), so duplicate deliveries and backfill overlaps are harmless;
- the raw body is kept byte for byte with its SHA-256; nothing is parsed into it or out of it
  later except by reading those bytes again;
- a verified body that is not a readable event (not JSON, not an object, no id or type) is kept
  as ``poison`` under ``poison:<sha256>`` so staff see it, and a repeat of it is a duplicate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ledger.clock import to_utc
from webhooks.schema import PENDING, POISON, webhook_events

PROVIDER = "stripe"
MAX_ID = 255
MAX_TYPE = 100


@dataclass(frozen=True)
class ParsedEvent:
    """What the inbox indexes of an event (the payload itself stays raw).

    Attributes:
        event_id: the provider's id (``evt_…``).
        event_type: e.g. ``payment_intent.succeeded``.
        object_id: ``data.object.id`` (``pi_…``, ``ch_…``, ``re_…``), if any.
        created: the provider's ``created`` time, if given.
    """

    event_id: str
    event_type: str
    object_id: str | None
    created: datetime | None
    api_version: str | None
    livemode: bool | None


@dataclass(frozen=True)
class Stored:
    """The result of storing one body: its inbox key, and whether it was new."""

    event_id: str
    event_type: str | None
    duplicate: bool
    poison: bool


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _short_text(value: Any, limit: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def parse(payload: bytes | Mapping[str, Any]) -> ParsedEvent | None:
    """The event's identifying fields, or None when the body is not a readable event."""
    if isinstance(payload, Mapping):
        data: Any = payload
    else:
        try:
            data = json.loads(payload)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
    if not isinstance(data, dict):
        return None
    event_id = _short_text(data.get("id"), MAX_ID)
    event_type = _short_text(data.get("type"), MAX_TYPE)
    if event_id is None or event_type is None or event_id.startswith("poison:"):
        return None
    if data.get("object", "event") != "event":
        return None
    inner = data.get("data")
    obj = inner.get("object") if isinstance(inner, dict) else None
    object_id = _short_text(obj.get("id"), MAX_ID) if isinstance(obj, dict) else None
    created = data.get("created")
    stamp = (
        datetime.fromtimestamp(created, timezone.utc)
        if isinstance(created, int) and not isinstance(created, bool) and 0 <= created < 2**34
        else None
    )
    livemode = data.get("livemode")
    return ParsedEvent(
        event_id=event_id,
        event_type=event_type,
        object_id=object_id,
        created=stamp,
        api_version=_short_text(data.get("api_version"), 64),
        livemode=livemode if isinstance(livemode, bool) else None,
    )


def _insert(conn: Connection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(webhook_events)


def store(conn: Connection, payload: bytes, *, now: datetime, source: str = "delivery") -> Stored:
    """Store one verified body in the caller's transaction (see the module invariants)."""
    parsed = parse(payload)
    sha = digest(payload)
    now = to_utc(now)
    values: dict[str, Any] = {
        "provider": PROVIDER,
        "received_at": now,
        "source": source,
        "payload": payload,
        "payload_sha256": sha,
        "attempts": 0,
        "next_attempt_at": now,
        "replays": 0,
    }
    if parsed is None:
        key = f"poison:{sha}"
        values.update(event_id=key, state=POISON, outcome="not a readable event")
    else:
        key = parsed.event_id
        values.update(
            event_id=key,
            event_type=parsed.event_type,
            object_id=parsed.object_id,
            api_version=parsed.api_version,
            livemode=parsed.livemode,
            provider_created_at=parsed.created,
            state=PENDING,
            # Due from the provider's time: a backlog (a late delivery, a backfill) is worked
            # through roughly in the provider's order, not in the order it reached us.
            next_attempt_at=min(now, parsed.created) if parsed.created is not None else now,
        )
    inserted = conn.execute(
        _insert(conn).values(**values).on_conflict_do_nothing(index_elements=["event_id"]).returning(webhook_events.c.id)
    ).first()
    return Stored(
        event_id=key,
        event_type=None if parsed is None else parsed.event_type,
        duplicate=inserted is None,
        poison=parsed is None,
    )


def known_ids(conn: Connection, event_ids: list[str]) -> set[str]:
    """Which of these provider event ids the inbox already holds."""
    if not event_ids:
        return set()
    rows = conn.execute(sa.select(webhook_events.c.event_id).where(webhook_events.c.event_id.in_(event_ids)))
    return {row.event_id for row in rows}
