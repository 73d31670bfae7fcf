"""Fixtures for tests that run real payments through the sandbox and deliver its webhooks over
HTTP to the running app (imported by the test modules, not a conftest)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import stripe
from sqlalchemy.engine import Engine

from gateway.payments import PaymentService
from gateway.sandbox import SandboxConfig, SandboxServer
from gateway.settings import Settings
from gateway.webhook_handlers import build_processor
from ledger.clock import utc_now
from tests.payments.support import API_KEY, RETURN_URL, Clock, make_service
from tests.webhooks.support import SECRET, AppServer
from webhooks import Processor


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(api_key=API_KEY, webhook_secret=SECRET)) as server:
        yield server


@pytest.fixture
def settings(db_url: str, sandbox: SandboxServer, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        dev_keys_file=str(tmp_path / "dev-keys.env"),
        stripe_secret_key=API_KEY,
        stripe_api_base=sandbox.url,
        stripe_webhook_secret=SECRET,
        webhook_inprocess="0",  # the test drives the processor
        payment_sweep_seconds="0",
    )


@pytest.fixture
def app(settings: Settings, sandbox: SandboxServer) -> Iterator[AppServer]:
    sandbox.control.reset()
    with AppServer(settings) as server:
        sandbox.control.set_webhook_endpoint(f"{server.url}/webhooks/stripe")
        sandbox.control.set_delivery_mode("manual")
        yield server
    sandbox.control.set_webhook_endpoint(None)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(engine: Engine, sandbox: SandboxServer, clock: Clock) -> PaymentService:
    return make_service(engine, sandbox, clock)


@pytest.fixture
def processor(engine: Engine, service: PaymentService, settings: Settings) -> Processor:
    return build_processor(engine, service, settings, clock=RunningClock())


class RunningClock:
    """Real time, moved forward by hand (to get past a backoff delay)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


def browser_pays(sandbox: SandboxServer, service: PaymentService, number: str, method: str = "pm_card_visa") -> str:
    """The resident's browser confirms with Stripe.js: nofu's server never sees the answer."""
    attempt = service.start_or_join(number)
    assert attempt.provider_payment_id is not None
    client = sandbox.stripe_client(api_key=API_KEY)
    try:
        client.v1.payment_intents.confirm(
            attempt.provider_payment_id, params={"payment_method": method, "return_url": RETURN_URL}
        )
    except stripe.CardError:
        pass
    return attempt.public_id


