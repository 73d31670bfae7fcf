"""Shared helpers for the payment tests (imported, not a conftest): a running sandbox, a payment
service on it, invoices to pay, and the book-keeping checks every scenario ends with."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.audit import Actor
from gateway.payments import PaymentService, ReceiptKeys
from gateway.payments.schema import attempts, overpayments, refunds
from gateway.providers import StripeProvider
from gateway.sandbox import SandboxConfig, SandboxServer
from invoices.model import Invoice
from invoices.service import issue_invoice
from ledger import trial_balance, verify
from ledger.clock import utc_now
from ledger.db import read_transaction, run_transaction
from tests.invoices._support import CTX, request

API_KEY = "sk_test_nofu_payments"
RECEIPT_KEY = "r1:" + base64.urlsafe_b64encode(bytes(range(7, 39))).decode().rstrip("=")
RETURN_URL = "http://127.0.0.1:8000/p/return"
CLERK = Actor(id="staff:clerk1", name="会計課 山田")
OTHER_CLERK = Actor(id="staff:clerk2", name="会計課 佐藤")


class Clock:
    """Our clock, moved by hand (the sandbox keeps its own)."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(api_key=API_KEY)) as server:
        yield server


def make_provider(server: SandboxServer, *, retries: int = 2) -> StripeProvider:
    return StripeProvider(API_KEY, api_base=server.url, max_network_retries=retries)


def make_service(engine: Engine, server: SandboxServer, clock: Clock | None = None, **kwargs: object) -> PaymentService:
    return PaymentService(
        engine,
        CTX,
        make_provider(server),
        ReceiptKeys.from_config(RECEIPT_KEY),
        clock=clock or Clock(),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(engine: Engine, sandbox: SandboxServer, clock: Clock) -> PaymentService:
    return make_service(engine, sandbox, clock)


_counter = iter(range(1, 10**9))


def issue(engine: Engine, **overrides: object) -> Invoice:
    """A fresh open invoice (¥12,300 固定資産税 due 2026-04-30 unless overridden)."""
    n = next(_counter)
    overrides.setdefault("payer_ref", f"P{n:06d}")
    return run_transaction(
        engine, lambda conn: issue_invoice(conn, CTX, request(**overrides), actor="test:payments")
    ).invoice


def overdue(engine: Engine) -> Invoice:
    """¥1,000,000 due 2026-01-31: on CTX's today (2026-04-01) it carries a late fee."""
    return issue(engine, amount=1_000_000, issue_date=date(2026, 1, 5), due_date=date(2026, 1, 31))


def balance(engine: Engine, code: str) -> int:
    """Debit-positive balance of exactly this account."""
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT balance FROM ledger_accounts WHERE code = :c"), {"c": code}).scalar_one()


@dataclass(frozen=True)
class Books:
    clearing: int  # 1200, debit-positive
    overpayments: int  # 2100, credit-positive
    late_fees: int  # 4300, credit-positive


def books(engine: Engine) -> Books:
    return Books(balance(engine, "1200"), -balance(engine, "2100"), -balance(engine, "4300"))


def assert_books_ok(engine: Engine) -> None:
    """The ledger verifies and balances, and the payment tables agree with it:
    1200 = money received − refunded; 4300 = late fees kept; 2100 covers every open 過誤納金."""
    with read_transaction(engine) as conn:
        report = verify(conn)
        assert report.ok, report.first_problem
        assert trial_balance(conn).balanced
        received = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(attempts.c.amount_received), 0))).scalar_one()
        done = refunds.c.status == "succeeded"
        refunded = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(refunds.c.amount), 0)).where(done)).scalar_one()
        late = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(attempts.c.late_fee_applied), 0))).scalar_one()
        late_back = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(refunds.c.late_fee_part), 0)).where(done)
        ).scalar_one()
        open_over = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(overpayments.c.amount - overpayments.c.refunded_amount), 0))
        ).scalar_one()
        invoice_over = conn.execute(
            sa.text("SELECT COALESCE(SUM(amount_paid - amount), 0) FROM invoices WHERE status = 'overpaid'")
        ).scalar_one()
    got = books(engine)
    assert got.clearing == received - refunded
    assert got.late_fees == late - late_back
    assert got.overpayments == open_over + invoice_over
