"""Automatic payouts: sweep the available balance to the bank account.

A run pays out every available balance transaction not yet swept by a payout; each swept
transaction remembers its payout, so `GET /v1/balance_transactions?payout=po_…` lists
exactly what the payout contains (plus the payout's own negative `payout` transaction).

Statuses: pending → in_transit → paid, or → failed (also after paid, as a bank can return
the money). A failure credits the amount back with a `payout_failure` transaction that the
next payout sweeps again. Status changes happen only by control call (`advance_payout`),
so tests decide when money "arrives".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.sandbox.business_days import add_business_days, jst_date, stripe_date_stamp
from gateway.sandbox.context import AUTOMATIC
from gateway.sandbox.errors import StripeApiError, invalid_request, resource_missing
from gateway.sandbox.events import record_event
from gateway.sandbox.ids import new_id
from gateway.sandbox.records import BalanceTransactionRecord, PayoutRecord
from gateway.sandbox.shapes import render

if TYPE_CHECKING:
    from gateway.sandbox.engine import Sandbox

STATUS_ORDER = ("pending", "in_transit", "paid")
FAILURE_MESSAGES = {
    "account_closed": "The bank account has been closed.",
    "account_frozen": "The bank account has been frozen.",
    "bank_account_restricted": "The bank account has restrictions on either the type or number of payouts allowed.",
    "could_not_process": "The bank could not process this payout.",
    "invalid_account_number": "The bank account number is invalid.",
    "no_account": "The bank account details on file are probably incorrect. No bank account could be located with those details.",
}


def run_payouts(sb: Sandbox, through: str = "pending") -> list[PayoutRecord]:
    """Create today's automatic payout (none when the available, unswept net is ≤ 0),
    then move it along to `through`."""
    if through not in STATUS_ORDER:
        raise invalid_request(f"through must be one of {', '.join(STATUS_ORDER)}", param="through", code="payout_status_invalid")
    now = sb.clock.now()
    swept = [
        txn
        for txn in sb.store.newest_first(BalanceTransactionRecord)
        if txn.payout is None and txn.type != "payout" and txn.available_on <= now
    ]
    total = sum(txn.net for txn in swept)
    if total <= 0:
        return []
    payout_id = new_id("po")
    txn = sb.store.add(
        BalanceTransactionRecord(
            id=new_id("txn"),
            created=now,
            seq=sb.store.next_seq(),
            amount=-total,
            fee=0,
            net=-total,
            type="payout",
            reporting_category="payout",
            source=payout_id,
            available_on=now,
            description="STRIPE PAYOUT",
            payout=payout_id,
        )
    )
    arrival = add_business_days(jst_date(now), sb.config.payout_arrival_business_days, sb.config.holidays)
    payout = sb.store.add(
        PayoutRecord(
            id=payout_id,
            created=now,
            seq=sb.store.next_seq(),
            amount=total,
            arrival_date=stripe_date_stamp(arrival),
            status="pending",
            balance_transaction=txn.id,
        )
    )
    for swept_txn in swept:
        swept_txn.payout = payout_id
    record_event(sb, "payout.created", render(sb, payout), AUTOMATIC)
    if through != "pending":
        advance_payout(sb, payout_id, through)
    return [payout]


def get_payout(sb: Sandbox, po_id: str) -> PayoutRecord:
    payout = sb.store.get(po_id, PayoutRecord)
    if payout is None:
        raise resource_missing("payout", po_id)
    return payout


def advance_payout(sb: Sandbox, po_id: str, status: str, failure_code: str | None = None) -> PayoutRecord:
    """Move a payout forward (pending → in_transit → paid) or fail it; emits the events."""
    payout = get_payout(sb, po_id)
    if status == "failed":
        return _fail(sb, payout, failure_code or "account_closed")
    if status not in STATUS_ORDER:
        raise _transition_error(f"Unknown payout status {status!r}.")
    if payout.status == "failed" or STATUS_ORDER.index(status) <= STATUS_ORDER.index(payout.status):
        raise _transition_error(f"Payout {po_id} cannot go from {payout.status} to {status}.")
    if payout.status == "pending":
        payout.status = "in_transit"
        record_event(sb, "payout.updated", render(sb, payout), AUTOMATIC, {"status": "pending"})
    if status == "paid":
        payout.status = "paid"
        record_event(sb, "payout.paid", render(sb, payout), AUTOMATIC)
        payout.reconciliation_status = "completed"
        record_event(
            sb, "payout.reconciliation_completed", render(sb, payout), AUTOMATIC,
        )
    return payout


def _fail(sb: Sandbox, payout: PayoutRecord, failure_code: str) -> PayoutRecord:
    if payout.status == "failed":
        raise _transition_error(f"Payout {payout.id} has already failed.")
    if failure_code not in FAILURE_MESSAGES:
        raise invalid_request(
            f"failure_code must be one of {', '.join(FAILURE_MESSAGES)}",
            param="failure_code",
            code="payout_failure_code_invalid",
        )
    now = sb.clock.now()
    txn = sb.store.add(
        BalanceTransactionRecord(
            id=new_id("txn"),
            created=now,
            seq=sb.store.next_seq(),
            amount=payout.amount,
            fee=0,
            net=payout.amount,
            type="payout_failure",
            reporting_category="payout_reversal",
            source=payout.id,
            available_on=now,
            description="STRIPE PAYOUT FAILURE",
        )
    )
    previous_status = payout.status
    payout.status = "failed"
    payout.failure_code = failure_code
    payout.failure_message = FAILURE_MESSAGES[failure_code]
    payout.failure_balance_transaction = txn.id
    record_event(sb, "payout.updated", render(sb, payout), AUTOMATIC, {"status": previous_status})
    record_event(sb, "payout.failed", render(sb, payout), AUTOMATIC)
    return payout


def _transition_error(message: str) -> StripeApiError:
    return invalid_request(message, param="status", code="payout_transition_invalid")
