"""What the reconciliation needs from the gateway, wired here (``reconciliation`` imports none of it):

- :class:`StripeStatementSource`: the provider's statement through the official SDK, the same
  code for real Stripe and the sandbox — balance transactions of a time range
  (``balance_transactions.list(created=…)`` with ``expand[]=data.source`` so a charge brings its
  PaymentIntent and our metadata), payouts by arrival date, and a payout's transactions
  (``payout=po_…``), all through ``auto_paging_iter``;
- :class:`PaymentLinks`: which ledger entries book which provider object, from the payment
  tables (attempt → PaymentIntent, 過誤納金 → its attempt's PaymentIntent, refund → provider refund);
- :class:`InboxHealer`: a payment the provider captured but the ledger lacks is healed the way a
  lost webhook heals — the provider's events about it are backfilled into the webhook inbox and
  the processor applies them through the payment handlers. Nothing is posted by a side door.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
import stripe
from sqlalchemy.engine import Engine

from gateway.payments.schema import attempts, overpayments, refunds
from gateway.providers.stripe import StripeProvider
from ledger.db import read_transaction
from reconciliation import (
    HealResult,
    ProviderPayout,
    ProviderTransaction,
    ProviderUnavailable,
)
from webhooks import Processor, backfill

log = logging.getLogger("nofu.reconciliation")

PAGE = 100
# The events that carry a payment's success (capture_method=automatic_async sends the balance
# transaction with charge.updated).
PAYMENT_EVENTS = ["payment_intent.succeeded", "charge.succeeded", "charge.updated"]


def _plain(obj: Any) -> dict[str, Any]:
    if isinstance(obj, Mapping):
        return dict(obj)
    return dict(obj.to_dict())


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProviderUnavailable(f"the provider sent {value!r} where whole yen were expected")
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _utc(stamp: Any) -> datetime:
    return datetime.fromtimestamp(_int(stamp), UTC)


def _day(stamp: Any) -> date | None:
    # Stripe stamps dates (available_on, arrival_date) as 00:00 UTC of that date.
    return None if stamp is None else _utc(stamp).date()


def _stamp(day: date) -> int:
    return int(datetime.combine(day, time(0), UTC).timestamp())


def transaction_from_stripe(obj: Any, *, payout_id: str | None = None) -> ProviderTransaction:
    """A balance transaction (its ``source`` expanded or not) as the reconciliation stores it."""
    data = _plain(obj)
    source = data.get("source")
    expanded = _plain(source) if isinstance(source, Mapping) else {}
    source_id = _text(expanded.get("id")) if expanded else _text(source)
    intent = expanded.get("payment_intent")
    payment_ref = _text(intent.get("id")) if isinstance(intent, Mapping) else _text(intent)
    found = expanded.get("metadata")
    metadata: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    kind = str(data.get("type") or "")
    # Our books know a charge by its PaymentIntent, a refund by the refund itself.
    match_ref = (payment_ref or source_id) if kind in ("charge", "payment") else source_id
    return ProviderTransaction(
        id=str(data["id"]),
        type=kind,
        amount=_int(data.get("amount")),
        fee=_int(data.get("fee")),
        net=_int(data.get("net")),
        created=_utc(data.get("created")),
        available_on=_day(data.get("available_on")),
        reporting_category=_text(data.get("reporting_category")),
        source=source_id,
        match_ref=match_ref,
        payment_ref=payment_ref,
        notice_number=_text(metadata.get("notice_number")),
        attempt_ref=_text(metadata.get("attempt_id")),
        payout_id=payout_id,
        currency=str(data.get("currency") or "jpy"),
    )


def payout_from_stripe(obj: Any) -> ProviderPayout:
    data = _plain(obj)
    arrival = _day(data.get("arrival_date"))
    assert arrival is not None
    return ProviderPayout(
        id=str(data["id"]),
        amount=_int(data.get("amount")),
        status=str(data.get("status") or ""),
        created=_utc(data.get("created")),
        arrival_date=arrival,
        balance_transaction=_text(data.get("balance_transaction")),
        failure_code=_text(data.get("failure_code")),
        currency=str(data.get("currency") or "jpy"),
    )


class StripeStatementSource:
    """``reconciliation.StatementSource`` over ``stripe.StripeClient`` (real Stripe or sandbox)."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    def _walk(self, listing: Any) -> Iterator[Any]:
        try:
            yield from listing.auto_paging_iter()
        except stripe.StripeError as exc:
            raise ProviderUnavailable(f"the provider's statement could not be read: {exc.user_message or exc}") from exc

    def _list(self, resource: Any, params: dict[str, Any]) -> Any:
        try:
            return resource.list(params=params)
        except stripe.StripeError as exc:
            raise ProviderUnavailable(f"the provider's statement could not be read: {exc.user_message or exc}") from exc

    def balance_transactions(self, start: datetime, end: datetime) -> Iterable[ProviderTransaction]:
        params = {
            "created": {"gte": int(start.timestamp()), "lt": int(end.timestamp())},
            "limit": PAGE,
            "expand": ["data.source"],
        }
        for obj in self._walk(self._list(self.client.v1.balance_transactions, params)):
            yield transaction_from_stripe(obj)

    def payouts(self, arrival_from: date, arrival_to: date) -> Iterable[ProviderPayout]:
        params = {"arrival_date": {"gte": _stamp(arrival_from), "lte": _stamp(arrival_to)}, "limit": PAGE}
        for obj in self._walk(self._list(self.client.v1.payouts, params)):
            yield payout_from_stripe(obj)

    def payout_transactions(self, payout_id: str) -> Iterable[ProviderTransaction]:
        params = {"payout": payout_id, "limit": PAGE, "expand": ["data.source"]}
        for obj in self._walk(self._list(self.client.v1.balance_transactions, params)):
            yield transaction_from_stripe(obj, payout_id=payout_id)


