"""Render records as Stripe objects: the same keys as Stripe's fixtures, nested ones too.

Invariant (checked by tests/sandbox/test_shapes.py against stripe/fixtures3.json): every
object the sandbox returns has exactly the top-level keys of Stripe's example object of its
type, and every nested hash carries at least the keys of the example's nested hash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.sandbox.errors import doc_url
from gateway.sandbox.records import (
    BalanceTransactionRecord,
    CardDetails,
    ChargeRecord,
    EventRecord,
    PaymentIntentRecord,
    PaymentMethodRecord,
    PayoutRecord,
    Record,
    RefundRecord,
)

if TYPE_CHECKING:
    from gateway.sandbox.engine import Sandbox

Obj = dict[str, Any]
PAYMENT_METHOD_CONFIGURATION = "pmc_nofuSandboxDefaultConfig0"


def render(sb: Sandbox, record: Record) -> Obj:
    """The Stripe object for `record`, as of now."""
    if isinstance(record, PaymentIntentRecord):
        return payment_intent(sb, record)
    if isinstance(record, ChargeRecord):
        return charge(sb, record)
    if isinstance(record, RefundRecord):
        return refund(record)
    if isinstance(record, BalanceTransactionRecord):
        return balance_transaction(sb, record)
    if isinstance(record, PayoutRecord):
        return payout(record)
    if isinstance(record, PaymentMethodRecord):
        return payment_method(record)
    return event(sb, record)


def list_object(url: str, data: list[Obj], has_more: bool) -> Obj:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def _address() -> Obj:
    return {key: None for key in ("city", "country", "line1", "line2", "postal_code", "state")}


def _billing_details() -> Obj:
    return {"address": _address(), "email": None, "name": None, "phone": None, "tax_id": None}


def payment_method(pm: PaymentMethodRecord) -> Obj:
    obj: Obj = {
        "id": pm.id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": _billing_details(),
        "created": pm.created,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": dict(pm.metadata),
        "type": pm.type,
    }
    if pm.card is not None:
        obj["card"] = _payment_method_card(pm.card)
    else:
        obj[pm.type] = {}
    return obj


def _payment_method_card(card: CardDetails) -> Obj:
    return {
        "brand": card.brand,
        "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
        "country": card.country,
        "display_brand": card.brand,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "fingerprint": card.fingerprint,
        "funding": card.funding,
        "generated_from": None,
        "last4": card.last4,
        "networks": {"available": [card.brand], "preferred": None},
        "three_d_secure_usage": {"supported": True},
        "wallet": None,
        "regulated_status": "unregulated",
    }


def payment_intent(sb: Sandbox, pi: PaymentIntentRecord) -> Obj:
    automatic = pi.automatic_payment_methods
    return {
        "id": pi.id,
        "object": "payment_intent",
        "amount": pi.amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": pi.amount_received,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": dict(automatic) if automatic else None,
        "canceled_at": pi.canceled_at,
        "cancellation_reason": pi.cancellation_reason,
        "capture_method": pi.capture_method,
        "client_secret": pi.client_secret,
        "confirmation_method": "automatic",
        "created": pi.created,
        "currency": pi.currency,
        "customer": None,
        "customer_account": None,
        "description": pi.description,
        "excluded_payment_method_types": None,
        "last_payment_error": _last_payment_error(sb, pi.last_payment_error),
        "latest_charge": pi.latest_charge,
        "livemode": False,
        "managed_payments": None,
        "metadata": dict(pi.metadata),
        "next_action": _copy(pi.next_action),
        "on_behalf_of": None,
        "payment_method": pi.payment_method,
        "payment_method_configuration_details": (
            {"id": PAYMENT_METHOD_CONFIGURATION, "parent": None} if automatic else None
        ),
        "payment_method_options": _payment_method_options(pi.payment_method_types),
        "payment_method_types": list(pi.payment_method_types),
        "processing": None,
        "receipt_email": pi.receipt_email,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": pi.statement_descriptor,
        "statement_descriptor_suffix": pi.statement_descriptor_suffix,
        "status": pi.status,
        "transfer_data": None,
        "transfer_group": None,
    }


def _payment_method_options(types: list[str]) -> Obj:
    options: Obj = {}
    if "card" in types:
        options["card"] = {
            "installments": None,
            "mandate_options": None,
            "network": None,
            "request_three_d_secure": "automatic",
        }
    if "paypay" in types:
        options["paypay"] = {}
    return options


def _last_payment_error(sb: Sandbox, error: dict[str, Any] | None) -> Obj | None:
    """Stored with the PaymentMethod's id; rendered with the object, as Stripe does."""
    if error is None:
        return None
    rendered = dict(error)
    pm = sb.store.get(error["payment_method"], PaymentMethodRecord)
    rendered["payment_method"] = payment_method(pm) if pm else None
    return rendered


