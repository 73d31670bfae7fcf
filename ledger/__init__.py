"""nofu's double-entry ledger: balanced by construction, append-only, idempotent, hash-chained.

Everything else in nofu posts money through this package, inside its own transaction:

    from ledger import EntryRequest, Line, post
    post(conn, EntryRequest(date, "調定 固定資産税 1期", "invoice:…", "invoice:…:issue",
                            (Line.debit("1100:FIXED_ASSET", 12300), Line.credit("4100:FIXED_ASSET", 12300))))

The ledger knows nothing of HTTP, Stripe or invoices.
"""

from ledger.accounts import (
    Account,
    AccountSpec,
    close_account,
    ensure_account,
    ensure_chart,
    find_account,
    list_accounts,
    load_chart,
)
from ledger.balances import Balance, TrialBalance, TrialBalanceRow, balance, balance_at, trial_balance
from ledger.clock import JST, business_date, today_jst, utc_now
from ledger.errors import (
    AccountConflict,
    AlreadyReversed,
    BalanceOverflow,
    ClosedAccount,
    ClosedPeriod,
    EntryNotFound,
    IdempotencyConflict,
    InvalidAmount,
    InvalidEntry,
    LedgerError,
    TooFewLines,
    UnbalancedEntry,
    UnknownAccount,
)
from ledger.periods import PeriodClose, close_day, closed_through, list_closes
from ledger.posting import MAX_LINES, EntryRequest, Line, PostedEntry, post, post_many, reverse, validate
from ledger.schema import MAX_AMOUNT
from ledger.verify import Problem, VerifyReport, verify

__all__ = [
    "JST",
    "MAX_AMOUNT",
    "MAX_LINES",
    "Account",
    "AccountConflict",
    "AccountSpec",
    "AlreadyReversed",
    "Balance",
    "BalanceOverflow",
    "ClosedAccount",
    "ClosedPeriod",
    "EntryNotFound",
    "EntryRequest",
    "IdempotencyConflict",
    "InvalidAmount",
    "InvalidEntry",
    "LedgerError",
    "Line",
    "PeriodClose",
    "PostedEntry",
    "Problem",
    "TooFewLines",
    "TrialBalance",
    "TrialBalanceRow",
    "UnbalancedEntry",
    "UnknownAccount",
    "VerifyReport",
    "balance",
    "balance_at",
    "business_date",
    "close_account",
    "close_day",
    "closed_through",
    "ensure_account",
    "ensure_chart",
    "find_account",
    "list_accounts",
    "list_closes",
    "load_chart",
    "post",
    "post_many",
    "reverse",
    "today_jst",
    "trial_balance",
    "utc_now",
    "validate",
    "verify",
]