class PaymentLinks:
    """``reconciliation.LedgerLinks`` from the payment tables."""

    def select(self) -> sa.Select[tuple[int, str]]:
        a, o, r = attempts, overpayments, refunds
        parts = [
            sa.select(a.c.ledger_entry_id.label("entry_id"), a.c.provider_payment_id.label("match_ref")).where(
                a.c.ledger_entry_id.is_not(None), a.c.provider_payment_id.is_not(None)
            ),
            sa.select(o.c.ledger_entry_id, a.c.provider_payment_id)
            .join(a, a.c.id == o.c.attempt_id)
            .where(a.c.provider_payment_id.is_not(None)),
            sa.select(r.c.ledger_entry_id, r.c.provider_refund_id).where(
                r.c.ledger_entry_id.is_not(None), r.c.provider_refund_id.is_not(None)
            ),
            sa.select(r.c.invoice_entry_id, r.c.provider_refund_id).where(
                r.c.invoice_entry_id.is_not(None), r.c.provider_refund_id.is_not(None)
            ),
        ]
        union = sa.union(*parts).subquery("payment_links")
        return sa.select(union.c.entry_id, union.c.match_ref)


@dataclass
class InboxHealer:
    """``reconciliation.Healer`` through the webhook inbox (see the module docstring)."""

    engine: Engine
    client: stripe.StripeClient
    processor: Processor
    # How far around the charge's time the provider's events are looked for.
    before: timedelta = timedelta(hours=1)
    after: timedelta = timedelta(days=3)

    def _events(self, payment_id: str, created: datetime) -> list[dict[str, Any]]:
        params: Any = {
            "types": PAYMENT_EVENTS,
            "created": {"gte": int((created - self.before).timestamp()), "lte": int((created + self.after).timestamp())},
            "limit": PAGE,
        }
        found = []
        for event in self.client.v1.events.list(params=params).auto_paging_iter():
            data = event.to_dict()
            obj = data.get("data", {}).get("object", {})
            if obj.get("id") == payment_id or obj.get("payment_intent") == payment_id:
                found.append(data)
        return found

    def _booked(self, payment_id: str) -> bool:
        with read_transaction(self.engine) as conn:
            entry = conn.scalar(
                sa.select(attempts.c.ledger_entry_id).where(attempts.c.provider_payment_id == payment_id)
            )
        return entry is not None

    def heal(self, match_ref: str, transaction: ProviderTransaction) -> HealResult:
        if self._booked(match_ref):
            return HealResult(match_ref, True, "already booked")
        try:
            events = self._events(match_ref, transaction.created)
        except stripe.StripeError as exc:
            return HealResult(match_ref, False, f"events could not be listed: {exc.user_message or exc}")
        if not events:
            return HealResult(match_ref, False, "the provider lists no event for it (older than 30 days?)")
        report = backfill(self.engine, events)
        processed = self.processor.drain()
        healed = self._booked(match_ref)
        note = f"{report.added} event(s) backfilled, {processed} processed" + ("" if healed else "; still not booked")
        log.info("healing %s: %s", match_ref, note)
        return HealResult(match_ref, healed, note)


@dataclass(frozen=True)
class ReconciliationWiring:
    """What one run needs from the gateway; ``source``/``healer`` are None without a provider."""

    source: StripeStatementSource | None
    links: PaymentLinks
    healer: InboxHealer | None


def build_wiring(engine: Engine, provider: object, processor: Processor | None) -> ReconciliationWiring:
    """The statement source and healer of the configured Stripe provider (real or sandbox)."""
    if not isinstance(provider, StripeProvider):
        return ReconciliationWiring(None, PaymentLinks(), None)
    healer = InboxHealer(engine, provider.client, processor) if processor is not None else None
    return ReconciliationWiring(StripeStatementSource(provider.client), PaymentLinks(), healer)
