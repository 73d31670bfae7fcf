"""Refunds, full and partial, each with a negative `refund` BalanceTransaction.

Fees are not returned on refunds (Stripe keeps the processing fee of the original charge),
so a refund's balance transaction has fee 0 and net = −amount, and is available at once.
Refunds of test payments succeed immediately, as Stripe's test-mode card refunds do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.sandbox.context import RequestContext
from gateway.sandbox.errors import invalid_request, resource_missing
from gateway.sandbox.events import record_event
from gateway.sandbox.forms import Params
from gateway.sandbox.ids import new_id
from gateway.sandbox.params import (
    exclusive,
    get_choice,
    get_int,
    get_metadata,
    get_str,
    merge_metadata,
    reject_unknown,
)
from gateway.sandbox.records import BalanceTransactionRecord, ChargeRecord, PaymentIntentRecord, RefundRecord
from gateway.sandbox.shapes import render

if TYPE_CHECKING:
    from gateway.sandbox.engine import Sandbox

REASONS = ("duplicate", "fraudulent", "requested_by_customer")


def _charge_to_refund(sb: Sandbox, params: Params) -> ChargeRecord:
    exclusive(params, "charge", "payment_intent")
    pi_id = get_str(params, "payment_intent")
    ch_id = get_str(params, "charge")
    if pi_id:
        pi = sb.store.get(pi_id, PaymentIntentRecord)
        if pi is None:
            raise resource_missing("payment_intent", pi_id, param="payment_intent")
        charge = sb.store.get(pi.latest_charge or "", ChargeRecord)
        if pi.status != "succeeded" or charge is None:
            raise invalid_request(
                f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                param="payment_intent",
                code="payment_intent_unexpected_state",
            )
        return charge
    if ch_id:
        charge = sb.store.get(ch_id, ChargeRecord)
        if charge is None:
            raise resource_missing("charge", ch_id, param="charge")
        if not charge.paid:
            raise invalid_request(
                f"Charge {ch_id} has not succeeded; only a succeeded charge can be refunded.",
                param="charge",
                code="charge_not_refundable",
            )
        return charge
    raise invalid_request(
        "One of the following params should be provided for this request: payment_intent or charge.",
        code="parameter_missing",
    )


def create_refund(sb: Sandbox, params: Params, ctx: RequestContext) -> RefundRecord:
    """Invariant: the sum of a charge's refunds never exceeds its amount."""
    reject_unknown(params, ("charge", "payment_intent", "amount", "reason", "metadata"))
    charge = _charge_to_refund(sb, params)
    remaining = charge.refundable
    if remaining == 0:
        raise invalid_request(f"Charge {charge.id} has already been refunded.", code="charge_already_refunded")
    amount = get_int(params, "amount")
    if amount is None:
        amount = remaining
    if amount < 1:
        raise invalid_request(
            "This value must be greater than or equal to 1.", param="amount", code="parameter_invalid_integer"
        )
    if amount > remaining:
        raise invalid_request(
            f"Refund amount (¥{amount:,}) is greater than unrefunded amount on charge (¥{remaining:,})",
            param="amount",
            code="amount_too_large",
        )
    reason = get_choice(params, "reason", REASONS)
    metadata = get_metadata(params) or {}

    now = sb.clock.now()
    refund = sb.store.add(
        RefundRecord(
            id=new_id("re"),
            created=now,
            seq=sb.store.next_seq(),
            amount=amount,
            currency=charge.currency,
            charge=charge.id,
            payment_intent=charge.payment_intent,
            payment_method_type=charge.payment_method_type,
            status="succeeded",
            reason=reason,
            metadata=metadata,
        )
    )
    txn = sb.store.add(
        BalanceTransactionRecord(
            id=new_id("txn"),
            created=now,
            seq=sb.store.next_seq(),
            amount=-amount,
            fee=0,
            net=-amount,
            type="refund",
            reporting_category="refund",
            source=refund.id,
            available_on=now,
            currency=charge.currency,
            description=f"REFUND FOR CHARGE ({charge.description or charge.id})",
        )
    )
    refund.balance_transaction = txn.id
    previous = {"amount_refunded": charge.amount_refunded}
    if charge.amount_refunded + amount == charge.amount:
        previous["refunded"] = False
    charge.amount_refunded += amount
    charge.refunds.append(refund.id)
    record_event(sb, "refund.created", render(sb, refund), ctx)
    record_event(sb, "charge.refunded", render(sb, charge), ctx, previous)
    return refund


def get_refund(sb: Sandbox, re_id: str) -> RefundRecord:
    refund = sb.store.get(re_id, RefundRecord)
    if refund is None:
        raise resource_missing("refund", re_id)
    return refund


def update_refund(sb: Sandbox, re_id: str, params: Params, ctx: RequestContext) -> RefundRecord:
    refund = get_refund(sb, re_id)
    reject_unknown(params, ("metadata",))
    metadata = get_metadata(params)
    if metadata is not None:
        previous = dict(refund.metadata)
        refund.metadata = merge_metadata(refund.metadata, metadata)
        if refund.metadata != previous:
            record_event(sb, "refund.updated", render(sb, refund), ctx, {"metadata": previous})
    return refund
