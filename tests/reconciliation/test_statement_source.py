"""Reading Stripe-shaped balance transactions and payouts (no network): what becomes the key our
books know a transaction by, and a malformed statement refused with a stable code."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gateway.providers.statements import payout_from_stripe, transaction_from_stripe
from reconciliation import ProviderUnavailable

CREATED = 1_780_275_600  # 2026-06-01 01:00 UTC = 10:00 JST


def txn(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"id": "txn_1", "object": "balance_transaction", "amount": 12_300, "fee": 443, "net": 11_857,
                               "created": CREATED, "available_on": 1_780_358_400, "currency": "jpy", "type": "charge",
                               "reporting_category": "charge", "source": "ch_1"}  # fmt: skip
    base.update(fields)
    return base


def test_a_charge_is_known_by_its_payment_intent_and_carries_our_metadata() -> None:
    charge = {"id": "ch_1", "object": "charge", "payment_intent": "pi_1",
              "metadata": {"notice_number": "2026-00000001-3", "attempt_id": "pa_x"}}  # fmt: skip
    read = transaction_from_stripe(txn(source=charge))
    assert (read.match_ref, read.payment_ref, read.source) == ("pi_1", "pi_1", "ch_1")
    assert (read.notice_number, read.attempt_ref) == ("2026-00000001-3", "pa_x")
    assert (read.business_date, read.hour, read.available_on) == (date(2026, 6, 1), 10, date(2026, 6, 2))
    assert read.created == datetime.fromtimestamp(CREATED, UTC)


def test_a_refund_is_known_by_the_refund_and_unexpanded_sources_keep_their_id() -> None:
    refund = transaction_from_stripe(txn(type="refund", amount=-1000, fee=0, net=-1000,
                                         source={"id": "re_1", "object": "refund", "payment_intent": "pi_1"}))  # fmt: skip
    assert (refund.match_ref, refund.payment_ref) == ("re_1", "pi_1")
    bare = transaction_from_stripe(txn(type="adjustment", source="adj_1"), payout_id="po_1")
    assert (bare.match_ref, bare.payout_id) == ("adj_1", "po_1")


def test_a_payout_reads_its_arrival_date() -> None:
    payout = payout_from_stripe({"id": "po_1", "amount": 11_857, "status": "paid", "created": CREATED,
                                 "arrival_date": 1_780_444_800, "balance_transaction": "txn_po"})  # fmt: skip
    assert (payout.arrival_date, payout.status, payout.balance_transaction) == (date(2026, 6, 3), "paid", "txn_po")


@pytest.mark.parametrize("amount", ["12300", 12.3, None, True])
def test_an_amount_that_is_not_whole_yen_is_refused(amount: object) -> None:
    with pytest.raises(ProviderUnavailable) as refused:
        transaction_from_stripe(txn(amount=amount))
    assert refused.value.code == "reconciliation.provider_unavailable"
