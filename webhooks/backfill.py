"""Backfill: events the provider has that the inbox lacks are stored like any delivery.

The provider lists its events (Stripe: ``GET /v1/events``, the last 30 days); each one not yet
in the inbox is stored with source ``backfill`` and then processed by the same processor, through
the same handlers, as a delivered one. A lost delivery therefore heals without a special code
path, and running a backfill twice (or while deliveries arrive) stores nothing twice: the inbox
is keyed by the provider's event id.

The body stored for a backfilled event is the listed event serialised as JSON, not the bytes a
delivery would have carried (nobody signed it: it came over our authenticated API call).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy.engine import Engine

from ledger.clock import utc_now
from ledger.db import run_transaction
from webhooks.inbox import known_ids, parse, store

BATCH = 100


@dataclass(frozen=True)
class BackfillReport:
    """``seen`` events listed by the provider; ``added`` were missing and are now stored;
    ``present`` were already in the inbox; ``unreadable`` could not be read as events."""

    seen: int = 0
    added: int = 0
    present: int = 0
    unreadable: int = 0


def serialise(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def backfill(
    engine: Engine,
    events: Iterable[Mapping[str, Any]],
    *,
    clock: Callable[[], datetime] = utc_now,
    on_stored: Callable[[], None] | None = None,
) -> BackfillReport:
    """Store every listed event the inbox lacks (batches of 100, one transaction each)."""
    seen = added = present = unreadable = 0
    iterator = iter(events)
    while batch := list(islice(iterator, BATCH)):
        seen += len(batch)
        readable = [(event, parse(event)) for event in batch]
        unreadable += sum(1 for _, parsed in readable if parsed is None)
        good = [(event, parsed) for event, parsed in readable if parsed is not None]

        def work(conn: Any, good: list[Any] = good) -> tuple[int, int]:
            have = known_ids(conn, [parsed.event_id for _, parsed in good])
            new = old = 0
            for event, parsed in good:
                if parsed.event_id in have:
                    old += 1
                    continue
                stored = store(conn, serialise(event), now=clock(), source="backfill")
                new, old = (new, old + 1) if stored.duplicate else (new + 1, old)
            return new, old

        new, old = run_transaction(engine, work)
        added += new
        present += old
        if new and on_stored is not None:
            on_stored()
    return BackfillReport(seen=seen, added=added, present=present, unreadable=unreadable)
