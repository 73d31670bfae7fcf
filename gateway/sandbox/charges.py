"""What a confirmation leaves behind: a Charge, and for a success its BalanceTransaction.

Event order follows `capture_method=automatic_async` (Stripe's default): `charge.succeeded`
and `payment_intent.succeeded` carry no balance transaction yet; it is attached right after
and announced by `charge.updated` (previous_attributes: balance_transaction null).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.sandbox.business_days import add_business_days, jst_date, stripe_date_stamp
from gateway.sandbox.context import RequestContext
from gateway.sandbox.errors import StripeApiError
from gateway.sandbox.events import record_event
from gateway.sandbox.fees import processing_fee
from gateway.sandbox.ids import new_id
from gateway.sandbox.records import (
    BalanceTransactionRecord,
    ChargeRecord,
    PaymentIntentRecord,
    PaymentMethodRecord,
)
from gateway.sandbox.shapes import charge_outcome, last_payment_error, render

if TYPE_CHECKING:
    from gateway.sandbox.engine import Sandbox


def _new_charge(sb: Sandbox, pi: PaymentIntentRecord, pm: PaymentMethodRecord, *, paid: bool) -> ChargeRecord:
    return sb.store.add(
        ChargeRecord(
            id=new_id("ch"),
            created=sb.clock.now(),
            seq=sb.store.next_seq(),
            amount=pi.amount,
            currency=pi.currency,
            status="succeeded" if paid else "failed",
            payment_intent=pi.id,
            payment_method=pm.id,
            payment_method_type=pm.type,
            card=pm.card,
            outcome=charge_outcome(paid=paid, reason=None if paid else pm.outcome.decline_code),
            description=pi.description,
            metadata=dict(pi.metadata),
            receipt_email=pi.receipt_email,
            statement_descriptor_suffix=pi.statement_descriptor_suffix,
        )
    )


def available_on(sb: Sandbox, now: int) -> int:
    """Funds become available N JST business days after the charge (00:00 UTC stamp)."""
    day = add_business_days(jst_date(now), sb.config.available_after_business_days, sb.config.holidays)
    return stripe_date_stamp(day)


def settle_success(sb: Sandbox, pi: PaymentIntentRecord, pm: PaymentMethodRecord, ctx: RequestContext) -> None:
    """Invariant: a succeeded PaymentIntent has exactly one succeeded Charge with one
    `charge` BalanceTransaction whose net = amount − fee."""
    charge = _new_charge(sb, pi, pm, paid=True)
    pi.status = "succeeded"
    pi.amount_received = pi.amount
    pi.latest_charge = charge.id
    pi.next_action = None
    pi.last_payment_error = None
    record_event(sb, "charge.succeeded", render(sb, charge), ctx)
    record_event(sb, "payment_intent.succeeded", render(sb, pi), ctx)

    now = sb.clock.now()
    fee = processing_fee(pi.amount, sb.config.fee_rate, sb.config.fee_rounding)
    txn = sb.store.add(
        BalanceTransactionRecord(
            id=new_id("txn"),
            created=now,
            seq=sb.store.next_seq(),
            amount=pi.amount,
            fee=fee,
            net=pi.amount - fee,
            type="charge",
            reporting_category="charge",
            source=charge.id,
            available_on=available_on(sb, now),
            currency=pi.currency,
            description=pi.description,
        )
    )
    charge.balance_transaction = txn.id
    record_event(sb, "charge.updated", render(sb, charge), ctx, {"balance_transaction": None})


def record_decline(
    sb: Sandbox, pi: PaymentIntentRecord, pm: PaymentMethodRecord, ctx: RequestContext
) -> StripeApiError:
    """Fail the attempt as the issuer would; returns the 402 card error to raise.

    The PaymentIntent goes back to requires_payment_method, loses its payment method, and
    keeps the failed charge as latest_charge and the error as last_payment_error.
    """
    outcome = pm.outcome
    assert outcome.code is not None and outcome.message is not None
    charge = _new_charge(sb, pi, pm, paid=False)
    charge.failure_code = outcome.code
    charge.failure_message = outcome.message
    pi.status = "requires_payment_method"
    pi.payment_method = None
    pi.latest_charge = charge.id
    pi.next_action = None
    pi.last_payment_error = last_payment_error(
        type_="card_error",
        code=outcome.code,
        decline_code=outcome.decline_code,
        message=outcome.message,
        param=outcome.param,
        charge_id=charge.id,
        payment_method_id=pm.id,
        payment_method_type=pm.type,
    )
    record_event(sb, "charge.failed", render(sb, charge), ctx)
    record_event(sb, "payment_intent.payment_failed", render(sb, pi), ctx)
    return StripeApiError(
        402,
        "card_error",
        outcome.message,
        code=outcome.code,
        param=outcome.param,
        decline_code=outcome.decline_code,
        extra={
            "charge": charge.id,
            "payment_intent": render(sb, pi),
            "payment_method": render(sb, pm),
        },
        saved_by_idempotency=True,
    )
