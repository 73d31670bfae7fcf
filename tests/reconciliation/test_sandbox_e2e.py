"""End to end with the sandbox, on SQLite and PostgreSQL: real payments and a refund through the
payment service, one payment whose webhooks were lost, the provider's statement read with the
Stripe SDK, a payout paid into the bank and its 全銀 statement, then sign-off."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from gateway.payments import AttemptStatus, PaymentService
from gateway.providers.statements import (
    InboxHealer,
    PaymentLinks,
    StripeStatementSource,
)
from gateway.sandbox import SandboxConfig, SandboxServer
from gateway.settings import Settings
from gateway.webhook_handlers import build_processor
from ledger import closed_through, trial_balance, verify
from ledger.clock import JST
from ledger.db import read_transaction, run_transaction
from reconciliation import (
    BreakStatus,
    Staff,
    import_statement,
    list_breaks,
    parse_statement,
    reconcile_day,
    sign_off,
)
from reconciliation.zengin import ZenginEntry, write_zengin
from tests.payments.support import (
    API_KEY,
    CLERK,
    RETURN_URL,
    Clock,
    assert_books_ok,
    balance,
    issue,
    make_service,
)

MONDAY = datetime(2026, 11, 16, 10, 0, tzinfo=JST)
DAY = MONDAY.date()
TODAY = date(2026, 11, 26)
TREASURY = Staff("staff:treasury1", "会計課長 鈴木")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    # No webhook endpoint: the sandbox records its events and delivers none (every webhook "lost").
    with SandboxServer(SandboxConfig(api_key=API_KEY)) as server:
        yield server


@pytest.fixture
def clock(sandbox: SandboxServer) -> Clock:
    sandbox.control.reset()
    sandbox.control.set_clock(MONDAY)
    ours = Clock()
    ours.now = MONDAY
    return ours


@pytest.fixture
def service(engine: Engine, sandbox: SandboxServer, clock: Clock) -> PaymentService:
    return make_service(engine, sandbox, clock)


def test_a_day_with_a_lost_webhook_reconciles_heals_pays_out_and_signs_off(
    engine: Engine, sandbox: SandboxServer, service: PaymentService, clock: Clock, tmp_path: Path
) -> None:
    client = sandbox.stripe_client(api_key=API_KEY)
    settings = Settings(database_url="sqlite://", dev_keys_file=str(tmp_path / "k.env"), stripe_secret_key=API_KEY,
                        stripe_api_base=sandbox.url)  # fmt: skip
    processor = build_processor(engine, service, settings)

    # Two payments settled by nofu itself, one partially refunded.
    first, second = issue(engine, amount=12_300), issue(engine, amount=5_000, tax_code="RESIDENT_TAX")
    paid = []
    for invoice in (first, second):
        attempt = service.start_or_join(invoice.public_id)
        paid.append(service.confirm_with_test_method(attempt.public_id, "pm_card_visa", return_url=RETURN_URL))
    clock.advance(minutes=30)
    sandbox.control.advance_clock(30 * 60)
    service.refund(paid[0].public_id, amount=2_300, expected_refundable=12_300, reason="二重課税の訂正", actor=CLERK)

    # A third paid in the browser; nofu never heard of it (its webhooks were lost).
    lost_invoice = issue(engine, amount=8_800, tax_code="LIGHT_VEHICLE")
    lost = service.start_or_join(lost_invoice.public_id)
    assert lost.provider_payment_id is not None
    client.v1.payment_intents.confirm(lost.provider_payment_id, params={"payment_method": "pm_card_visa", "return_url": RETURN_URL})
    assert service.get_attempt(lost.public_id).status is AttemptStatus.CREATED

    assert_books_ok(engine)  # before any payout, 1200 holds what was received less refunds
    source = StripeStatementSource(client)
    healer = InboxHealer(engine, client, processor)
    outcome = reconcile_day(engine, DAY, actor="cli:test", source=source, links=PaymentLinks(), healer=healer, today=TODAY)

    assert [(h.match_ref, h.healed) for h in outcome.healed] == [(lost.provider_payment_id, True)]
    assert service.get_attempt(lost.public_id).status is AttemptStatus.SUCCEEDED
    with read_transaction(engine) as conn:
        found = list_breaks(conn, DAY)
    assert [(b.category.value, b.status, b.match_ref) for b in found] == [
        ("missing_in_ledger", BreakStatus.HEALED, lost.provider_payment_id)
    ]
    provider = outcome.summary["provider"]
    assert (provider["gross"], provider["refunds"]) == (12_300 + 5_000 + 8_800, -2_300)
    assert provider["fees"] == provider["expected_fees"] == 443 + 180 + 317
    collected = {row["tax_code"]: row["amount"] for row in outcome.summary["collections"]}
    assert collected == {"FIXED_ASSET": 10_000, "RESIDENT_TAX": 5_000, "LIGHT_VEHICLE": 8_800}
    assert outcome.summary["breaks"] == {}
    assert outcome.summary["clearing"]["day_outstanding"] == 12_300 + 5_000 + 8_800 - 2_300

    # Tuesday the money is available and paid out; it reaches the bank on Wednesday.
    sandbox.control.advance_clock(24 * 3600)
    [payout] = sandbox.control.run_payouts(through="paid")
    arrival = datetime.fromtimestamp(payout["arrival_date"]).date()
    assert payout["amount"] == 12_300 + 5_000 + 8_800 - 2_300 - (443 + 180 + 317)
    statement = parse_statement(write_zengin([
        ZenginEntry(arrival, payout["amount"], payer="ｽﾄﾗｲﾌﾟｼﾞﾔﾊﾟﾝ(ｶ", reference=1),
        ZenginEntry(arrival, 45_000, payer="ｺﾝﾋﾞﾆｼｭｳﾉｳ", reference=2),  # another channel's deposit
    ]))  # fmt: skip
    run_transaction(engine, lambda conn: import_statement(conn, statement, actor="cli:test", now=MONDAY))
    landed = reconcile_day(engine, arrival, actor="cli:test", source=source, links=PaymentLinks(), today=TODAY)
    [due] = landed.summary["payouts"]
    assert (due["id"], due["rule"], due["fees"], due["ledger_entry"] is not None) == (payout["id"], "same_day", 940, True)
    assert landed.summary["breaks"] == {}
    assert balance(engine, "1200") == 0  # the clearing account nets to zero once the payout landed
    assert balance(engine, "5100") == 940 and balance(engine, "1300") == payout["amount"]
    with read_transaction(engine) as conn:
        assert verify(conn).ok and trial_balance(conn).balanced

    again = reconcile_day(engine, DAY, actor="cli:test", source=source, links=PaymentLinks(), today=TODAY)
    assert again.summary["clearing"]["day_outstanding"] == 0 and again.healed == ()
    assert reconcile_day(engine, DAY, actor="cli:test", source=source, links=PaymentLinks(), today=TODAY).report_sha256 == again.report_sha256

    signed = run_transaction(engine, lambda conn: sign_off(conn, DAY, staff=TREASURY, now=MONDAY + timedelta(days=1)))
    with read_transaction(engine) as conn:
        assert closed_through(conn) == DAY
    assert signed.close_head_seq > 0
