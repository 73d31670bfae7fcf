"""The PaymentIntent state machine.

    requires_payment_method ──(payment_method)──▶ requires_confirmation
            │  ▲                                        │
            │  └──── decline / redirect rejected ◀──────┤ confirm
            ▼                                           ▼
         confirm ──▶ requires_action (PayPay redirect) ──approve──▶ processing ──▶ succeeded
            └──────────────────────────── card accepted ─────────────────────────▶ succeeded
    any of requires_* ──cancel──▶ canceled

Only JPY (zero-decimal) is supported; amounts are whole yen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gateway.sandbox.charges import record_decline, settle_success
from gateway.sandbox.context import RequestContext
from gateway.sandbox.errors import invalid_request, resource_missing, unexpected_state
from gateway.sandbox.events import record_event
from gateway.sandbox.forms import Params
from gateway.sandbox.ids import client_secret_for, new_id
from gateway.sandbox.params import (
    exclusive,
    get_bool,
    get_choice,
    get_hash,
    get_int,
    get_list,
    get_metadata,
    get_str,
    merge_metadata,
    reject_unknown,
)
from gateway.sandbox.payment_methods import (
    REDIRECT_TYPES,
    SUPPORTED_TYPES,
    payment_method_from_data,
    resolve_payment_method,
)
from gateway.sandbox.records import PaymentIntentRecord, PaymentMethodRecord
from gateway.sandbox.shapes import last_payment_error, render

if TYPE_CHECKING:
    from gateway.sandbox.engine import Sandbox

MAX_AMOUNT = 99_999_999  # Stripe: at most eight digits
CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
CANCELABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
CREATE_PARAMS = (
    "amount", "currency", "metadata", "description", "payment_method", "payment_method_data",
    "payment_method_types", "automatic_payment_methods", "confirm", "return_url",
    "receipt_email", "statement_descriptor", "statement_descriptor_suffix", "capture_method",
    "confirmation_method",
)
UPDATE_PARAMS = ("metadata", "description", "receipt_email", "payment_method", "statement_descriptor_suffix")
CONFIRM_PARAMS = ("payment_method", "payment_method_data", "return_url", "receipt_email")
AUTHENTICATION_FAILED = (
    "The provided PaymentMethod has failed authentication. You can provide payment_method_data "
    "or a new PaymentMethod to attempt to fulfill this PaymentIntent again."
)


def get_payment_intent(sb: Sandbox, pi_id: str, *, param: str = "id") -> PaymentIntentRecord:
    record = sb.store.get(pi_id, PaymentIntentRecord)
    if record is None:
        raise resource_missing("payment_intent", pi_id, param=param)
    return record


def _amount(params: Params) -> int:
    amount = get_int(params, "amount", required=True)
    assert amount is not None
    if amount < 1:
        raise invalid_request(
            "This value must be greater than or equal to 1.", param="amount", code="parameter_invalid_integer"
        )
    if amount > MAX_AMOUNT:
        raise invalid_request(
            f"Amount must be no more than ¥{MAX_AMOUNT:,}", param="amount", code="amount_too_large"
        )
    return amount


def _currency(params: Params) -> str:
    currency = (get_str(params, "currency", required=True) or "").lower()
    if currency != "jpy":
        raise invalid_request(
            f"Invalid currency: {currency}. The nofu sandbox supports only jpy.",
            param="currency",
            code="parameter_invalid",
        )
    return currency


def _payment_method_types(params: Params) -> tuple[list[str], dict[str, object] | None]:
    """Explicit `payment_method_types`, else automatic payment methods (Stripe's default)."""
    exclusive(params, "automatic_payment_methods", "payment_method_types")
    explicit = get_list(params, "payment_method_types")
    if explicit is not None:
        if not explicit:
            raise invalid_request(
                "payment_method_types must not be empty.", param="payment_method_types", code="parameter_invalid"
            )
        for index, pm_type in enumerate(explicit):
            if pm_type not in SUPPORTED_TYPES:
                raise invalid_request(
                    f"The payment method type {pm_type!r} is invalid or not supported by the nofu "
                    f"sandbox (supported: {', '.join(SUPPORTED_TYPES)}).",
                    param=f"payment_method_types[{index}]",
                    code="parameter_invalid",
                )
        return list(dict.fromkeys(explicit)), None
    automatic = get_hash(params, "automatic_payment_methods") or {}
    reject_unknown(automatic, ("enabled", "allow_redirects"))
    enabled = get_bool(automatic, "enabled")
    if enabled is False:
        raise invalid_request(
            "automatic_payment_methods[enabled] must be true; pass payment_method_types instead.",
            param="automatic_payment_methods[enabled]",
            code="parameter_invalid",
        )
    redirects = get_choice(automatic, "allow_redirects", ("always", "never")) or "always"
    types = list(SUPPORTED_TYPES) if redirects == "always" else ["card"]
    return types, {"enabled": True, "allow_redirects": redirects}


def _descriptor_suffix(params: Params) -> str | None:
    suffix = get_str(params, "statement_descriptor_suffix")
    if suffix is not None and len(suffix) > 22:
        raise invalid_request(
            "statement_descriptor_suffix can be at most 22 characters.",
            param="statement_descriptor_suffix",
            code="parameter_invalid",
        )
    return suffix


def create_payment_intent(sb: Sandbox, params: Params, ctx: RequestContext) -> PaymentIntentRecord:
    reject_unknown(params, CREATE_PARAMS)
    amount = _amount(params)
    currency = _currency(params)
    if amount < sb.config.minimum_amount:
        raise invalid_request(
            f"Amount must be at least ¥{sb.config.minimum_amount} jpy", param="amount", code="amount_too_small"
        )
    types, automatic = _payment_method_types(params)
    get_choice(params, "confirmation_method", ("automatic",))
    capture = get_choice(params, "capture_method", ("automatic", "automatic_async")) or "automatic_async"
    if get_str(params, "statement_descriptor") is not None and "card" in types:
        raise invalid_request(
            "The statement_descriptor parameter is not supported for the payment_method_type card. "
            "To override the statement descriptor on a card charge, use statement_descriptor_suffix.",
            param="statement_descriptor",
            code="parameter_invalid",
        )
    metadata = get_metadata(params) or {}
    confirm = get_bool(params, "confirm") or False
    exclusive(params, "payment_method", "payment_method_data")
    if not confirm and get_str(params, "return_url") is not None:
        raise invalid_request(
            "You can only pass return_url when confirm=true.", param="return_url", code="parameter_invalid"
        )
    return_url = get_str(params, "return_url")
    pm = _payment_method_param(sb, params)
    if confirm:
        _check_confirmation(types, automatic, pm, return_url)

    pi_id = new_id("pi")
    pi = sb.store.add(
        PaymentIntentRecord(
            id=pi_id,
            created=sb.clock.now(),
            seq=sb.store.next_seq(),
            amount=amount,
            currency=currency,
            client_secret=client_secret_for(pi_id),
            status="requires_confirmation" if pm else "requires_payment_method",
            payment_method_types=types,
            automatic_payment_methods=automatic,
            capture_method=capture,
            metadata=metadata,
            description=get_str(params, "description"),
            payment_method=pm.id if pm else None,
            receipt_email=get_str(params, "receipt_email"),
            statement_descriptor=get_str(params, "statement_descriptor"),
            statement_descriptor_suffix=_descriptor_suffix(params),
        )
    )
    record_event(sb, "payment_intent.created", render(sb, pi), ctx)
    if confirm:
        _confirm(sb, pi, pm, return_url, ctx)
    return pi


def _payment_method_param(sb: Sandbox, params: Params) -> PaymentMethodRecord | None:
    pm_id = get_str(params, "payment_method")
    if pm_id:
        return resolve_payment_method(sb, pm_id)
    if params.get("payment_method_data") is not None:
        return payment_method_from_data(sb, params)
    return None


def update_payment_intent(sb: Sandbox, pi_id: str, params: Params, ctx: RequestContext) -> PaymentIntentRecord:
    """Metadata, description and receipt email change freely (no event: Stripe has no
    payment_intent.updated); a new payment method only before confirmation completes."""
    pi = get_payment_intent(sb, pi_id)
    reject_unknown(params, UPDATE_PARAMS)
    metadata = get_metadata(params)
    pm_id = get_str(params, "payment_method")
    if pm_id is not None and pi.status not in CONFIRMABLE:
        raise unexpected_state(
            f"You cannot update this PaymentIntent's payment_method because it has a status of {pi.status}.",
            extra={"payment_intent": render(sb, pi)},
        )
    if metadata is not None:
        pi.metadata = merge_metadata(pi.metadata, metadata)
    if "description" in params:
        pi.description = get_str(params, "description") or None
    if "receipt_email" in params:
        pi.receipt_email = get_str(params, "receipt_email") or None
    if "statement_descriptor_suffix" in params:
        pi.statement_descriptor_suffix = _descriptor_suffix(params) or None
    if pm_id:
        pm = resolve_payment_method(sb, pm_id)
        _check_allowed(pi.payment_method_types, pm)
        pi.payment_method = pm.id
        pi.status = "requires_confirmation"
        pi.next_action = None
        pi.last_payment_error = None
    return pi


def confirm_payment_intent(sb: Sandbox, pi_id: str, params: Params, ctx: RequestContext) -> PaymentIntentRecord:
    pi = get_payment_intent(sb, pi_id)
    reject_unknown(params, CONFIRM_PARAMS)
    exclusive(params, "payment_method", "payment_method_data")
    _check_confirmable(sb, pi)
    new_pm = _payment_method_param(sb, params)
    return_url = get_str(params, "return_url")
    pm = new_pm or (sb.store.get(pi.payment_method, PaymentMethodRecord) if pi.payment_method else None)
    _check_confirmation(pi.payment_method_types, pi.automatic_payment_methods, pm, return_url)
    if "receipt_email" in params:
        pi.receipt_email = get_str(params, "receipt_email") or None
    _confirm(sb, pi, new_pm, return_url, ctx)
    return pi


def _check_confirmable(sb: Sandbox, pi: PaymentIntentRecord) -> None:
    if pi.status in CONFIRMABLE:
        return
    reason = {
        "succeeded": "it has already succeeded after being previously confirmed",
        "canceled": "it has been canceled",
        "processing": "it is processing a payment",
    }.get(pi.status, f"it has a status of {pi.status}")
    raise unexpected_state(
        f"You cannot confirm this PaymentIntent because {reason}.",
        extra={"payment_intent": render(sb, pi)},
    )


def _check_allowed(types: list[str], pm: PaymentMethodRecord) -> None:
    if pm.type not in types:
        raise invalid_request(
            f"The PaymentMethod provided ({pm.type}) is not allowed for this PaymentIntent. "
            f"Please attach a PaymentMethod of one of the following types: {', '.join(types)}.",
            param="payment_method",
            code="payment_intent_incompatible_payment_method",
        )


def _check_confirmation(
    types: list[str], automatic: dict[str, object] | None, pm: PaymentMethodRecord | None,
    return_url: str | None,
) -> None:
    """Everything a confirmation needs, checked before any state changes."""
    if pm is None:
        raise unexpected_state(
            "You cannot confirm this PaymentIntent because it's missing a payment method. Update "
            "the PaymentIntent with a payment method and then confirm it again."
        )
    _check_allowed(types, pm)
    redirects_possible = automatic is not None and automatic.get("allow_redirects") == "always"
    if return_url is None and pm.type in REDIRECT_TYPES:
        raise invalid_request(
            f"You must provide a `return_url` when confirming a PaymentIntent with the "
            f"payment method type {pm.type}.",
            param="return_url",
            code="parameter_missing",
        )
    if return_url is None and redirects_possible:
        # Stripe's rule for automatic payment methods, even when the card needs no redirect.
        raise invalid_request(
            "A `return_url` must be specified because this Payment Intent is configured to "
            "automatically accept the payment methods enabled in the Dashboard, some of which "
            "may require a full page redirect to succeed. If you do not want to accept "
            "redirect-based payment methods, set `automatic_payment_methods[enabled]` to true "
            "and `automatic_payment_methods[allow_redirects]` to `never`.",
            param="return_url",
            code="parameter_missing",
        )


def _confirm(
    sb: Sandbox, pi: PaymentIntentRecord, new_pm: PaymentMethodRecord | None,
    return_url: str | None, ctx: RequestContext,
) -> None:
    _check_confirmable(sb, pi)
    pm = new_pm or (sb.store.get(pi.payment_method, PaymentMethodRecord) if pi.payment_method else None)
    _check_confirmation(pi.payment_method_types, pi.automatic_payment_methods, pm, return_url)
    assert pm is not None
    pi.payment_method = pm.id
    pi.return_url = return_url
    pi.last_payment_error = None
    kind = pm.outcome.kind
    if kind == "succeed":
        settle_success(sb, pi, pm, ctx)
    elif kind == "decline":
        raise record_decline(sb, pi, pm, ctx)
    else:
        pi.status = "requires_action"
        pi.next_action = {
            "type": "redirect_to_url",
            "redirect_to_url": {
                "return_url": return_url,
                "url": f"{sb.config.public_base_url or ctx.base_url}/sandbox/{pm.type}/{pi.id}",
            },
        }
        record_event(sb, "payment_intent.requires_action", render(sb, pi), ctx)


def cancel_payment_intent(sb: Sandbox, pi_id: str, params: Params, ctx: RequestContext) -> PaymentIntentRecord:
    pi = get_payment_intent(sb, pi_id)
    reject_unknown(params, ("cancellation_reason",))
    reason = get_choice(params, "cancellation_reason", CANCELLATION_REASONS)
    if pi.status not in CANCELABLE:
        raise unexpected_state(
            f"You cannot cancel this PaymentIntent because it has a status of {pi.status}. Only a "
            "PaymentIntent with one of the following statuses may be canceled: "
            "requires_payment_method, requires_capture, requires_confirmation, requires_action, processing.",
            extra={"payment_intent": render(sb, pi)},
        )
    pi.status = "canceled"
    pi.canceled_at = sb.clock.now()
    pi.cancellation_reason = reason
    pi.next_action = None
    record_event(sb, "payment_intent.canceled", render(sb, pi), ctx)
    return pi


class RedirectNotPending(Exception):
    """The redirect page was used for a PaymentIntent that is not awaiting it (stable code)."""

    code = "redirect_not_pending"


def complete_redirect(sb: Sandbox, pi_id: str, approved: bool, ctx: RequestContext) -> tuple[PaymentIntentRecord, str]:
    """The customer approved or rejected on the wallet's page; returns the PI and where
    to send the browser (return_url + payment_intent, payment_intent_client_secret,
    redirect_status, as Stripe appends them)."""
    pi = get_payment_intent(sb, pi_id)
    if pi.status != "requires_action" or pi.next_action is None or pi.return_url is None:
        raise RedirectNotPending(f"PaymentIntent {pi_id} is not awaiting approval (status {pi.status}).")
    pm = sb.store.get(pi.payment_method or "", PaymentMethodRecord)
    assert pm is not None
    pi.next_action = None
    if approved:
        pi.status = "processing"
        record_event(sb, "payment_intent.processing", render(sb, pi), ctx)
        settle_success(sb, pi, pm, ctx)
        status = "succeeded"
    else:
        pi.status = "requires_payment_method"
        pi.payment_method = None
        pi.last_payment_error = last_payment_error(
            type_="invalid_request_error",
            code="payment_intent_authentication_failure",
            decline_code=None,
            message=AUTHENTICATION_FAILED,
            param=None,
            charge_id=None,
            payment_method_id=pm.id,
            payment_method_type=pm.type,
        )
        record_event(sb, "payment_intent.payment_failed", render(sb, pi), ctx)
        status = "failed"
    return pi, _with_query(
        pi.return_url,
        {"payment_intent": pi.id, "payment_intent_client_secret": pi.client_secret, "redirect_status": status},
    )


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(extra.items())
    return urlunsplit(parts._replace(query=urlencode(query)))

