"""What a run needs from outside the ledger, as small interfaces the gateway implements.

- :class:`StatementSource`: the provider's balance transactions and payouts (the gateway reads
  them with the Stripe SDK, ``gateway/providers/statements.py``; tests use a list).
- :class:`LedgerLinks`: which ledger entries belong to which provider object. Entries whose
  ``source_ref`` is ``stripe:<id>`` are linked by that convention without help; the gateway adds
  the links its payment tables know (attempt → PaymentIntent, refund → provider refund).
- :class:`Healer`: feeds a payment the provider captured but the ledger lacks (a lost webhook)
  through the webhook inbox — never a side door into the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Protocol

import sqlalchemy as sa

from reconciliation.model import HealResult, ProviderPayout, ProviderTransaction

# An entry whose source_ref starts with this names the provider object it books.
STRIPE_REF_PREFIX = "stripe:"
# The payout postings this package makes: source_ref "payout:po_…".
PAYOUT_REF_PREFIX = "payout:"


class StatementSource(Protocol):
    """The provider's statement. Every method may raise ``ProviderUnavailable``."""

    def balance_transactions(self, start: datetime, end: datetime) -> Iterable[ProviderTransaction]:
        """Every balance transaction created in [start, end), any order, each once."""
        ...

    def payouts(self, arrival_from: date, arrival_to: date) -> Iterable[ProviderPayout]:
        """Every payout whose arrival date lies in [arrival_from, arrival_to]."""
        ...

    def payout_transactions(self, payout_id: str) -> Iterable[ProviderTransaction]:
        """The balance transactions a payout swept (its own payout transaction included)."""
        ...


class LedgerLinks(Protocol):
    def select(self) -> sa.Select[tuple[int, str]] | None:
        """A query with columns ``entry_id`` and ``match_ref`` (``pi_…``, ``re_…``), or None."""
        ...


class NoLinks:
    """Only the ``stripe:<id>`` source_ref convention links entries."""

    def select(self) -> None:
        return None


class Healer(Protocol):
    def heal(self, match_ref: str, transaction: ProviderTransaction) -> HealResult:
        """Make the ledger record the captured payment ``match_ref`` through the webhook inbox.

        Runs its own transactions; must be idempotent (a payment healed twice is booked once).
        """
        ...
