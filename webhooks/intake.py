"""Intake: a delivery is checked, verified and stored — and only then acknowledged.

Order of checks (the first that fails answers, and nothing is stored):
1. content type ``application/json`` (any parameters) — else ``webhook.unsupported_media_type``;
2. size ≤ ``max_bytes`` (1 MiB by default) — else ``webhook.payload_too_large``;
3. the ``Stripe-Signature`` over the raw body, any configured secret, within the tolerance
   (``webhooks.signature``).
A verified body is then stored in one short transaction (``webhooks.inbox.store``): a new event
as ``pending``, a body that is not a readable event as ``poison``, a repeat as a duplicate that
changes nothing. The caller answers 2xx after :meth:`Intake.receive` returns — the event is
durable by then — and the processor does the work later. Under load, deliveries that arrive
together are committed together (``webhooks.committer``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine

from ledger.clock import utc_now
from ledger.db import run_transaction
from webhooks.committer import GroupCommitter
from webhooks.errors import PayloadTooLarge, UnsupportedMediaType
from webhooks.inbox import Stored, store
from webhooks.signature import DEFAULT_TOLERANCE, verify
from webhooks.writers import one_writer

MAX_BODY_BYTES = 1024 * 1024


def check_content_type(content_type: str | None) -> None:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise UnsupportedMediaType(
            "webhook deliveries are application/json", content_type=(content_type or "")[:100] or None
        )


def check_size(length: int, max_bytes: int = MAX_BODY_BYTES) -> None:
    if length > max_bytes:
        raise PayloadTooLarge(f"the body is larger than {max_bytes} bytes", max_bytes=max_bytes)


@dataclass
class Intake:
    """Receives deliveries for one provider account.

    Attributes:
        engine: where the inbox is.
        secrets: the webhook signing secrets (``whsec_…``), current first; several while rotating.
        tolerance: seconds a signature's timestamp may be from now (300).
        max_bytes: the largest body accepted.
        on_stored: called after a new event is committed (wakes an in-process processor).
        committer: when set, deliveries are stored through it (group commit); else each in its
            own transaction.
    """

    engine: Engine
    secrets: Sequence[str]
    tolerance: int = DEFAULT_TOLERANCE
    max_bytes: int = MAX_BODY_BYTES
    clock: Callable[[], datetime] = utc_now
    on_stored: Callable[[], None] | None = field(default=None, repr=False)
    committer: GroupCommitter | None = field(default=None, repr=False)

    def verify(self, payload: bytes, signature: str | None, content_type: str | None) -> None:
        """Every check before storing (raises an ``IntakeRefused`` with a stable code)."""
        check_content_type(content_type)
        check_size(len(payload), self.max_bytes)
        verify(payload, signature, tuple(self.secrets), tolerance=self.tolerance)

    def receive(self, payload: bytes, signature: str | None, content_type: str | None) -> Stored:
        """Verify and store one delivery; returns once it is committed."""
        self.verify(payload, signature, content_type)
        if self.committer is not None:
            return self.committer.submit(payload).result()
        with one_writer(self.engine):
            stored = run_transaction(self.engine, lambda conn: store(conn, payload, now=self.clock()))
        if not stored.duplicate and not stored.poison and self.on_stored is not None:
            self.on_stored()
        return stored

    async def receive_async(self, payload: bytes, signature: str | None, content_type: str | None) -> Stored:
        """The same from an event loop: verification inline (microseconds), storing on the
        committer's thread (or a worker thread without one) — no request holds a thread while
        it waits for the commit."""
        self.verify(payload, signature, content_type)
        if self.committer is not None:
            return await self.committer.store(payload)
        return await asyncio.to_thread(self.receive, payload, signature, content_type)
