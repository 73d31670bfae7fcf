"""Errors the ledger raises. Each carries a stable ``code`` that API clients can rely on.

    LedgerError
    ├── InvalidEntry            ledger.invalid_entry        malformed request (missing text, bad date …)
    ├── InvalidAmount           ledger.invalid_amount       not an int, zero, negative or past MAX_AMOUNT
    ├── UnbalancedEntry         ledger.unbalanced           debits ≠ credits
    ├── TooFewLines             ledger.too_few_lines        fewer than two lines
    ├── UnknownAccount          ledger.unknown_account
    ├── ClosedAccount           ledger.account_closed
    ├── AccountConflict         ledger.account_conflict     an account exists with other attributes
    ├── ClosedPeriod            ledger.period_closed        effective date in a closed business day
    ├── IdempotencyConflict     ledger.idempotency_conflict same key, other content
    ├── AlreadyReversed         ledger.already_reversed
    ├── EntryNotFound           ledger.entry_not_found
    └── BalanceOverflow         ledger.balance_overflow     a running balance would leave 64 bits
"""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    code = "ledger.error"

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidEntry(LedgerError):
    code = "ledger.invalid_entry"


class InvalidAmount(LedgerError):
    code = "ledger.invalid_amount"


class UnbalancedEntry(LedgerError):
    code = "ledger.unbalanced"


class TooFewLines(LedgerError):
    code = "ledger.too_few_lines"


class UnknownAccount(LedgerError):
    code = "ledger.unknown_account"


class ClosedAccount(LedgerError):
    code = "ledger.account_closed"


class AccountConflict(LedgerError):
    code = "ledger.account_conflict"


class ClosedPeriod(LedgerError):
    code = "ledger.period_closed"


class IdempotencyConflict(LedgerError):
    code = "ledger.idempotency_conflict"


class AlreadyReversed(LedgerError):
    code = "ledger.already_reversed"


class EntryNotFound(LedgerError):
    code = "ledger.entry_not_found"


class BalanceOverflow(LedgerError):
    code = "ledger.balance_overflow"
