"""The account balance, derived from balance transactions and the sandbox clock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.sandbox.records import BalanceTransactionRecord
from gateway.sandbox.shapes import balance as balance_object

if TYPE_CHECKING:
    from gateway.sandbox.engine import Sandbox


def current_balance(sb: Sandbox) -> dict[str, Any]:
    """Invariant: available + pending == sum of every transaction's net (money is conserved;
    payouts are negative transactions, so money paid out has left the balance)."""
    now = sb.clock.now()
    available = pending = 0
    for txn in sb.store.newest_first(BalanceTransactionRecord):
        if txn.available_on <= now:
            available += txn.net
        else:
            pending += txn.net
    return balance_object(available, pending)
