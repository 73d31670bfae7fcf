"""A day of payments, availability on the next business day, automatic payouts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import stripe

from gateway.sandbox import SandboxControlError, SandboxServer
from tests.sandbox.support import JST, MONDAY_10_JST, client, pay, server, shared_server  # noqa: F401

DAY = 24 * 60 * 60


def _date(stamp: int) -> str:
    return datetime.fromtimestamp(stamp, UTC).date().isoformat()


def test_a_day_of_payments_paid_out_the_next_business_day(server: SandboxServer, client: stripe.StripeClient) -> None:
    server.control.set_clock(MONDAY_10_JST)
    intents = [pay(client, amount) for amount in (1000, 2000, 12300)]
    fees = [36, 72, 443]  # 3.6 % rounded half up: 36, 72, 442.8 → 443
    nets = [amount - fee for amount, fee in zip((1000, 2000, 12300), fees, strict=True)]
    txns = client.v1.balance_transactions.list(params={"type": "charge"}).data
    assert sorted(t.fee for t in txns) == sorted(fees)
    assert {t.status for t in txns} == {"pending"}
    assert {_date(t.available_on) for t in txns} == {"2026-06-02"}
    assert txns[0].created == MONDAY_10_JST

    balance = client.v1.balance.retrieve()
    assert (balance.available[0].amount, balance.pending[0].amount) == (0, sum(nets))
    assert server.control.run_payouts() == []  # nothing available yet

    server.control.advance_clock(DAY)  # Tuesday 10:00 JST
    refund = client.v1.refunds.create(params={"payment_intent": intents[0].id, "amount": 500})
    balance = client.v1.balance.retrieve()
    assert (balance.available[0].amount, balance.pending[0].amount) == (sum(nets) - 500, 0)

    [payout] = server.control.run_payouts(through="paid")
    assert payout["amount"] == sum(nets) - 500
    assert (payout["status"], payout["automatic"], payout["reconciliation_status"]) == ("paid", True, "completed")
    assert _date(payout["arrival_date"]) == "2026-06-03"

    contained = list(client.v1.balance_transactions.list(params={"payout": payout["id"], "limit": 2}).auto_paging_iter())
    assert sorted(t.type for t in contained) == ["charge", "charge", "charge", "payout", "refund"]
    assert sum(t.net for t in contained) == 0  # the payout transaction offsets what it swept
    refund_txn = next(t for t in contained if t.type == "refund")
    assert refund_txn.source == refund.id
    payout_txn = next(t for t in contained if t.type == "payout")
    assert (payout_txn.id, payout_txn.amount, payout_txn.source) == (payout["balance_transaction"], -payout["amount"], payout["id"])

    assert client.v1.balance.retrieve().available[0].amount == 0
    assert client.v1.payouts.retrieve(payout["id"]).status == "paid"
    types = [e.type for e in client.v1.events.list(params={"type": "payout.*"}).data][::-1]
    assert types == ["payout.created", "payout.updated", "payout.paid", "payout.reconciliation_completed"]
    assert server.control.run_payouts() == []  # everything has been swept


def test_friday_payments_become_available_on_monday(server: SandboxServer, client: stripe.StripeClient) -> None:
    friday = int(datetime(2026, 6, 5, 15, 0, tzinfo=JST).timestamp())
    server.control.set_clock(friday)
    pay(client, 5000)
    txn = client.v1.balance_transactions.list().data[0]
    assert _date(txn.available_on) == "2026-06-08"
    server.control.advance_clock(2 * DAY)  # Sunday
    assert client.v1.balance_transactions.retrieve(txn.id).status == "pending"
    server.control.advance_clock(DAY)  # Monday 15:00 JST
    assert client.v1.balance_transactions.retrieve(txn.id).status == "available"


def test_payout_statuses_step_by_step_and_failure(server: SandboxServer, client: stripe.StripeClient) -> None:
    server.control.set_clock(MONDAY_10_JST)
    pay(client, 10000)
    server.control.advance_clock(DAY)
    [payout] = server.control.run_payouts()
    assert payout["status"] == "pending"
    assert server.control.set_payout_status(payout["id"], "in_transit")["status"] == "in_transit"
    assert server.control.set_payout_status(payout["id"], "paid")["status"] == "paid"

    failed = server.control.set_payout_status(payout["id"], "failed", failure_code="account_closed")
    assert (failed["status"], failed["failure_code"]) == ("failed", "account_closed")
    failure_txn = client.v1.balance_transactions.retrieve(failed["failure_balance_transaction"])
    assert (failure_txn.type, failure_txn.amount, failure_txn.reporting_category) == (
        "payout_failure", payout["amount"], "payout_reversal",
    )
    assert client.v1.balance.retrieve().available[0].amount == payout["amount"]
    assert client.v1.events.list(params={"type": "payout.failed"}).data[0].data.object.id == payout["id"]

    [retry] = server.control.run_payouts()
    assert retry["amount"] == payout["amount"]
    swept = client.v1.balance_transactions.list(params={"payout": retry["id"]}).data
    assert sorted(t.type for t in swept) == ["payout", "payout_failure"]


@pytest.mark.parametrize(
    ("steps", "code"),
    [
        (["paid", "in_transit"], "payout_transition_invalid"),
        (["failed", "failed"], "payout_transition_invalid"),
        (["failed", "paid"], "payout_transition_invalid"),
        (["flying"], "payout_transition_invalid"),
    ],
)
def test_invalid_payout_transitions(server: SandboxServer, client: stripe.StripeClient, steps: list[str], code: str) -> None:
    server.control.set_clock(MONDAY_10_JST)
    pay(client, 10000)
    server.control.advance_clock(DAY)
    [payout] = server.control.run_payouts()
    for step in steps[:-1]:
        server.control.set_payout_status(payout["id"], step)
    with pytest.raises(SandboxControlError) as raised:
        server.control.set_payout_status(payout["id"], steps[-1])
    assert raised.value.code == code


def test_payout_refusals(server: SandboxServer, client: stripe.StripeClient) -> None:
    with pytest.raises(SandboxControlError) as raised:
        server.control.set_payout_status("po_missing", "paid")
    assert (raised.value.status, raised.value.code) == (404, "resource_missing")
    with pytest.raises(SandboxControlError) as raised:
        server.control.run_payouts(through="arrived")
    assert raised.value.code == "payout_status_invalid"
    with pytest.raises(stripe.InvalidRequestError) as listed:
        client.v1.balance_transactions.list(params={"payout": "po_missing"})
    assert (listed.value.code, listed.value.param) == ("resource_missing", "payout")
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.payouts.retrieve("po_missing")
    assert missing.value.http_status == 404

    server.control.set_clock(MONDAY_10_JST)
    pay(client, 10000)
    server.control.advance_clock(DAY)
    [payout] = server.control.run_payouts()
    with pytest.raises(SandboxControlError) as raised:
        server.control.set_payout_status(payout["id"], "failed", failure_code="bank_on_fire")
    assert raised.value.code == "payout_failure_code_invalid"


def test_balance_transaction_filters(server: SandboxServer, client: stripe.StripeClient) -> None:
    pi = pay(client, 2000)
    client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 300})
    assert [t.type for t in client.v1.balance_transactions.list(params={"type": "refund"}).data] == ["refund"]
    by_source = client.v1.balance_transactions.list(params={"source": pi.latest_charge}).data
    assert [t.amount for t in by_source] == [2000]
    payouts = client.v1.payouts.list()
    assert payouts.data == [] and payouts.url == "/v1/payouts"


def test_clock_control(server: SandboxServer) -> None:
    assert server.control.set_clock(MONDAY_10_JST) == MONDAY_10_JST
    assert server.control.advance_clock(90) == MONDAY_10_JST + 90
    assert server.control.now() == MONDAY_10_JST + 90
    with pytest.raises(SandboxControlError) as raised:
        server.control.advance_clock(-1)
    assert raised.value.code == "clock_backwards"
    running = server.control.set_clock(MONDAY_10_JST, frozen=False)
    assert running == MONDAY_10_JST
    assert MONDAY_10_JST <= server.control.now() <= MONDAY_10_JST + 5
