"""The handler registry: what the processor does with each event type.

A handler is ``function(conn, event) -> Outcome``. It runs inside the event's own transaction
(``conn``), together with the row update that records its outcome: what it writes and the
"done" mark commit or roll back together, so an event's effect is recorded exactly once.

A handler says how it went by what it returns or raises:

- ``Outcome.applied(note, effect)``: it changed something (``effect`` names a one-time effect,
  kept unique across events by the inbox); ``Outcome.skipped(note)``: nothing to change
  (a stale event, or its effect is already there: the same payment reported by another event);
  ``Outcome.ignored(note)``: an event nofu does not act on.
- ``NotYet(reason)``: it cannot apply yet (e.g. a refund update for a payment not known yet): the
  transaction rolls back and the event is retried later with backoff.
- ``Outside(step, reason)``: it needs work that must not run inside a database transaction — a
  question to the provider (the object's current state) or a service that runs its own
  transactions. The transaction rolls back, the processor runs ``step()`` between transactions
  (still holding the event's lease), then runs the handler again with the result in
  ``event.prepared``. Such a step must be idempotent: a worker may die after it and before the
  outcome is recorded, and the next worker runs it again. A step may itself raise ``NotYet`` or
  ``Refuse`` (the provider says "processing"; the service says the object is not ours).
- ``Refuse(reason)``: it can never apply (e.g. an object that is not nofu's): dead-lettered at
  once for staff.
- any other exception: a failure, retried with backoff, dead-lettered after the limit.

A registry may also have a **triage** (``register_triage``): ``function(conn, events) ->
Triage``, given a whole claimed batch before any of it is applied. It reads what it needs once for
the batch and returns the outcomes of the events that change nothing — ``skipped`` or ``ignored``
only, decided from facts that cannot be undone (money already recorded, an attempt already
terminal, an object that is not ours) — and may name events to look at again after the rest of
the batch has run (a later event about the same object as an earlier one). The processor records
those outcomes together; every other event goes through its handler in its own transaction.
Without a triage every event goes through its handler.

The gateway (composition root) registers the payment and refund handlers and the payment triage
(``gateway/webhook_handlers.py``); event types without a handler are stored and ``ignored``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.engine import Connection


class OutcomeKind(StrEnum):
    APPLIED = "applied"
    SKIPPED = "skipped"
    IGNORED = "ignored"


@dataclass(frozen=True)
class Outcome:
    """How an event went. ``effect`` names, for an applied event, the one-time effect it applied
    (``payment:pa_…:received``): the inbox keeps effect keys unique, so if another event already
    applied that effect this one is recorded as skipped instead (see ``webhooks.processor``)."""

    kind: OutcomeKind
    note: str
    effect: str | None = None

    @classmethod
    def applied(cls, note: str, effect: str | None = None) -> Outcome:
        return cls(OutcomeKind.APPLIED, note, effect)

    @classmethod
    def skipped(cls, note: str) -> Outcome:
        return cls(OutcomeKind.SKIPPED, note)

    @classmethod
    def ignored(cls, note: str) -> Outcome:
        return cls(OutcomeKind.IGNORED, note)


class NotYet(Exception):
    """The event cannot apply yet; retry it later."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Refuse(Exception):
    """The event can never apply; dead-letter it now for staff."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Outside(Exception):
    """Run ``step`` outside any transaction, then call the handler again with its result."""

    def __init__(self, step: Callable[[], Any], reason: str) -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason


@dataclass(frozen=True)
class InboxEvent:
    """One stored event as a handler sees it.

    Attributes:
        id: the inbox row id.
        event_id, type, object_id, created: as stored (see ``webhooks.inbox``).
        payload: the parsed JSON body (read-only by convention).
        attempts: how many times it has been claimed, this time included.
        prepared: the result of the handler's last ``Outside`` step, None before any.
        steps: how many ``Outside`` steps ran in this processing.
    """

    id: int
    event_id: str
    type: str
    object_id: str | None
    created: datetime | None
    payload: Mapping[str, Any] = field(repr=False)
    attempts: int
    prepared: Any = None
    steps: int = 0

    @property
    def data_object(self) -> Mapping[str, Any]:
        data = self.payload.get("data")
        obj = data.get("object") if isinstance(data, Mapping) else None
        return obj if isinstance(obj, Mapping) else {}

    @property
    def previous_attributes(self) -> Mapping[str, Any]:
        data = self.payload.get("data")
        previous = data.get("previous_attributes") if isinstance(data, Mapping) else None
        return previous if isinstance(previous, Mapping) else {}

    def with_state(self, prepared: Any, steps: int) -> InboxEvent:
        """This event as it stands after ``steps`` Outside steps, the last of which gave ``prepared``."""
        if prepared is self.prepared and steps == self.steps:
            return self
        return replace(self, prepared=prepared, steps=steps)

    @staticmethod
    def load_payload(raw: bytes) -> Mapping[str, Any]:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("the payload is not a JSON object")
        return data


Handler = Callable[[Connection, InboxEvent], Outcome]


@dataclass(frozen=True)
class Triage:
    """What a triage decided for a batch (see the module docstring).

    Attributes:
        decided: inbox row id → outcome, for events that change nothing (skipped or ignored).
        again: inbox row ids to triage again once the batch's other events have run.
    """

    decided: Mapping[int, Outcome] = field(default_factory=dict)
    again: frozenset[int] = frozenset()


TriageFn = Callable[[Connection, "list[InboxEvent]"], Triage]


class HandlerRegistry:
    """Event type → handler. A pattern ending in ``.*`` matches a family (``charge.*``); an
    exact type wins over a pattern, a longer pattern over a shorter one."""

    def __init__(self) -> None:
        self._exact: dict[str, Handler] = {}
        self._prefixes: dict[str, Handler] = {}
        self.triage: TriageFn | None = None

    def register_triage(self, triage: TriageFn) -> None:
        if self.triage is not None:
            raise ValueError("a triage is already registered")
        self.triage = triage

    def register(self, event_type: str, handler: Handler) -> None:
        if not event_type or event_type == "*":
            raise ValueError("register a type (payment_intent.succeeded) or a family (charge.*)")
        table, key = (self._prefixes, event_type[:-1]) if event_type.endswith(".*") else (self._exact, event_type)
        if key in table:
            raise ValueError(f"a handler for {event_type!r} is already registered")
        table[key] = handler

    def handler_for(self, event_type: str) -> Handler | None:
        found = self._exact.get(event_type)
        if found is not None:
            return found
        best = max((prefix for prefix in self._prefixes if event_type.startswith(prefix)), key=len, default=None)
        return None if best is None else self._prefixes[best]

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(sorted([*self._exact, *(prefix + "*" for prefix in self._prefixes)]))
