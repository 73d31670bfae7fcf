"""The sandbox's state and the single lock that guards it.

All API and control operations run with `lock` held, so each request is atomic and
requests are serialised: simple and obviously thread-safe, which is what a test double
needs (throughput is not its job). Webhook delivery runs outside the lock.
"""

from __future__ import annotations

import json
import threading

from gateway.sandbox.api_faults import ApiFaults
from gateway.sandbox.clock import SandboxClock
from gateway.sandbox.config import SandboxConfig
from gateway.sandbox.delivery import WebhookDispatcher
from gateway.sandbox.idempotency import IdempotencyStore
from gateway.sandbox.records import EventRecord
from gateway.sandbox.shapes import event as render_event
from gateway.sandbox.store import Store


class Sandbox:
    """One simulated Stripe account (state in memory: a restart loses everything)."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.clock = SandboxClock()
        self.store = Store()
        self.idempotency = IdempotencyStore(config.idempotency_ttl)
        self.api_faults = ApiFaults()
        self.dispatcher = WebhookDispatcher(
            url=config.webhook_url,
            secret=config.webhook_secret,
            retry_delays=config.webhook_retry_delays,
            timeout=config.webhook_timeout,
            payload_for=self._event_payload,
            on_delivered=self._mark_delivered,
        )

    @property
    def webhook_url(self) -> str | None:
        return self.dispatcher.url

    def reset(self) -> None:
        """Back to the state right after creation: no objects, no saved responses, no
        deliveries, the wall clock, and the configured webhook endpoint and retry delays."""
        with self.lock:
            self.store = Store()
            self.idempotency.clear()
            self.api_faults.clear()
            self.dispatcher.reset(
                url=self.config.webhook_url,
                secret=self.config.webhook_secret,
                retry_delays=self.config.webhook_retry_delays,
            )
            self.clock.reset()

    def close(self) -> None:
        self.dispatcher.close()

    def _event_payload(self, event_id: str) -> bytes | None:
        """The JSON body of a delivery: the event as it is now (pending_webhooks included)."""
        with self.lock:
            record = self.store.get(event_id, EventRecord)
            if record is None:
                return None
            return json.dumps(render_event(self, record), indent=2, ensure_ascii=False).encode("utf-8")

    def _mark_delivered(self, event_id: str) -> None:
        with self.lock:
            record = self.store.get(event_id, EventRecord)
            if record is not None:
                record.pending_webhooks = 0
                record.delivered = True