def last_payment_error(
    *, type_: str, code: str, decline_code: str | None, message: str, param: str | None,
    charge_id: str | None, payment_method_id: str, payment_method_type: str,
) -> dict[str, Any]:
    return {
        "type": type_,
        "code": code,
        "decline_code": decline_code,
        "doc_url": doc_url(code),
        "message": message,
        "param": param,
        "advice_code": None,
        "network_advice_code": None,
        "network_decline_code": None,
        "charge": charge_id,
        "payment_method": payment_method_id,
        "payment_method_type": payment_method_type,
    }


def charge(sb: Sandbox, ch: ChargeRecord) -> Obj:
    refunds = [refund(r) for rid in reversed(ch.refunds) if (r := sb.store.get(rid, RefundRecord))]
    return {
        "id": ch.id,
        "object": "charge",
        "amount": ch.amount,
        "amount_captured": ch.amount if ch.paid else 0,
        "amount_refunded": ch.amount_refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": ch.balance_transaction,
        "billing_details": _billing_details(),
        "calculated_statement_descriptor": "NOFU SANDBOX" if ch.paid else None,
        "captured": ch.paid,
        "created": ch.created,
        "currency": ch.currency,
        "customer": None,
        "description": ch.description,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": ch.failure_code,
        "failure_message": ch.failure_message,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(ch.metadata),
        "on_behalf_of": None,
        "outcome": dict(ch.outcome),
        "paid": ch.paid,
        "payment_intent": ch.payment_intent,
        "payment_method": ch.payment_method,
        "payment_method_details": _payment_method_details(ch),
        "receipt_email": ch.receipt_email,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": ch.paid and ch.amount_refunded == ch.amount,
        "refunds": list_object(f"/v1/charges/{ch.id}/refunds", refunds, False),
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": ch.statement_descriptor_suffix,
        "status": ch.status,
        "transfer_data": None,
        "transfer_group": None,
    }


def _payment_method_details(ch: ChargeRecord) -> Obj:
    if ch.card is None:
        return {"type": ch.payment_method_type, ch.payment_method_type: {}}
    card = ch.card
    return {
        "type": "card",
        "card": {
            "amount_authorized": ch.amount if ch.paid else None,
            "authorization_code": "123456" if ch.paid else None,
            "brand": card.brand,
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
            "country": card.country,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
            "extended_authorization": {"status": "disabled"},
            "fingerprint": card.fingerprint,
            "funding": card.funding,
            "incremental_authorization": {"status": "unavailable"},
            "installments": None,
            "last4": card.last4,
            "mandate": None,
            "multicapture": {"status": "unavailable"},
            "network": card.brand,
            "network_token": {"used": False},
            "network_transaction_id": "sandbox0000000001" if ch.paid else None,
            "overcapture": {"maximum_amount_capturable": ch.amount, "status": "unavailable"},
            "regulated_status": "unregulated",
            "three_d_secure": None,
            "transaction_link_id": None,
            "wallet": None,
        },
    }


