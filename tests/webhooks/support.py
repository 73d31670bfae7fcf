"""Helpers for the webhook tests (imported, not a conftest): Stripe-signed bodies, events,
a side table handlers write to, and reading the inbox."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledger.db import read_transaction
from webhooks.schema import webhook_events

SECRET = "whsec_test_current"
OLD_SECRET = "whsec_test_previous"
_counter = iter(range(1, 10**9))


def sign(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header made with Stripe's own SDK (it signs text)."""
    import stripe

    return stripe.WebhookSignature.generate_signature_header(
        body.decode("utf-8"), secret, timestamp=int(time.time()) if timestamp is None else timestamp
    )


def event(event_type: str = "payment_intent.created", obj: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    n = next(_counter)
    body: dict[str, Any] = {
        "id": f"evt_test{n:08d}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "data": {"object": obj if obj is not None else {"id": f"pi_test{n:08d}", "object": "payment_intent"}},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    body.update(fields)
    return body


def body_of(evt: dict[str, Any]) -> bytes:
    return json.dumps(evt, indent=2).encode("utf-8")


def rows(engine: Engine) -> list[sa.Row]:
    with read_transaction(engine) as conn:
        return list(conn.execute(sa.select(webhook_events).order_by(webhook_events.c.id)))


def row(engine: Engine, event_id: str) -> sa.Row:
    with read_transaction(engine) as conn:
        return conn.execute(sa.select(webhook_events).where(webhook_events.c.event_id == event_id)).one()


# A table the test handlers write their effects to: one row per application, no unique key,
# so applying an event twice would show as two rows.
_effects_metadata = sa.MetaData()
effects = sa.Table(
    "wh_test_effects",
    _effects_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(255), nullable=False),
    sa.Column("worker", sa.String(200), nullable=False),
)


def create_effects(engine: Engine) -> None:
    _effects_metadata.create_all(engine)


def effect_counts(engine: Engine) -> dict[str, int]:
    with read_transaction(engine) as conn:
        result = conn.execute(sa.select(effects.c.event_id, sa.func.count()).group_by(effects.c.event_id))
        return {event_id: int(count) for event_id, count in result}


def write_effect(conn: Connection, event_id: str, worker: str = "test") -> None:
    conn.execute(effects.insert().values(event_id=event_id, worker=worker))


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class AppServer:
    """The real nofu app (``create_app``) served by uvicorn on a free 127.0.0.1 port in a thread,
    so the sandbox can deliver webhooks to it over HTTP."""

    def __init__(self, settings: Any) -> None:
        from gateway.app import create_app

        self.app = create_app(settings)
        self.port = 0
        self._server: Any = None
        self._thread: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        import socket
        import threading

        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on", access_log=False))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the app server did not start")
            time.sleep(0.01)
        self._socket = sock
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._socket.close()
