"""nofu's daily reconciliation (消込): every yen the provider took is in the books against the
right invoice, every payout reached the bank with the expected fees, every difference is named.

    from reconciliation import reconcile_day, ReconciliationConfig
    outcome = reconcile_day(engine, date(2026, 6, 1), actor="cli:yamada", source=..., links=..., healer=...)

The package uses the ledger and knows nothing of HTTP or Stripe: the provider's statement comes
through :class:`StatementSource`, the links between ledger entries and provider objects through
:class:`LedgerLinks`, healing through :class:`Healer` (the gateway implements all three).

Modules, in the order a run uses them: ``statements`` (pull), ``bank`` / ``bank_csv`` /
``zengin`` (bank statements), ``staging`` (the ledger side), ``matching``, ``payouts`` (the
payout's posting), ``detection``, ``breaks`` (the queue's merge), ``totals``, ``run``;
``queue`` (staff actions, sign-off) and ``report`` (JSON and CSV).
"""

from reconciliation.bank import BankImport, import_statement, parse_statement
from reconciliation.breaks import get_break, list_breaks, notes_of
from reconciliation.errors import (
    BankAccountMismatch,
    BankStatementInvalid,
    BreakClosed,
    BreakNotFound,
    DaySignedOff,
    EarlierDayOpen,
    InvalidAssignee,
    InvalidDate,
    LineError,
    OpenBreaks,
    ProviderUnavailable,
    ReasonRequired,
    ReconciliationError,
    RunNotFound,
    StaleBreak,
)
from reconciliation.model import (
    CATEGORY_NAMES_JA,
    BankLine,
    BankStatement,
    Break,
    BreakCategory,
    BreakNote,
    BreakStatus,
    HealResult,
    ProviderPayout,
    ProviderTransaction,
    ReconciliationConfig,
    RunOutcome,
)
from reconciliation.queue import (
    SignOff,
    Staff,
    assign,
    comment,
    escalate,
    resolve,
    sign_off,
)
from reconciliation.report import csv_bytes, csv_chunks, report
from reconciliation.run import check_day, parse_day, reconcile_day
from reconciliation.sources import Healer, LedgerLinks, NoLinks, StatementSource
from reconciliation.statements import PullResult, pull_day

__all__ = [
    "CATEGORY_NAMES_JA",
    "BankAccountMismatch",
    "BankImport",
    "BankLine",
    "BankStatement",
    "BankStatementInvalid",
    "Break",
    "BreakCategory",
    "BreakClosed",
    "BreakNotFound",
    "BreakNote",
    "BreakStatus",
    "DaySignedOff",
    "EarlierDayOpen",
    "HealResult",
    "Healer",
    "InvalidAssignee",
    "InvalidDate",
    "LedgerLinks",
    "LineError",
    "NoLinks",
    "OpenBreaks",
    "ProviderPayout",
    "ProviderTransaction",
    "ProviderUnavailable",
    "PullResult",
    "ReasonRequired",
    "ReconciliationConfig",
    "ReconciliationError",
    "RunNotFound",
    "RunOutcome",
    "SignOff",
    "Staff",
    "StaleBreak",
    "StatementSource",
    "assign",
    "check_day",
    "comment",
    "csv_bytes",
    "csv_chunks",
    "escalate",
    "get_break",
    "import_statement",
    "list_breaks",
    "notes_of",
    "parse_day",
    "parse_statement",
    "pull_day",
    "reconcile_day",
    "report",
    "resolve",
    "sign_off",
]
