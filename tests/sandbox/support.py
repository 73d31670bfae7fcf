"""Shared fixtures for the sandbox tests: a running SandboxServer, an SDK client, and a
webhook receiver that records raw deliveries (import the fixtures into each test module)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
import stripe

from gateway.sandbox import SandboxConfig, SandboxServer

JST = ZoneInfo("Asia/Tokyo")
API_KEY = "sk_test_nofu_tests"
SECRET = "whsec_nofu_tests_secret"
FAST_RETRIES = (0.05, 0.1, 0.15)
# A Monday morning in Japan; the next business day is Tuesday 2026-06-02.
MONDAY_10_JST = int(datetime(2026, 6, 1, 10, 0, tzinfo=JST).timestamp())
CARD_ONLY = {"payment_method_types": ["card"]}


@dataclass(frozen=True)
class Delivery:
    body: bytes
    signature: str
    event_id: str
    event_type: str


class WebhookReceiver:
    """A tiny HTTP endpoint recording each POST; answers `statuses` in turn, then 200."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.statuses: list[int] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                import json

                body = self.rfile.read(int(self.headers["Content-Length"]))
                event = json.loads(body)
                with receiver._cond:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if status < 300:
                        receiver.deliveries.append(
                            Delivery(body, self.headers["Stripe-Signature"], event["id"], event["type"])
                        )
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/webhooks/stripe"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.deliveries) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"got {len(self.deliveries)} deliveries, wanted {count}")
                self._cond.wait(remaining)
            return list(self.deliveries)

    def types(self) -> list[str]:
        with self._cond:
            return [d.event_type for d in self.deliveries]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def make_config(**overrides: object) -> SandboxConfig:
    settings: dict[str, object] = {
        "api_key": API_KEY,
        "webhook_secret": SECRET,
        "webhook_retry_delays": FAST_RETRIES,
        "webhook_timeout": 2.0,
    }
    settings.update(overrides)
    return SandboxConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def shared_server() -> Iterator[SandboxServer]:
    """One running sandbox per test session (per xdist worker); tests reset it."""
    with SandboxServer(make_config()) as running:
        yield running


@pytest.fixture
def server(shared_server: SandboxServer) -> SandboxServer:
    """The shared sandbox, reset to its initial state for this test."""
    shared_server.sandbox.reset()
    return shared_server


@pytest.fixture
def client(server: SandboxServer) -> stripe.StripeClient:
    return server.stripe_client()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    endpoint = WebhookReceiver()
    yield endpoint
    endpoint.close()


@pytest.fixture
def hooked(server: SandboxServer, receiver: WebhookReceiver) -> Iterator[SandboxServer]:
    """The sandbox delivering webhooks to `receiver`."""
    server.control.set_webhook_endpoint(receiver.url)
    yield server
    server.control.set_webhook_endpoint(None)


def pay(client: stripe.StripeClient, amount: int, pm: str = "pm_card_visa", **extra: object) -> stripe.PaymentIntent:
    """Create and confirm a card PaymentIntent in one call."""
    params: dict[str, object] = {
        "amount": amount, "currency": "jpy", "confirm": True, "payment_method": pm, **CARD_ONLY, **extra,
    }
    return client.v1.payment_intents.create(params=params)  # type: ignore[arg-type]
