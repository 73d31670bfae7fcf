"""A day of money, written straight into the ledger and a fake provider statement (fast), with
the corruptions the property tests apply. Import what a test module needs.

A ``Day`` is: payments (charges at the provider, Dr 1200 / Cr 1100:CODE in the ledger with
``source_ref`` ``stripe:pi_…``), partial refunds of some of them (the mirror), and one payout
created the next morning that sweeps them all, due at the bank two days later, with its bank line.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy.engine import Engine

from ledger import EntryRequest, Line, post_many
from ledger.clock import JST
from ledger.db import run_transaction
from reconciliation import (
    BankLine,
    BankStatement,
    ProviderPayout,
    ProviderTransaction,
    ReconciliationConfig,
    import_statement,
)

CONFIG = ReconciliationConfig()
TAX_CODES = ("FIXED_ASSET", "RESIDENT_TAX", "LIGHT_VEHICLE", "NHI_TAX")
_serial = itertools.count(1)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), JST)


@dataclass
class FakeSource:
    """A provider statement held in lists (implements ``StatementSource``)."""

    transactions: list[ProviderTransaction] = field(default_factory=list)
    payout_list: list[ProviderPayout] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def balance_transactions(self, start: datetime, end: datetime) -> Iterable[ProviderTransaction]:
        self.calls.append("balance_transactions")
        return [t for t in self.transactions if start <= t.created < end]

    def payouts(self, arrival_from: date, arrival_to: date) -> Iterable[ProviderPayout]:
        self.calls.append("payouts")
        return [p for p in self.payout_list if arrival_from <= p.arrival_date <= arrival_to]

    def payout_transactions(self, payout_id: str) -> Iterable[ProviderTransaction]:
        self.calls.append(f"payout_transactions:{payout_id}")
        return [t for t in self.transactions if t.payout_id == payout_id]


@dataclass
class Payment:
    ref: str
    amount: int
    tax_code: str
    hour: int
    fee: int
    refund: int = 0  # a partial refund of this amount, the same day (0: none)
    refund_ref: str = ""


@dataclass
class Day:
    day: date
    payments: list[Payment]
    tag: str = field(default_factory=lambda: f"t{next(_serial)}")
    # What the ledger and the provider hold; corruptions edit these before writing.
    ledger: list[EntryRequest] = field(default_factory=list)
    transactions: list[ProviderTransaction] = field(default_factory=list)
    payout: ProviderPayout | None = None
    bank: list[BankLine] = field(default_factory=list)

    @property
    def payout_day(self) -> date:
        return self.day + timedelta(days=2)

    def build(self) -> Day:
        for p in self.payments:
            self.ledger.append(
                EntryRequest(self.day, f"収納 {p.ref}", f"stripe:{p.ref}", f"test:{p.ref}",
                             (Line.debit("1200", p.amount), Line.credit(f"1100:{p.tax_code}", p.amount)))  # fmt: skip
            )
            self.transactions.append(
                ProviderTransaction(
                    id=f"txn_{p.ref}", type="charge", amount=p.amount, fee=p.fee, net=p.amount - p.fee,
                    created=at(self.day, p.hour), reporting_category="charge", source=f"ch_{p.ref}",
                    match_ref=p.ref, payment_ref=p.ref, notice_number=f"2026-{p.ref[-8:]:0>8}-0",
                )  # fmt: skip
            )
            if p.refund:
                self.ledger.append(
                    EntryRequest(self.day, f"還付 {p.refund_ref}", f"stripe:{p.refund_ref}", f"test:{p.refund_ref}",
                                 (Line.debit(f"1100:{p.tax_code}", p.refund), Line.credit("1200", p.refund)))  # fmt: skip
                )
                self.transactions.append(
                    ProviderTransaction(
                        id=f"txn_{p.refund_ref}", type="refund", amount=-p.refund, fee=0, net=-p.refund,
                        created=at(self.day, min(p.hour + 1, 23), 30), reporting_category="refund",
                        source=p.refund_ref, match_ref=p.refund_ref, payment_ref=p.ref,
                    )  # fmt: skip
                )
        return self

    def pay_out(self) -> Day:
        """The payout of everything the provider holds for the day (after corruptions of the
        provider side, so the provider is consistent with itself), and its bank line."""
        po = f"po_{self.tag}"
        swept = [t for t in self.transactions if t.payout_id is None and not t.id.startswith("txn_dup")]
        amount = sum(t.net for t in swept)
        if amount <= 0:  # the provider pays out only a positive balance
            return self
        self.transactions = [dataclasses.replace(t, payout_id=po) if t in swept else t for t in self.transactions]
        created = at(self.day + timedelta(days=1), 10)
        self.transactions.append(
            ProviderTransaction(id=f"txn_{po}", type="payout", amount=-amount, fee=0, net=-amount, created=created,
                                source=po, match_ref=po, payout_id=po, reporting_category="payout")  # fmt: skip
        )
        self.payout = ProviderPayout(po, amount, "paid", created, self.payout_day, balance_transaction=f"txn_{po}")
        self.bank.append(BankLine("designated", self.payout_day, amount, "STRIPE JAPAN", f"bank:{po}"))
        return self

    def source(self) -> FakeSource:
        return FakeSource(list(self.transactions), [self.payout] if self.payout else [])

    def write(self, engine: Engine) -> None:
        if self.ledger:
            run_transaction(engine, lambda conn: post_many(conn, self.ledger))
        if self.bank:
            statement = BankStatement("csv", tuple(self.bank), f"sha-{self.tag}")
            run_transaction(engine, lambda conn: import_statement(conn, statement, actor="test", now=at(self.day, 9)))


def payment(amount: int, *, tax_code: str = "FIXED_ASSET", hour: int = 10, fee: int | None = None,
            refund: int = 0) -> Payment:  # fmt: skip
    n = next(_serial)
    return Payment(f"pi_{n:08d}", amount, tax_code, hour, CONFIG.expected_fee(amount) if fee is None else fee,
                   refund, f"re_{n:08d}" if refund else "")  # fmt: skip