def charge_outcome(*, paid: bool, reason: str | None = None) -> Obj:
    if paid:
        return {
            "advice_code": None, "network_advice_code": None, "network_decline_code": None,
            "network_status": "approved_by_network", "reason": None, "risk_level": "normal",
            "risk_score": 20, "seller_message": "Payment complete.", "type": "authorized",
        }
    return {
        "advice_code": "do_not_try_again" if reason == "expired_card" else "try_again_later",
        "network_advice_code": None, "network_decline_code": None,
        "network_status": "declined_by_network", "reason": reason, "risk_level": "normal",
        "risk_score": 20,
        "seller_message": "The bank did not return any further details with this decline.",
        "type": "issuer_declined",
    }


def refund(re: RefundRecord) -> Obj:
    destination: Obj = (
        {"type": "card", "card": {"type": "refund", "reference": None, "reference_status": "pending", "reference_type": None}}
        if re.payment_method_type == "card"
        else {"type": re.payment_method_type, re.payment_method_type: {}}
    )
    return {
        "id": re.id,
        "object": "refund",
        "amount": re.amount,
        "balance_transaction": re.balance_transaction,
        "charge": re.charge,
        "created": re.created,
        "currency": re.currency,
        "customer": None,
        "customer_account": None,
        "destination_details": destination,
        "metadata": dict(re.metadata),
        "payment_intent": re.payment_intent,
        "payment_method": None,
        "reason": re.reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": re.status,
        "transfer_reversal": None,
    }


def balance_transaction(sb: Sandbox, txn: BalanceTransactionRecord) -> Obj:
    fee_details = (
        [{"amount": txn.fee, "application": None, "currency": txn.currency,
          "description": "Stripe processing fees", "type": "stripe_fee"}]
        if txn.fee
        else []
    )
    return {
        "id": txn.id,
        "object": "balance_transaction",
        "amount": txn.amount,
        "available_on": txn.available_on,
        "balance_type": "payments",
        "created": txn.created,
        "currency": txn.currency,
        "description": txn.description,
        "exchange_rate": None,
        "fee": txn.fee,
        "fee_details": fee_details,
        "net": txn.net,
        "reporting_category": txn.reporting_category,
        "source": txn.source,
        "status": "available" if txn.available_on <= sb.clock.now() else "pending",
        "type": txn.type,
    }


def payout(po: PayoutRecord) -> Obj:
    return {
        "id": po.id,
        "object": "payout",
        "amount": po.amount,
        "application_fee": None,
        "application_fee_amount": None,
        "arrival_date": po.arrival_date,
        "automatic": True,
        "balance_transaction": po.balance_transaction,
        "created": po.created,
        "currency": po.currency,
        "description": "STRIPE PAYOUT",
        "destination": po.destination,
        "failure_balance_transaction": po.failure_balance_transaction,
        "failure_code": po.failure_code,
        "failure_message": po.failure_message,
        "livemode": False,
        "metadata": dict(po.metadata),
        "method": "standard",
        "original_payout": None,
        "payout_method": None,
        "reconciliation_status": po.reconciliation_status,
        "reversed_by": None,
        "source_type": "card",
        "statement_descriptor": None,
        "status": po.status,
        "trace_id": {"status": "supported" if po.status == "paid" else "pending", "value": None},
        "type": "bank_account",
    }


def event(sb: Sandbox, ev: EventRecord) -> Obj:
    data: Obj = {"object": _copy(ev.data_object)}
    if ev.previous_attributes is not None:
        data["previous_attributes"] = _copy(ev.previous_attributes)
    return {
        "id": ev.id,
        "object": "event",
        "api_version": sb.config.api_version,
        "created": ev.created,
        "data": data,
        "livemode": False,
        "pending_webhooks": ev.pending_webhooks,
        "request": {"id": ev.request_id, "idempotency_key": ev.idempotency_key},
        "type": ev.type,
    }


def balance(available: int, pending: int) -> Obj:
    def amounts(amount: int) -> list[Obj]:
        return [{"amount": amount, "currency": "jpy", "source_types": {"card": amount}}]

    return {
        "object": "balance",
        "available": amounts(available),
        "connect_reserved": [{"amount": 0, "currency": "jpy"}],
        "livemode": False,
        "pending": amounts(pending),
    }


def _copy(value: Any) -> Any:
    """Deep copy of JSON-like data, so snapshots never alias live state."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value
